import argparse
from pathlib import Path

import pytest

from seqlab.cli import main
from seqlab.config import ConfigError
from seqlab.data.cli import add_arguments, build_config

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
