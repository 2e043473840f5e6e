"""A tiny search end to end on the session Ray: interrupted after its first finished trial, resumed with
``seqlab tune --resume``, then checked for best/, report/ and trials that were not re-run.

One search (not two) keeps CI time down: trial actors start slowly on 2 shared cores.
"""

import json
import os
import signal

import pandas as pd
import pytest

from seqlab.cli import main
from seqlab.config import load_config
from seqlab.models import load_scorer
from seqlab.tune.config import TuneJobConfig

# Tiny and fast: 3 sequential trials (one actor, reused) of at most 2 epochs on 200 documents.
TINY = [
    "--smoke_test=true",
    "--search.num_samples=3",
    "--search.max_concurrent=1",
    "--search.scheduler=fifo",  # ASHA could stop the last trial at epoch 1, before it can be interrupted
    "--search.space.hidden=[16]",
    "--search.space.embed_dim=[16]",
    "--search.space.layers=[1]",
    "--search.space.batch_size=[32]",
    "--data.max_docs=200",
    "--data.tokenizer.min_frequency=1",
    "--run.verbose=0",
]


def interrupt_once(flag: str, num_samples: int):
    """A Tune callback sending the driver SIGUSR1 (Tune's graceful stop, like Ctrl+C) at the first epoch of
    the last trial: every trial has started, the earlier ones have finished, the last one is mid-way.

    That is the moment a ResultGrid alone gets wrong (Tune marks the running trial TERMINATED as it cleans
    up). The callback is pickled into the experiment state and comes back on restore, so "once" is a file.
    """
    from ray import tune

    class InterruptOnce(tune.Callback):
        def on_step_end(self, iteration, trials, **info):
            last = trials[-1] if len(trials) == num_samples else None
            # once its first checkpoint is registered (a save still in flight would be lost by Tune itself)
            if last is not None and last.status == "RUNNING" and last.checkpoint and not os.path.exists(flag):
                open(flag, "w").close()
                os.kill(os.getpid(), signal.SIGUSR1)

    return InterruptOnce()


def progress_rows(experiment) -> dict[str, int]:
    return {
        d.name: len(pd.read_csv(d / "progress.csv"))
        for d in experiment.iterdir()
        if (d / "progress.csv").exists()
    }


@pytest.mark.slow
def test_interrupted_search_resumes_and_exports_best_and_report(ray_session, tiny_corpus, tmp_path, capsys):
    from ray import tune

    from seqlab.tune.data import prepare_data
    from seqlab.tune.job import JOB_CONFIG_FILE, TOKENIZER_FILE
    from seqlab.tune.search import build_tuner, search_finished

    out = tmp_path / "run"
    cfg = load_config(TuneJobConfig, None, [*TINY, f"--out={out}", f"--data.path={tiny_corpus}"])
    (out).mkdir()
    (out / JOB_CONFIG_FILE).write_text(cfg.model_dump_json())  # what `seqlab tune` saves for --resume
    run = cfg.smoke()
    data = prepare_data(str(tiny_corpus), run.data.tokenizer, max_docs=run.data.max_docs)
    (out / TOKENIZER_FILE).write_text(data.encoded.tokenizer_json)  # also saved by `seqlab tune`

    # 1. The driver is interrupted in the last trial's first epoch. Every trial has started and the grid
    #    calls them all TERMINATED, yet the search is not finished and nothing may be exported as best.
    fired = tmp_path / "fired"
    grid = build_tuner(run, data.encoded, str(out), callbacks=[interrupt_once(str(fired), 3)]).fit()
    assert fired.exists() and len(grid) == 3 and grid.num_terminated == 3
    assert not search_finished(grid, run)
    # Tune's saved state, not the grid's "done" flags (all True after the cleanup), says what finished.
    saved = {t.trial_id: t.status for t in tune.ExperimentAnalysis(grid.experiment_path).trials}
    finished = [trial_id for trial_id, status in saved.items() if status == "TERMINATED"]
    assert len(finished) == 2, f"the interruption should come after two trials finished: {saved}"
    rows_before = progress_rows(out / "search")
    assert not (out / "best").exists()

    # 2. `seqlab tune --resume DIR` finishes the search; finished trials are kept, not re-run.
    sigint_before = signal.getsignal(signal.SIGINT)
    assert main(["tune", "--resume", str(out)]) == 0
    assert signal.getsignal(signal.SIGINT) is sigint_before  # Tune's handler is not left behind
    printed = capsys.readouterr().out
    assert "best:" in printed and "trial-epochs" in printed
    rows_after = progress_rows(out / "search")
    assert len(rows_after) == 3
    for trial_id in finished:
        assert rows_after[trial_id] == rows_before[trial_id]
    for trial in (out / "search").iterdir():  # an interrupted trial continued from its checkpoint:
        if (trial / "progress.csv").exists():  # its epochs run 1..n once each, never restarting at 1
            epochs = pd.read_csv(trial / "progress.csv")["epoch"].tolist()
            assert epochs == list(range(1, len(epochs) + 1))

    # 3. The exported scorer loads without Ray and carries the corpus's hash.
    manifest = json.loads((out / "best" / "manifest.json").read_text())
    assert manifest["stage"] == "scorer" and manifest["inputs"]["corpus"]["hash"]
    assert manifest["config"]["data"]["path"] == str(tiny_corpus)
    assert {"val_rmse", "test_rmse", "test_r2"} <= set(manifest["metrics"])
    scores = load_scorer(str(out / "best")).predict(["خوارزمية بيانات حاسوب شبكة", "مطر حديقة بحر جبل"])
    assert len(scores) == 2 and all(0 <= s <= 10 for s in scores)
    # The corpus's text_norm was made with teh_marbuta=True: raw text scores as its training-time form.
    corpus = pd.read_parquet(tiny_corpus / "corpus")
    raw, trained_on = corpus["text"].tolist()[:20], corpus["text_norm"].tolist()[:20]
    assert raw != trained_on
    scorer, as_trained = load_scorer(str(out / "best")), load_scorer(str(out / "best"))
    as_trained.prepare = lambda text: text
    assert scorer.predict(raw) == as_trained.predict(trained_on)
    assert json.loads((out / "best" / "config.json").read_text())["normalize"]["teh_marbuta"] is True

    # 4. The report covers every trial, the baselines and the noise floor.
    results = json.loads((out / "report" / "results.json").read_text())
    report = (out / "report" / "report.md").read_text()
    assert "Best trial per architecture" in report and (out / "report" / "learning_curves.png").exists()
    assert results["num_trials"] == 3 and results["noise_floor_rmse"] == 0.5
    # The first trials are the seeded architectures, in order (points_to_evaluate survives the restore).
    assert [r["architecture"] for r in results["architectures"]] == ["RNN", "BiRNN", "GRU"]
    assert results["total_trial_epochs"] == sum(len(c["epoch"]) for c in results["curves"])
    assert results["baselines"]["tfidf_ridge"]["test_rmse"] < results["baselines"]["mean"]["test_rmse"]
    assert results["best"]["val_rmse"] == min(r["val_rmse"] for r in results["architectures"])

    # 5. A new search into the same directory refuses to overwrite it.
    assert main(["tune", "--data", str(tiny_corpus), "--out", str(out), *TINY]) == 2


@pytest.mark.slow
def test_trial_epoch_budget_survives_a_resume(ray_session, tmp_path):
    """The budget counts epochs across an interruption: a resumed search does not get a fresh budget."""
    from ray import tune

    from seqlab.tune.search import TrialEpochBudget

    def _counting_trainable(config):  # defined here: pickled by value, workers cannot import tests
        """20 quick epochs, checkpointing each, resuming from the last one."""
        import tempfile
        import time

        from ray import tune

        start = 0
        if (checkpoint := tune.get_checkpoint()) is not None:
            with checkpoint.as_directory() as directory:
                start = int(open(os.path.join(directory, "epoch")).read())
        for epoch in range(start, 20):
            time.sleep(0.05)
            with tempfile.TemporaryDirectory() as directory:
                with open(os.path.join(directory, "epoch"), "w") as f:
                    f.write(str(epoch + 1))
                tune.report({"epoch": epoch + 1}, checkpoint=tune.Checkpoint.from_directory(directory))

    class InterruptAtThree(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result["training_iteration"] == 3 and not (tmp_path / "fired").exists():
                (tmp_path / "fired").touch()
                os.kill(os.getpid(), signal.SIGUSR1)

    run = tune.RunConfig(
        name="budget", storage_path=str(tmp_path), stop=TrialEpochBudget(12), callbacks=[InterruptAtThree()]
    )
    tuner = tune.Tuner(_counting_trainable, tune_config=tune.TuneConfig(num_samples=2), run_config=run)
    first = sum(r.metrics.get("training_iteration", 0) for r in tuner.fit())
    assert 3 <= first < 12
    resumed = tune.Tuner.restore(str(tmp_path / "budget"), trainable=_counting_trainable).fit()
    total = sum(r.metrics.get("training_iteration", 0) for r in resumed)
    assert first < total <= 12  # a restarted count would allow 12 more: up to first + 12
