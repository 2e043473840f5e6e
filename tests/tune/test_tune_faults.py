"""Fault injection on a real ``seqlab tune`` process: SIGKILL at a random point, then SIGINT on the resumed
process, then a last ``--resume`` in this process. The search must end as an uninterrupted one does: every
trial asked for, each finished with all its epochs once, and a best scorer exported only at the very end.

The driver processes join the session Ray (``RAY_ADDRESS``), as ``ray job submit`` drivers join a cluster;
when a driver dies, Ray kills its trial actors, which is what the resume has to cope with.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_tune_search import TINY  # tests/tune is on sys.path (no package): pytest's default import mode

from seqlab.cli import main

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
NUM_SAMPLES, MAX_EPOCHS = 3, 2  # TINY's smoke test: 3 trials of 2 epochs, one at a time


def _epochs_reported(out: Path) -> int:
    total = 0
    for progress in (out / "search").glob("*/progress.csv"):
        try:
            total += len(pd.read_csv(progress))
        except (pd.errors.EmptyDataError, pd.errors.ParserError):  # being written right now
            pass
    return total


def _driver(args: list[str], ray_address: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_ADDRESS": ray_address}
    return subprocess.Popen(
        [sys.executable, "-m", "seqlab", "tune", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the signal reaches the driver alone
        # Ctrl+C is what this sends: a shell's background job would ignore it, a terminal's would not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_search_killed_then_interrupted_then_resumed_ends_like_an_uninterrupted_one(
    ray_session, tiny_corpus, tmp_path, capsys, signal_when
):
    seed = random.randrange(10_000)
    rng = random.Random(seed)
    why = f"(random kill points from seed {seed})"
    address = ray_session.get_runtime_context().gcs_address
    out = tmp_path / "run"
    flags = [*TINY, "--data", str(tiny_corpus), "--out", str(out)]

    # 1. SIGKILL (no handler runs, nothing is flushed) after 0..4 of the 6 trial-epochs.
    kill_after = rng.randint(0, NUM_SAMPLES * MAX_EPOCHS - 2)
    proc = _driver(flags, address)
    rc, err = signal_when(proc, lambda: _epochs_reported(out) >= kill_after, signal.SIGKILL)
    assert rc == -signal.SIGKILL, f"{why} the search ended before the kill: rc {rc}\n{err[-3000:]}"
    assert not (out / "best").exists() and not (out / "manifest.json").exists()
    assert (out / "job_config.json").exists(), "the config --resume needs was not saved first"

    # 2. `seqlab tune --resume` picks it up; Ctrl+C at a random later point exits 130 with the command.
    interrupt_after = rng.randint(_epochs_reported(out), NUM_SAMPLES * MAX_EPOCHS - 1)
    proc = _driver(["--resume", str(out)], address)
    rc, err = signal_when(proc, lambda: _epochs_reported(out) > interrupt_after, signal.SIGINT)
    if rc != 0:  # the resumed search may finish first on a fast machine; otherwise it must say how to go on
        assert rc == 130, f"{why} rc {rc}\n{err[-3000:]}"
        assert f"seqlab tune --resume {out}" in err, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        finished = _epochs_reported(out) == NUM_SAMPLES * MAX_EPOCHS  # Ctrl+C came while it exported
        assert finished or not (out / "best").exists(), "an unfinished search exported a best scorer"

    print(
        f"{why}: SIGKILL after {kill_after} epochs, SIGINT after {interrupt_after}, resumed run's rc {rc}",
        file=sys.__stderr__,
    )

    # 3. The last resume, in this process, finishes the search.
    if rc != 0:
        assert main(["tune", "--resume", str(out)]) == 0
    capsys.readouterr()

    # What an uninterrupted run ends with: the three seeded architectures, each trained for all its epochs
    # exactly once (a trial re-run from an older checkpoint may log an epoch twice; the results keep one).
    results = json.loads((out / "report" / "results.json").read_text())
    assert results["num_trials"] == NUM_SAMPLES, why
    assert [r["architecture"] for r in results["architectures"]] == ["RNN", "BiRNN", "GRU"], why
    for curve in results["curves"]:
        assert curve["epoch"] == list(range(1, MAX_EPOCHS + 1)), (
            f"{why} {curve['trial_id']}: {curve['epoch']}"
        )
    assert results["total_trial_epochs"] == NUM_SAMPLES * MAX_EPOCHS, why
    trial_dirs = [d for d in (out / "search").iterdir() if (d / "progress.csv").exists()]
    assert len(trial_dirs) == NUM_SAMPLES, f"{why} a trial was started twice: {[d.name for d in trial_dirs]}"
    manifest = json.loads((out / "best" / "manifest.json").read_text())
    assert manifest["stage"] == "scorer" and manifest["metrics"]["val_rmse"] == results["best"]["val_rmse"]
