"""What the search's sampler learns from: the seeded architecture trials' results reach Optuna's study,
and a resumed search (the searcher's saved state, as ``Tuner.restore`` reloads it) still holds them.
No Ray cluster: the searcher is driven the way Tune drives it (suggest, on_trial_complete)."""

from __future__ import annotations

import pytest

from seqlab.config import load_config
from seqlab.tune.config import TuneJobConfig
from seqlab.tune.search import METRIC, MODE, build_param_space, build_search, seeded_points

SMALL = ["--search.space.cell=[gru,lstm]", "--search.space.hidden=[16,32]", "--search.space.layers=[1]"]


def _searcher(*overrides: str):
    cfg = load_config(TuneJobConfig, None, [*SMALL, *overrides])
    searcher, _ = build_search(cfg)
    searcher.set_search_properties(METRIC, MODE, build_param_space(cfg.search.space))
    return cfg, searcher


def _told(searcher) -> list:
    """The finished trials Optuna's study holds (what the sampler models)."""
    return [t for t in searcher._ot_study.trials if t.value is not None]


def _run_seeded_trials(cfg, searcher) -> list[float]:
    points = seeded_points(cfg.search)
    values = [1.0 + i / 10 for i in range(len(points))]
    for i, (point, value) in enumerate(zip(points, values, strict=True)):
        assert searcher.suggest(f"t{i}") == point  # the seeded points come first, in order
        searcher.on_trial_result(f"t{i}", {METRIC: value + 0.5, "training_iteration": 1})
        searcher.on_trial_complete(f"t{i}", {METRIC: value, "training_iteration": 2})
    return values


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_a_seeded_trials_result_reaches_the_sampler(sampler):
    cfg, searcher = _searcher(f"--search.sampler={sampler}")
    values = _run_seeded_trials(cfg, searcher)
    told = _told(searcher)
    assert [t.params for t in told] == seeded_points(cfg.search)
    assert [t.value for t in told] == values
    # the study's best is the best seeded trial, so the next samples are modeled on it
    assert searcher._ot_study.best_trial.params == seeded_points(cfg.search)[0]
    assert searcher.suggest("next") not in seeded_points(cfg.search)


def test_a_resumed_search_keeps_the_seeded_results(tmp_path):
    cfg, searcher = _searcher()
    values = _run_seeded_trials(cfg, searcher)
    searcher.save_to_dir(str(tmp_path))  # what Tune saves with the experiment's state

    _, resumed = _searcher()
    resumed.restore_from_dir(str(tmp_path))
    assert [t.value for t in _told(resumed)] == values
    assert [t.params for t in _told(resumed)] == seeded_points(cfg.search)
    # nothing is evaluated twice: the seeded points are not queued again after the resume
    assert resumed.suggest("after-resume") not in seeded_points(cfg.search)


def test_constant_liar_and_the_sampler_are_configurable():
    import optuna

    _, searcher = _searcher("--search.sampler=tpe", "--search.tpe_constant_liar=true")
    sampler = searcher._sampler
    assert isinstance(sampler, optuna.samplers.TPESampler) and sampler._constant_liar
    _, searcher = _searcher("--search.sampler=gp")
    assert isinstance(searcher._sampler, optuna.samplers.GPSampler)
