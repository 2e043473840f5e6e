"""``seqlab pipeline``: stages chained by their artifacts, skipped when config and inputs are unchanged."""

from __future__ import annotations

import pytest

from seqlab.config import ConfigError

pytestmark = pytest.mark.slow

TINY_TUNE = {
    "smoke_test": True,
    "search": {
        "num_samples": 2,
        "max_concurrent": 1,
        "space": {"hidden": [16], "embed_dim": [16], "layers": [1], "batch_size": [32]},
    },
    "data": {"tokenizer": {"min_frequency": 1}},
    "run": {"verbose": 0},
}


def test_pipeline_skips_what_is_up_to_date_and_never_overwrites(ray_session, tmp_path):
    from seqlab.pipeline import PipelineJobConfig, run_pipeline
    from seqlab.synth.corpus import generate_documents, write_labels_csv
    from seqlab.synth.site import LocalSite

    docs = generate_documents(120, seed=3)
    out = tmp_path / "pipe"
    with LocalSite(docs, port=0, faults=False, seed=3) as site:
        labels = write_labels_csv(docs, tmp_path / "labels.csv", site.base_url)
        base = {
            "out": str(out),
            "steps": ["scrape", "tune"],
            "scrape": {"sources": {"seeds": [site.index_url], "delay_s": 0.0}, "labels": str(labels)},
            "tune": TINY_TUNE,
        }
        assert run_pipeline(PipelineJobConfig.model_validate(base)) == {"scrape": "ran", "tune": "ran"}
        assert (out / "tune" / "best" / "model.safetensors").is_file()
        best_before = (out / "tune" / "best" / "manifest.json").read_text()

        # the same pipeline again: nothing to do
        assert run_pipeline(PipelineJobConfig.model_validate(base)) == {
            "scrape": "up to date",
            "tune": "up to date",
        }

        # another tune config: tune must re-run, and it will not overwrite the earlier search silently
        changed = {**base, "tune": {**TINY_TUNE, "search": {**TINY_TUNE["search"], "num_samples": 3}}}
        with pytest.raises(ConfigError, match="another config"):
            run_pipeline(PipelineJobConfig.model_validate(changed))
        done = run_pipeline(PipelineJobConfig.model_validate({**changed, "force": True}))
    assert done == {"scrape": "up to date", "tune": "ran"}
    aside = [p for p in out.iterdir() if p.name.startswith("tune.replaced-")]
    assert len(aside) == 1 and (aside[0] / "best" / "manifest.json").read_text() == best_before  # kept
    tune_manifest = (out / "tune" / "manifest.json").read_text()
    assert '"num_samples": 3' in tune_manifest


def test_a_pipeline_with_nothing_to_scrape_is_refused_before_ray(tmp_path, capsys, monkeypatch):
    import seqlab.ray_utils
    from seqlab.cli import main

    monkeypatch.setattr(seqlab.ray_utils, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    assert main(["pipeline", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "scrape.sources has no seeds, sitemaps or feeds" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_pipeline_whose_site_does_not_answer_is_one_line_and_keeps_its_failures(
    ray_session, tmp_path, capsys
):
    import socket

    from seqlab.cli import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["pipeline", "--out", str(tmp_path / "p"), f"--scrape.sources.seeds=[http://127.0.0.1:{port}/]"]
    assert main([*argv, "--scrape.sources.retries=0"]) == 2
    err = capsys.readouterr().err
    assert "seqlab pipeline: the crawl fetched no pages" in err and "Traceback" not in err
    assert any((tmp_path / "p" / "scrape" / "failures").glob("part-*.parquet"))  # where the message points
