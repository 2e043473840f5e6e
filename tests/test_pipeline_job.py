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
