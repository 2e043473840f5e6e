"""The typed manifest: every manifest the project writes is a valid Manifest, and old ones still load."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from seqlab import artifacts
from seqlab.artifacts import Manifest, load_manifest, read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[1]

# One call per stage, with the stage-specific fields its writer passes (see the writers named).
WRITERS = {
    "scrape": dict(  # seqlab/data/pipeline.py
        config={"sources": {"seeds": ["https://example.com/"]}},
        metrics={"documents": np.int64(3), "crawl_shards": [{"fetched": 3}]},
        labeler="lexicon",
        extractor={"name": "trafilatura", "versions": {"trafilatura": "2"}},
        normalize={"remove_urls": True},
        labels_path=None,
        layout={"corpus": "corpus/", "failures": "failures/", "raw": "raw/"},
    ),
    "corpus": dict(  # seqlab/synth/corpus.py
        config={"n_docs": 10, "seed": 0},
        metrics={"n_docs": 10, "noise_floor_rmse": None, "split_sizes": {"train": 8}},
        labeler="generator",
        normalize={"remove_urls": True},
        layout={"corpus": "corpus/"},
    ),
    "tune": dict(  # seqlab/tune/job.py
        config={"search": {"num_samples": 2}},
        inputs={"corpus": {"stage": "corpus", "path": "/data/c", "metrics": {}}},
        metrics={"val_r2": float("nan"), "num_trials": 2},
    ),
    "tune-report": dict(  # seqlab/tune/job.py
        config={}, inputs={"corpus": {"stage": "corpus"}}, metrics={"val_rmse": 1.5}, files=["report.html"]
    ),
    "scorer": dict(  # seqlab/models/scorer.py
        config={"model": {"architecture": "GRU"}},
        metrics={"val_r2": 0.5},
        model={"architecture": "GRU"},
        parameters=1234,
        files=["model.safetensors", "config.json", "tokenizer.json"],
        architecture="GRU",
    ),
    "finetune": dict(  # seqlab/lm/finetune.py, seqlab/bench/serve.py
        config={"model": {"n_layer": 2}},
        inputs={"corpus": {"stage": "corpus", "path": "/data/c"}},
        metrics={"perplexity": 12.5},
        model_source="scratch",
        base_model=None,
        tokenizer="byte-level BPE trained on the corpus train split",
        ray_run="/tmp/ray/finetune",
    ),
}


def _written_stages() -> set[str]:
    """The ``stage=`` of every write_manifest call in seqlab/ (literal strings)."""
    stages = set()
    for path in (ROOT / "seqlab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == (
                "write_manifest"
            ):
                stage = next((k.value for k in node.keywords if k.arg == "stage"), None)
                assert isinstance(stage, ast.Constant), f"{path}: write_manifest without a literal stage="
                stages.add(stage.value)
    return stages


def test_every_stage_the_project_writes_is_covered_here():
    written = _written_stages()
    assert {"scrape", "corpus", "tune", "scorer", "finetune"} <= written  # the scan finds the writers
    assert written <= set(WRITERS)


@pytest.mark.parametrize("stage", sorted(WRITERS))
def test_each_writer_writes_a_valid_manifest(tmp_path, stage):
    fields = WRITERS[stage]
    returned = write_manifest(tmp_path, stage=stage, **fields)
    typed = load_manifest(tmp_path)
    assert isinstance(typed, Manifest)
    assert typed.stage == stage and typed.path == str(tmp_path) and typed.created_at
    assert set(typed.versions) >= {"python", "pyarrow"}
    for role, ref in typed.inputs.items():
        assert ref.hash == artifacts.manifest_hash(fields["inputs"][role])
        assert ref.stage == fields["inputs"][role].get("stage")
    for key in set(fields) - {"config", "inputs", "metrics"}:  # stage-specific fields survive as extras
        assert getattr(typed, key) == json.loads(json.dumps(fields[key], default=str))
    # the dict reader sees what the writer returned (as JSON holds it)
    on_disk = read_manifest(tmp_path)
    assert on_disk.pop("path") == str(tmp_path)
    assert on_disk == json.loads(artifacts.json_text(returned))
    assert list(on_disk)[:6] == ["stage", "created_at", "config", "inputs", "metrics", "versions"]


def test_the_writer_keeps_values_as_given_and_nan_is_still_reported(tmp_path):
    returned = write_manifest(tmp_path, stage="tune", metrics={"val_r2": float("nan"), "n": np.int64(3)})
    assert math.isnan(returned["metrics"]["val_r2"]) and isinstance(returned["metrics"]["n"], np.integer)
    assert "path" not in returned  # only a reader adds it
    on_disk = read_manifest(tmp_path)
    assert on_disk["metrics"] == {"val_r2": None, "n": 3}
    assert on_disk["null_because"] == {"metrics.val_r2": "not a finite number (nan)"}
    assert load_manifest(tmp_path).null_because == on_disk["null_because"]


def test_a_bad_manifest_is_refused_by_the_writer(tmp_path):
    with pytest.raises(ValueError):
        write_manifest(tmp_path, stage="tune", metrics=[1, 2])  # type: ignore[arg-type]
    assert not (tmp_path / "manifest.json").exists()


def test_old_manifests_with_unknown_or_missing_keys_still_load(tmp_path):
    (tmp_path / "manifest.json").write_text(
        json.dumps({"stage": "scrape", "labeler": "lexicon", "retired_field": {"x": 1}}), encoding="utf-8"
    )
    typed = load_manifest(tmp_path)
    assert typed.stage == "scrape" and typed.retired_field == {"x": 1}
    assert typed.config == {} and typed.inputs == {} and typed.created_at is None
    assert read_manifest(tmp_path)["retired_field"] == {"x": 1}  # the dict reader is unchanged


def test_the_synthetic_corpus_writer_writes_a_valid_manifest(tmp_path):
    from seqlab.synth.corpus import materialize_corpus

    materialize_corpus(tmp_path / "c", n_docs=12, seed=1)
    typed = load_manifest(tmp_path / "c")
    assert typed.stage == "corpus" and typed.metrics["n_docs"] == 12
    assert typed.layout == {"corpus": "corpus/"}
