"""GPU paths of the search (skipped without CUDA): fractional-GPU trials train on the GPU."""

import json

import pytest

from seqlab.cli import main


@pytest.mark.gpu
@pytest.mark.slow
def test_fractional_gpu_trials_train_on_cuda(ray_session, tiny_corpus, tmp_path):
    out = tmp_path / "gpu"
    rc = main(
        [
            "tune",
            "--data",
            str(tiny_corpus),
            "--out",
            str(out),
            "--smoke_test=true",
            "--search.num_samples=4",
            "--resources.gpus_per_trial=0.25",
            "--run.verbose=0",
        ]
    )
    assert rc == 0
    for trial in (out / "search").iterdir():
        if (trial / "result.json").exists():
            rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
            assert rows and all(r["on_gpu"] == 1 for r in rows)
    assert (out / "best" / "model.safetensors").exists()
