import argparse
from pathlib import Path

import pytest

from seqlab.cli import main
from seqlab.config import ConfigError
from seqlab.data.cli_scrape import add_arguments, build_config

ROOT = Path(__file__).resolve().parents[2]


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args, unknown = parser.parse_known_args(argv)
    args.overrides = unknown
    return args


def test_url_shortcut_uses_defaults_for_the_rest():
    cfg = build_config(_args(["--out", "x", "https://a.example/news", "https://b.example/"]))
    assert cfg.sources.seeds == ["https://a.example/news", "https://b.example/"]
    assert cfg.sources.allowed_domains == ["a.example", "b.example"]
    assert cfg.out == "x" and cfg.labels is None


def test_sources_file_and_overrides(tmp_path):
    f = tmp_path / "sources.yaml"
    f.write_text("seeds: [https://a.example/]\nmax_depth: 1\n", encoding="utf-8")
    cfg = build_config(_args(["--sources", str(f), "--out", "o", "--sources.max_pages=7"]))
    assert cfg.sources.max_depth == 1 and cfg.sources.max_pages == 7


def test_job_config_with_labels_none():
    cfg = build_config(_args(["--config", str(ROOT / "jobs/scrape.yaml"), "--labels", "none"]))
    assert cfg.labels is None and cfg.sources.seeds == ["http://127.0.0.1:8765/"]


def test_clear_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="say what to scrape"):
        build_config(_args(["--out", "x"]))
    with pytest.raises(ConfigError, match=r"out"):
        build_config(_args(["https://a.example/"]))
    with pytest.raises(ConfigError, match="seeds"):
        build_config(_args(["--out", "x", "ftp://a.example/"]))
    assert main(["scrape", "--out", str(tmp_path)]) == 2
    assert "say what to scrape" in capsys.readouterr().err


@pytest.mark.parametrize(
    "case, says",
    [
        ("out_is_file", "is a file, not a directory"),
        ("labels_missing", "cannot read the labels file"),
        ("labels_bad", "score 11.0 is outside 0–10"),
    ],
)
def test_refusals_come_before_ray_and_leave_nothing_behind(tmp_path, capsys, monkeypatch, case, says):
    import seqlab.ray_utils

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a run that had to be refused")

    monkeypatch.setattr(seqlab.ray_utils, "init_ray", no_ray)
    out, labels = tmp_path / "out", tmp_path / "labels.csv"
    if case == "out_is_file":
        out.write_text("a file", encoding="utf-8")
    if case == "labels_bad":
        labels.write_text("url,score\nhttp://a.example/x,11\n", encoding="utf-8")
    argv = ["scrape", "http://127.0.0.1:9/", "--out", str(out)]
    argv += ["--labels", str(labels)] if case != "out_is_file" else ["--labels", "none"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert says in captured.err and "Traceback" not in captured.err
    assert out.is_file() if case == "out_is_file" else not out.exists()


def test_a_crawl_that_fetches_nothing_is_one_line_and_keeps_its_failures(ray_session, tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on: every fetch is a connection error
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    argv = ["scrape", f"http://127.0.0.1:{port}/", "--out", str(out), "--labels", "none"]
    assert main([*argv, "--sources.retries=0", "--sources.request_timeout_s=2"]) == 2
    err = capsys.readouterr().err
    assert "the crawl fetched no pages" in err and "a re-run retries" in err and "Traceback" not in err
    assert any((out / "failures").glob("part-*.parquet"))  # what was tried is recorded, not lost


def test_a_rerun_keeps_the_hand_labels_it_was_made_with(tmp_path, capsys, monkeypatch):
    """A scrape labeled from a CSV, scraped again into the same --out: the labels stay (and it says so);
    --labels none would replace them, which needs --overwrite; all of it decided before Ray starts."""
    import seqlab.data.pipeline
    import seqlab.ray_utils
    from seqlab.artifacts import write_manifest

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(seqlab.ray_utils, "init_ray", lambda *a, **k: False)
    used = []
    monkeypatch.setattr(seqlab.data.pipeline, "run_scrape", lambda cfg, **kw: used.append(cfg.labels) or {})
    monkeypatch.setattr(seqlab.data.pipeline, "format_summary", lambda summary: "")
    labels = tmp_path / "labels.csv"
    labels.write_text("url,score\nhttp://127.0.0.1:9/a,7\n", encoding="utf-8")
    out = tmp_path / "scrape"
    write_manifest(out, stage="scrape", labeler="labels_csv", labels_path=str(labels))
    argv = ["scrape", "http://127.0.0.1:9/", "--out", str(out)]

    assert main(argv) == 0 and used == [str(labels)]
    assert f"keeping the labels {out} was made with: {labels}" in capsys.readouterr().err
    assert main([*argv, "--labels", "none"]) == 2 and len(used) == 1
    assert "--labels none would replace those labels" in capsys.readouterr().err
    assert main([*argv, "--labels", "none", "--overwrite"]) == 0 and used[-1] is None
    labels.unlink()
    assert main(argv) == 2 and "which is not there now" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["scrape", "tune", "finetune"])
def test_an_out_that_cannot_be_written_is_refused_before_ray(verb, tmp_path, capsys, monkeypatch):
    import seqlab.ray_utils

    monkeypatch.setattr(seqlab.ray_utils, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    out = "/sys/seqlab-test/out"  # even root cannot write there
    argv = {
        "scrape": ["http://127.0.0.1:9/"],
        "tune": ["--smoke_test=true"],
        "finetune": ["--smoke_test=true"],
    }
    assert main([verb, *argv[verb], "--out", out]) == 2
    err = capsys.readouterr().err
    assert f"{out} cannot be written (in /sys)" in err and "Traceback" not in err
