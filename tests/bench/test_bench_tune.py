"""``seqlab bench tune``: its bookkeeping (reach, table, plot) without Ray; the searches it compares are the
job's own (``build_tuner``), tested in tests/tune."""

from __future__ import annotations

import argparse

import pytest

from seqlab.bench import tune as bench


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_five_seeds_and_the_job_search_against_random():
    args = _parse([])
    assert args.repeats == 5 and args.out == "bench-tune"
    assert bench._variants(args) == {bench.JOB: []}  # the job's defaults, no overrides
    args = _parse(["--variant", "g1=search.grace_period=1, search.tpe_startup_trials=4", "--no-job"])
    assert bench._variants(args) == {"g1": ["--search.grace_period=1", "--search.tpe_startup_trials=4"]}


def test_first_reach_and_best_so_far():
    curve = [0.1, 0.5, 0.3, 0.7, 0.69]
    assert bench.first_reach(curve, 0.5) == 2 and bench.first_reach(curve, 0.71) is None
    assert bench.best_so_far(curve) == [0.1, 0.5, 0.5, 0.7, 0.7]


def test_summary_reports_median_spread_ratio_and_wins():
    budget = 10
    rows = [
        {
            "seed": s,
            "best": {"seqlab": b, "random": 0.6},
            "reach": {"seqlab": (r, 8)},
            "gain": {"seqlab": 0.01},
        }
        for s, (b, r) in enumerate([(0.7, 2), (0.6, 3), (0.5, None), (0.65, 4), (0.61, 1)])
    ]
    lines = bench.summarize(rows, ["seqlab", "random"], budget, 0.02)
    text = "\n".join(lines)
    seqlab_row = next(line for line in lines if line.startswith("seqlab "))
    # reach: 2, 3, 10 (never -> budget), 4, 1 -> median 3; ratio to random's 8: median 3/8
    assert "3 [1–10]" in seqlab_row and "0.38 [0.12–1.25]" in seqlab_row and "4/5" in seqlab_row
    assert "never" in text and "-> not met" in text  # 4/5: one seed below random's best
    rows[2]["best"]["seqlab"] = 0.6  # now every seed at least as good as random, gain 0.01
    assert "-> met" in "\n".join(bench.summarize(rows, ["seqlab", "random"], budget, 0.02))
    for row in rows:
        row["gain"]["seqlab"] = 0.0  # the sampled trials added nothing
    assert "-> not met" in "\n".join(bench.summarize(rows, ["seqlab", "random"], budget, 0.02))


def test_plot_writes_a_png(tmp_path):
    curves = {"seqlab": [[0.1, 0.4, 0.6], [0.2, 0.5]], "random": [[0.1, 0.2, 0.3], [0.3, 0.3, 0.5]]}
    path = tmp_path / "p.png"
    bench.plot(curves, 3, str(path), "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gain_over_the_seeded_trials_and_a_seed_row_cut_at_a_smaller_budget():
    seqlab = [0.2, 0.8, 0.5, 0.81, 0.7, 0.83]
    seeded = [True, True, False, False, True, False]  # a sampled trial ran between the seeded ones
    random = [0.1, 0.3, 0.82, 0.4, 0.5, 0.6]
    assert bench.seeds_end(seeded) == 5 and bench.seeds_end([False] * 6) == 0
    assert bench.gain_after_seeds(seqlab, seeded) == pytest.approx(0.03)  # over the seeded best, 0.8
    assert bench.gain_after_seeds(random, [False] * 6) == pytest.approx(0.82)  # no seeded trials: all of it
    flags = {"seqlab": seeded, "random": [False] * 6}
    row = bench.score_seed(7, {"seqlab": seqlab, "random": random}, flags, 6, 0.02)
    assert row["best"] == {"seqlab": 0.83, "random": 0.82} and row["seed_end"]["seqlab"] == 5
    assert row["reach"]["seqlab"] == (4, 3)  # target 0.83 - 0.02
    cut = bench.score_seed(7, {"seqlab": seqlab, "random": random}, flags, 4, 0.02)
    assert cut["best"]["seqlab"] == 0.81 and cut["gain"]["seqlab"] == pytest.approx(0.01)
    assert cut["seed_end"]["seqlab"] == 2
    args = _parse(["--report-at", "60", "--report-at", "90"])
    assert args.report_at == [60, 90]
