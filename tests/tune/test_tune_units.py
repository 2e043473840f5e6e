"""Fast tests of the search's pieces (no Ray cluster): config, space, data, baselines, report."""

import json

import numpy as np
import pandas as pd
import pytest

from seqlab.config import ConfigError, load_config
from seqlab.models import TokenizerConfig
from seqlab.tune.baselines import fit_baselines
from seqlab.tune.config import SearchSpace, TuneJobConfig
from seqlab.tune.data import load_corpus, prepare_data
from seqlab.tune.report import (
    MIN_IMPORTANCE_TRIALS,
    _early_stops,
    importance_note,
    param_importances,
    write_report,
)
from seqlab.tune.search import architecture_points, build_param_space


def test_smoke_config_shrinks_the_run_and_keeps_overrides():
    cfg = load_config(TuneJobConfig, None, ["--smoke_test=true", "--search.space.cell=[gru]"])
    eff = cfg.smoke()
    assert eff.train.max_epochs == 2 and eff.search.num_samples <= 4 and eff.data.max_docs <= 400
    assert max(eff.search.space.hidden) <= 64 and eff.search.space.cell == ["gru"]
    assert eff.smoke() == eff
    plain = load_config(TuneJobConfig)
    assert plain.smoke() is plain


def test_config_errors_name_fields():
    with pytest.raises(ConfigError, match="grace_period"):
        load_config(TuneJobConfig, None, ["--search.grace_period=9", "--train.max_epochs=3"])
    with pytest.raises(ConfigError, match=r"search\.space\.lr"):
        load_config(TuneJobConfig, None, ["--search.space.lr=[0.1, 0.001]"])
    with pytest.raises(ConfigError, match=r"search\.space\.cell"):
        load_config(TuneJobConfig, None, ["--search.space.cell=[transformer]"])


def test_param_space_uses_choices_and_loguniform():
    from ray.tune.search.sample import Categorical, Float

    space = build_param_space(SearchSpace(hidden=[64], pooling=["mean", "max"]))
    assert space["hidden"] == 64  # a single value is a constant, not a choice
    assert isinstance(space["pooling"], Categorical) and space["pooling"].categories == ["mean", "max"]
    assert isinstance(space["lr"], Float) and (space["lr"].lower, space["lr"].upper) == (1e-4, 1e-2)
    assert set(space) == {
        "cell",
        "bidirectional",
        "hidden",
        "layers",
        "dropout",
        "embed_dim",
        "pooling",
        "batch_size",
        "lr",
    }


def test_load_corpus_skips_unlabeled_rows_and_subsamples(tiny_corpus):
    frames, manifest = load_corpus(str(tiny_corpus))
    total = sum(len(f) for f in frames.values())
    assert total == 240 - len(range(0, 240, 17))  # every 17th row is unlabeled
    assert all(f["score"].notna().all() for f in frames.values())
    assert manifest["metrics"]["noise_floor_rmse"] == 0.5
    small, _ = load_corpus(str(tiny_corpus), max_docs=60, seed=1)
    assert sum(len(f) for f in small.values()) == 60
    data = prepare_data(str(tiny_corpus), TokenizerConfig(min_frequency=1, max_len=16))
    assert len(data.encoded.train) == len(data.frames["train"]) and data.encoded.train.lengths.max() <= 16
    assert data.noise_floor_rmse == 0.5 and data.encoded.meta["corpus_hash"]
    # A resumed search reuses the saved tokenizer, even when its settings would now train another one.
    reused = prepare_data(
        str(tiny_corpus), TokenizerConfig(min_frequency=5), tokenizer_json=data.encoded.tokenizer_json
    )
    assert np.array_equal(reused.encoded.train.ids, data.encoded.train.ids)
    assert reused.encoded.vocab_size == data.encoded.vocab_size


def test_baselines_fit_the_signal(tiny_corpus):
    frames, _ = load_corpus(str(tiny_corpus))
    out = fit_baselines(frames)
    mean = frames["train"]["score"].mean()
    test = frames["test"]["score"].to_numpy(np.float64)
    assert out["mean"]["test_rmse"] == pytest.approx(np.sqrt(np.mean((test - mean) ** 2)), rel=1e-5)
    assert out["tfidf_ridge"]["test_rmse"] < 0.8 * out["mean"]["test_rmse"]
    assert out["tfidf_ridge"]["alpha"] in (0.1, 0.3, 1.0, 3.0, 10.0)


def test_importances_find_the_parameter_that_matters():
    rng = np.random.default_rng(0)
    space = SearchSpace()
    configs, values = [], []
    for _ in range(30):
        c = {
            k: getattr(space, k)[rng.integers(len(getattr(space, k)))]
            for k in (
                "cell",
                "bidirectional",
                "hidden",
                "layers",
                "dropout",
                "embed_dim",
                "pooling",
                "batch_size",
            )
        }
        c["lr"] = float(10 ** rng.uniform(-4, -2))
        configs.append(c)
        values.append((2.0 if c["cell"] == "rnn" else 1.0) + rng.normal(0, 0.01))
    imp = param_importances(configs, values, space)
    assert max(imp, key=imp.get) == "cell" and sum(imp.values()) == pytest.approx(1.0)
    few = MIN_IMPORTANCE_TRIALS - 1
    assert param_importances(configs[:few], values[:few], space) == {}
    assert f"fewer than the {MIN_IMPORTANCE_TRIALS}" in importance_note(values[:few], {})
    # a parameter every trial shared is not ranked, however the forest splits
    same_lr = [{**c, "lr": 1e-3} for c in configs]
    assert "lr" not in param_importances(same_lr, values, space)
    assert importance_note(values, imp) == "fANOVA over 30 trials with a result"


def test_learning_curve_title_says_what_stopped():
    curves = [
        {"epoch": [1, 2, 3, 4], "val_rmse": [1, 1, 1, 1]},
        {"epoch": [1], "val_rmse": [2]},
        {"epoch": [1, 2], "val_rmse": [2, 2]},
        {"epoch": [1], "val_rmse": [2]},
    ]
    assert (
        _early_stops(curves, 4) == "3 of 4 trials stopped before epoch 4 (2 after epoch 1, 1 after epoch 2)"
    )
    assert _early_stops(curves[:1], 4) == "all 1 trials ran the full 4 epochs; none was stopped early"


def test_report_writes_markdown_json_and_plots(tmp_path):
    row = {
        "architecture": "BiGRU",
        "trial_id": "t1",
        "num_parameters": 1234,
        "samples_per_s": 100.0,
        "epochs": 3,
        "config": {
            "hidden": 64,
            "layers": 1,
            "embed_dim": 32,
            "pooling": "mean",
            "dropout": 0.1,
            "lr": 1e-3,
            "batch_size": 16,
            "cell": "gru",
            "bidirectional": True,
        },
        "val_mae": 0.5,
        "val_rmse": 0.61,
        "val_r2": 0.9,
        "test_mae": 0.52,
        "test_rmse": 0.63,
        "test_r2": 0.88,
    }
    summary = {
        "architectures": [row],
        "best": row,
        "noise_floor_rmse": 0.5,
        "importances": {"lr": 0.7, "cell": 0.3},
        "baselines": {"mean": {"test_rmse": 2.9}, "tfidf_ridge": {"test_rmse": 0.9, "alpha": 1.0}},
        "goals": {"beats_tfidf": True, "floor_target": 0.575, "within_15pct_of_floor": False},
        "total_trial_epochs": 3,
        "num_trials": 1,
        "search": {"scheduler": "asha", "max_epochs": 3},
    }
    curves = [{"trial_id": "t1", "architecture": "BiGRU", "epoch": [1, 2, 3], "val_rmse": [1.0, 0.7, 0.61]}]
    files = write_report(tmp_path, summary, curves)
    assert {"report.md", "learning_curves.png", "architectures.png", "importances.png"} <= set(files)
    for name in files:
        assert (tmp_path / name).stat().st_size > 0
    md = (tmp_path / "report.md").read_text()
    assert "| BiGRU | 1,234 |" in md and "0.630" in md and "Not sampled by this search: RNN, BiRNN" in md
    assert "**3 trial-epochs**" in md
    assert "all 1 trials ran the full 3 epochs" in md
    assert json.loads((tmp_path / "results.json").read_text())["curves"][0]["val_rmse"][-1] == 0.61


def test_architecture_points_cover_each_cell_and_direction_once():
    space = SearchSpace(cell=["gru", "lstm"], hidden=[16, 32, 64], pooling=["mean"])
    points = architecture_points(space)
    assert [(p["cell"], p["bidirectional"]) for p in points] == [
        ("gru", False),
        ("gru", True),
        ("lstm", False),
        ("lstm", True),
    ]
    assert all(p["hidden"] == 32 and p["lr"] == pytest.approx(1e-3) for p in points)
    assert all("pooling" not in p for p in points)  # a constant is not a searched parameter


def test_architecture_points_start_from_the_known_good_values_snapped_to_the_space():
    from seqlab.tune.config import KNOWN_GOOD

    space = SearchSpace(hidden=[16, 32, 64], embed_dim=[32, 64], pooling=["mean", "max"], lr=(1e-4, 2e-3))
    points = architecture_points(space, KNOWN_GOOD)
    assert len(points) == 6 and len({(p["cell"], p["bidirectional"]) for p in points}) == 6
    # hidden 128 and embed_dim 128 are not in the space: the nearest values; attention is not either: the
    # middle pooling; lr 3e-3 is above the bounds: clipped.
    assert all(p["hidden"] == 64 and p["embed_dim"] == 64 and p["dropout"] == 0.1 for p in points)
    assert all(p["pooling"] == "max" and p["batch_size"] == 16 and p["lr"] == 2e-3 for p in points)
    assert load_config(TuneJobConfig).search.seed_values == KNOWN_GOOD  # what the job seeds with


@pytest.mark.parametrize(
    "damage, says",
    [
        ("no_labels", "has no labeled 'train' rows"),
        ("inf_score", "has score inf; scores are finite numbers in 0–10"),
        ("out_of_range", "has score 11.0; scores are finite numbers in 0–10"),
        ("constant", "column 'score' has no variance (every labeled row scores 5)"),
        ("one_row_per_split", "has 1 'train' row(s); a search needs at least 2"),
        ("no_val", "has no 'val' rows at all"),
        ("no_score", "lacks column(s) ['score']"),
        ("text_column", "--data.text_column"),
        ("missing", "no corpus at"),
    ],
)
def test_tune_rejects_a_corpus_it_cannot_train_on_in_one_line(tiny_corpus, tmp_path, capsys, damage, says):
    """Checked before Ray starts; the message names the corpus and what to do."""
    from seqlab.cli import main

    data = tmp_path / "corpus-in"
    (data / "corpus").mkdir(parents=True)
    frame = pd.read_parquet(tiny_corpus / "corpus")
    if damage == "no_labels":
        frame = frame.assign(score=None)
    elif damage in ("inf_score", "out_of_range"):
        frame.loc[3, "score"] = float("inf") if damage == "inf_score" else 11.0
    elif damage == "constant":
        frame = frame.assign(score=5.0)
    elif damage == "one_row_per_split":
        frame = frame[frame["score"].notna()].groupby("split").head(1)
    elif damage == "no_val":
        frame = frame[frame["split"] != "val"]
    elif damage == "no_score":
        frame = frame.drop(columns=["score"])
    if damage != "missing":
        frame.to_parquet(data / "corpus" / "part-0.parquet")
    else:
        data = tmp_path / "nowhere"
    extra = ["--data.text_column=body"] if damage == "text_column" else []
    assert (
        main(["tune", "--data", str(data), "--out", str(tmp_path / "out"), "--smoke_test=true", *extra]) == 2
    )
    captured = capsys.readouterr()
    assert says in captured.err and "Traceback" not in captured.err and not captured.out
    assert not (tmp_path / "out" / "best").exists()


@pytest.mark.parametrize(
    "override, says",
    [
        ("--search.space.hidden=[-5]", "hidden value -5"),
        ("--search.space.dropout=[1.5]", "dropout value 1.5"),
        ("--search.space.batch_size=[0]", "batch_size value 0"),
        ("--search.space.lr=[0.001,inf]", "both finite"),
    ],
)
def test_a_search_space_the_model_rejects_fails_before_ray(override, says, tmp_path, capsys):
    """Before, every trial failed its RNNConfig validation one after another on a running Ray."""
    from seqlab.cli import main

    assert main(["tune", "--out", str(tmp_path / "o"), override]) == 2
    assert says in capsys.readouterr().err


def test_the_config_imports_without_torch():
    """A config module is read by CLIs and drivers that never train: it must not pay torch's import."""
    import subprocess
    import sys

    code = "import seqlab.tune.config, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_search_uses_the_configured_tpe_and_asha():
    from ray.tune.schedulers import AsyncHyperBandScheduler

    from seqlab.tune.search import build_search

    cfg = load_config(
        TuneJobConfig,
        None,
        [
            "--search.sampler=tpe",
            "--search.tpe_startup_trials=4",
            "--search.tpe_multivariate=true",
            "--search.grace_period=1",
        ],
    )
    searcher, scheduler = build_search(cfg)
    sampler = searcher._sampler
    assert sampler._n_startup_trials == 4 and sampler._multivariate and sampler._group
    assert isinstance(scheduler, AsyncHyperBandScheduler) and scheduler._max_t == cfg.train.max_epochs
    assert len(searcher._points_to_evaluate) == 6  # one per architecture (seed_architectures)
    plain, _ = build_search(
        load_config(TuneJobConfig, None, ["--search.sampler=tpe", "--search.tpe_multivariate=false"])
    )
    assert not plain._sampler._multivariate and not plain._sampler._group


def test_resuming_a_finished_search_says_so_and_changes_nothing(tmp_path, capsys, monkeypatch):
    import json
    import os

    import seqlab.ray_utils
    from seqlab.artifacts import write_manifest
    from seqlab.cli import main
    from seqlab.config import dump_config
    from seqlab.tune.job import JOB_CONFIG_FILE

    monkeypatch.setattr(seqlab.ray_utils, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    out = tmp_path / "search"
    out.mkdir()
    (out / JOB_CONFIG_FILE).write_text(json.dumps(dump_config(load_config(TuneJobConfig))), encoding="utf-8")
    write_manifest(out, stage="tune", metrics={"best": 1.0})  # written last, when a search finishes
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    assert main(["tune", "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"the search in {out} finished" in err and "nothing changed" in err
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()} == before
    assert os.listdir(out) == list(before)


def test_best_so_far_marks_where_the_seeded_trials_end(tmp_path):
    from seqlab.tune.report import best_so_far

    def trial(arch: str, seeded: bool, reported_at: list[float], val_r2: list[float]) -> dict:
        epochs = list(range(1, len(val_r2) + 1))
        return {"architecture": arch, "seeded": seeded, "reported_at": reported_at, "val_r2": val_r2,
                "epoch": epochs, "val_rmse": [1.0] * len(epochs)}  # fmt: skip

    curves = [
        trial("GRU", True, [1.0, 3.0], [0.5, 0.7]),
        trial("LSTM", True, [2.0], [0.6]),
        trial("GRU", False, [4.0, 5.0], [0.65, 0.75]),
    ]
    progress = best_so_far(curves)
    assert progress["best"] == [0.5, 0.6, 0.7, 0.7, 0.75]
    assert progress["seed_end"] == 3 and progress["seeded_best"] == 0.7 and progress["final"] == 0.75
    assert best_so_far([{"epoch": [1], "val_rmse": [1.0]}]) is None  # an older search without report times
    files = write_report(tmp_path, {}, curves)
    assert "best_so_far.png" in files
    text = (tmp_path / "report.md").read_text()
    assert "trial-epoch 3 of 5" in text and "(+0.050): the sampled trials kept improving" in text
    assert "![best so far](best_so_far.png)" in text


def test_the_default_sampler_is_gp_after_the_seeded_trials():
    import optuna

    from seqlab.tune.search import build_search

    searcher, _ = build_search(load_config(TuneJobConfig, None, []))
    assert isinstance(searcher._sampler, optuna.samplers.GPSampler)
    assert searcher._sampler._n_startup_trials == 6
