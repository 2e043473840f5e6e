"""``seqlab bench tune``: the job's search (ASHA + Optuna GP after seeded architecture trials, with ``seqlab tune``'s defaults) vs random
search without early stopping, same space, same trial-epoch budget, several seeds.

Both searches sample the same space and may spend the same number of trial-epochs (one trial-epoch = one
epoch of one trial). Random search runs ``--random-trials`` trials to the end (FIFO, no patience); the job's
search runs as many trials as fit in the budget with :class:`seqlab.tune.config.SearchConfig`'s defaults
(scheduler, grace period, reduction factor, sampler settings, seeded architectures, concurrency), so the bench
measures what ``seqlab tune`` users get. Only the space, the epochs of a full trial and the budget are the
bench's (small enough for 2 CPU cores); patience is off on both sides so only the search differs.

Figures of merit, per seed, then median and spread over ``--repeats`` seeds:

* trial-epochs spent (in reporting order, across concurrent trials) until a trial first reaches within
  ``--tolerance`` R² (val) of the better of the two bests, that search's and random search's, with that
  seed (each search against random, so adding a variant moves no one's target); ``never`` is charged the
  whole budget (so a ratio with it is a bound);
* the best val R² each method found with the whole (equal) budget;
* what the sampled trials added: best R² at the budget less the best the seeded architecture trials reached
  (``search.seed_architectures``; sampled trials run between them, so not less the best-so-far where the
  last seeded trial ended, which the plot of ``seqlab tune``'s report marks).

Goal: median ratio (job's search / random) <= 0.40, a better-or-equal best in every seed, and a median gain
over the seeded trials >= 0.01 R². ``--report-at 60`` with a budget of 120 also scores the same searches cut
at 60 trial-epochs (a search does not know its budget, it is only stopped there).
``--variant NAME=FIELD=VALUE,...`` adds searches with overrides (e.g. ``--variant
g1=search.grace_period=1``) to compare settings in one run. The table is printed; a plot of best-so-far R²
vs trial-epochs (median per method, min-max band over seeds) and the raw curves (JSON) go to ``--out``.

The default run (600 documents, 128 tokens, a narrow space, 6-epoch trials, 60 trial-epochs per search,
5 seeds) took 997 s on 2 shared CPU cores (load 5-10 from other work; the job's search ~100 s, random
~53 s per seed, plus Ray's start).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time

from seqlab.artifacts import atomic_write_text

BASELINE = "random"
JOB = "seqlab"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="corpus directory (default: the bundled corpus)")
    parser.add_argument("--max-docs", type=int, default=600, help="labeled documents to use (default 600)")
    parser.add_argument("--max-len", type=int, default=128, help="tokens kept per document")
    parser.add_argument("--max-epochs", type=int, default=6, help="epochs of a full trial (ASHA's max_t)")
    parser.add_argument(
        "--random-trials", type=int, default=10, help="random-search trials (budget = this x epochs)"
    )
    parser.add_argument("--tolerance", type=float, default=0.02, help="R² distance to the best that counts")
    parser.add_argument("--repeats", type=int, default=5, help="independent seeds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--concurrency", type=int, default=2, help="random search's trials at once")
    parser.add_argument("--full-space", action="store_true", help="the job's full default space (slow)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=FIELD=VALUE,...",
        help="another ASHA+Optuna search: the job's defaults with these overrides (repeatable)",
    )
    parser.add_argument(
        "--report-at",
        type=int,
        action="append",
        default=[],
        metavar="TRIAL_EPOCHS",
        help="also summarize the same searches cut at this smaller budget (repeatable)",
    )
    parser.add_argument("--no-job", action="store_true", help="leave out the job-defaults search")
    parser.add_argument(
        "--out", default="bench-tune", help="where the plot and curves go (default ./bench-tune)"
    )


def first_reach(curve: list[float], target: float) -> int | None:
    """Trial-epochs (1-based) until a report's R² >= target; None if never."""
    for spent, r2 in enumerate(curve, start=1):
        if r2 >= target:
            return spent
    return None


def best_so_far(curve: list[float]) -> list[float]:
    return list(itertools.accumulate(curve, max))


def _search(cfg, data, storage: str, budget: int) -> tuple[list[float], list[bool]]:
    """Run one search: val R² of every epoch report in reporting order, cut at ``budget`` (a trial still
    running when the budget stopper fires may report once more), and which reports came from the seeded
    architecture trials."""
    from seqlab.tune.search import build_tuner, seeded_points

    points = seeded_points(cfg.search)
    grid = build_tuner(cfg, data, storage).fit()
    reports = []
    for result in grid:
        df = result.metrics_dataframe
        if df is None or df.empty:
            continue
        seeded = {k: result.config.get(k) for k in points[0]} in points if points else False
        reports += [
            (float(t), float(r), seeded) for t, r in zip(df["reported_at"], df["val_r2"], strict=True)
        ]
    reports = sorted(reports)[:budget]
    return [r2 for _, r2, _ in reports], [seeded for _, _, seeded in reports]


def _variants(args: argparse.Namespace) -> dict[str, list[str]]:
    variants = {} if args.no_job else {JOB: []}
    for spec in args.variant:
        name, _, overrides = spec.partition("=")
        variants[name] = [f"--{o.strip()}" for o in overrides.split(",") if o.strip()]
    return variants


def _spread(values: list[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def seeds_end(seeded: list[bool]) -> int:
    """Trial-epochs spent (1-based) when the last seeded trial reported; 0 without seeded trials."""
    return max((i for i, flag in enumerate(seeded, start=1) if flag), default=0)


def gain_after_seeds(curve: list[float], seeded: list[bool]) -> float:
    """Best R² of the whole ``curve`` less the best the seeded trials reached (their reports are flagged in
    ``seeded``): what the sampler's own trials added. Measured against the seeded trials, not against the
    best-so-far where the last seeded trial ended, because sampled trials run between the seeded ones (a
    slow seeded trial can end late) and what they find there is the sampler's too. No seeded trials: the
    whole best."""
    if not curve:
        return 0.0
    return max(curve) - max((r2 for r2, flag in zip(curve, seeded, strict=True) if flag), default=0.0)


def score_seed(
    seed: int, curves: dict[str, list[float]], seeded: dict[str, list[bool]], budget: int, tolerance: float
) -> dict:
    """One seed's row of the table from each method's curve (cut at ``budget``): best, gain after the seeded
    trials, and trial-epochs until each search and random search reach the better best less ``tolerance``."""
    curves = {m: c[:budget] for m, c in curves.items()}
    seeded = {m: flags[:budget] for m, flags in seeded.items()}
    row: dict = {"seed": seed, "best": {}, "reach": {}, "gain": {}, "seed_end": {}}
    for m, curve in curves.items():
        row["best"][m] = max(curve)
        row["gain"][m] = gain_after_seeds(curve, seeded[m])
        row["seed_end"][m] = seeds_end(seeded[m])
    for m in curves:
        if m == BASELINE:
            continue
        # Each search against random search: the target is the best of the two, less the tolerance.
        target = max(row["best"][m], row["best"][BASELINE]) - tolerance
        row["reach"][m] = (first_reach(curves[m], target), first_reach(curves[BASELINE], target))
    return row


def summarize(rows: list[dict], methods: list[str], budget: int, tolerance: float) -> list[str]:
    """The printed table. Per seed and search: trial-epochs until val R² >= (best of it and random search)
    - tolerance, for it and for random search, and its best R²; then per search the median [min–max] over
    seeds of those, of the ratio to random search, and the seeds where its best >= random's."""
    searches = [m for m in methods if m != BASELINE]
    lines = [f"budget per search: {budget} trial-epochs; tolerance {tolerance} R²; {len(rows)} seed(s)"]
    lines.append(
        "per seed: trial-epochs until val R² >= max(best of search, best of random) - tolerance "
        "(search / random), best val R² (search / random), gain in best R² after the seeded trials"
    )
    lines.append("seed  " + "  ".join(f"{m:>38}" for m in searches))
    for row in rows:
        cells = [
            f"{row['reach'][m][0] or 'never':>5}/{row['reach'][m][1] or 'never':<5} "
            f"{row['best'][m]:.3f}/{row['best'][BASELINE]:.3f} {row['gain'][m]:+.3f}"
            for m in searches
        ]
        lines.append(f"{row['seed']:4d}  " + "  ".join(f"{c:>38}" for c in cells))
    lines.append("")
    lines.append(
        f"{'search':<18} {'trial-epochs to reach':>22} {'random, same target':>22} {'ratio to random':>22} "
        f"{'best R² at budget':>22} {'best >= random':>15} {'gain after seeds':>22}"
    )
    random_best = [row["best"][BASELINE] for row in rows]
    lines.append(f"{BASELINE:<18} {'':>22} {'':>22} {'':>22} {_spread(random_best):>22}")
    verdicts = []
    for m in searches:
        reach = [row["reach"][m][0] or budget for row in rows]
        base = [row["reach"][m][1] or budget for row in rows]
        ratio = [a / b for a, b in zip(reach, base, strict=True)]
        best = [row["best"][m] for row in rows]
        wins = sum(round(row["best"][m], 3) >= round(row["best"][BASELINE], 3) for row in rows)
        lines.append(
            f"{m:<18} {_spread(reach, '{:.0f}'):>22} {_spread(base, '{:.0f}'):>22} "
            f"{_spread(ratio, '{:.2f}'):>22} {_spread(best):>22} {wins:>10}/{len(rows)} "
            f"{_spread([row['gain'][m] for row in rows]):>22}"
        )
        med = statistics.median(ratio)
        gain = statistics.median(row["gain"][m] for row in rows)
        verdict = "met" if med <= 0.4 and wins == len(rows) and gain >= 0.01 else "not met"
        verdicts.append(
            f"goal for {m} (median ratio <= 0.40, best >= random's in every seed, median gain over the "
            f"seeded trials >= 0.01): {med:.2f}, {wins}/{len(rows)}, {gain:+.3f} -> {verdict}"
        )
    lines.append(
        "median [min–max] over seeds; 'never' counts as the whole budget (the ratio is then a bound)"
    )
    return lines + verdicts


def plot(curves: dict[str, list[list[float]]], budget: int, path: str, title: str) -> None:
    """Best-so-far val R² vs trial-epochs: median over seeds per method, min–max band shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(1, budget + 1)
    for method, runs in curves.items():
        # A search that reported fewer epochs than the budget keeps its best from there on.
        ys = np.array([best_so_far(c) + [max(c)] * (budget - len(c)) for c in runs])
        (line,) = ax.plot(x, np.median(ys, axis=0), label=f"{method} (median of {len(runs)})")
        ax.fill_between(x, ys.min(axis=0), ys.max(axis=0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("trial-epochs spent")
    ax.set_ylabel("best val R² so far")
    ax.set_title(title, fontsize=9)
    lows = [min(best_so_far(c)[min(len(c), budget // 6) - 1] for c in runs) for runs in curves.values()]
    ax.set_ylim(bottom=max(0.0, min(lows) - 0.05))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _dump(
    out: str, budget: int, tolerance: float, variants: dict, rows: list, curves: dict, seeded: dict
) -> None:
    """The raw curves so far (after every seed, so an interrupted bench keeps what it measured)."""
    payload = {
        "budget": budget,
        "tolerance": tolerance,
        "variants": variants,
        "rows": rows,
        "curves": curves,
        "seeded": seeded,
    }
    atomic_write_text(os.path.join(out, "tune_curves.json"), json.dumps(payload, indent=1))


def run(args: argparse.Namespace) -> int:
    from seqlab.config import load_config
    from seqlab.models import TokenizerConfig
    from seqlab.ray_utils import ray_session
    from seqlab.tune.config import TuneJobConfig
    from seqlab.tune.data import prepare_data

    corpus = prepare_data(args.data, TokenizerConfig(max_len=args.max_len), max_docs=args.max_docs)
    budget = args.random_trials * args.max_epochs
    small_space = [
        "--search.space.hidden=[16,32,64]",
        "--search.space.embed_dim=[32,64]",
        "--search.space.layers=[1,2]",
        "--search.space.batch_size=[16,32,64]",
    ]
    common = [
        f"--train.max_epochs={args.max_epochs}",
        "--train.patience=0",  # no early stopping inside trials: only the search differs
        "--run.verbose=0",
        "--run.max_failures=0",
        *([] if args.full_space else small_space),
    ]
    variants = _variants(args)
    methods = [*variants, BASELINE]
    rows: list[dict] = []
    curves: dict[str, list[list[float]]] = {m: [] for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    seeded: dict[str, list[list[bool]]] = {m: [] for m in methods}
    t_start = time.perf_counter()
    with ray_session():
        for repeat in range(args.repeats):
            seed = args.seed + repeat
            cfgs = {
                name: load_config(
                    TuneJobConfig,
                    None,
                    [
                        *common,
                        f"--search.seed={seed}",
                        "--search.algorithm=optuna",
                        "--search.scheduler=asha",
                        f"--search.num_samples={budget}",  # the trial-epoch budget ends it first
                        f"--search.max_trial_epochs={budget}",
                        f"--run.name={name}",
                        *overrides,  # everything else: the job's defaults
                    ],
                )
                for name, overrides in variants.items()
            }
            cfgs[BASELINE] = load_config(
                TuneJobConfig,
                None,
                [
                    *common,
                    f"--search.seed={seed}",
                    "--search.algorithm=random",
                    "--search.scheduler=fifo",
                    "--search.seed_architectures=false",  # plain random sampling
                    f"--search.max_concurrent={args.concurrency}",
                    f"--search.num_samples={args.random_trials}",
                    f"--run.name={BASELINE}",
                ],
            )
            seed_curves: dict[str, list[float]] = {}
            with tempfile.TemporaryDirectory() as storage:
                for name, cfg in cfgs.items():
                    t0 = time.perf_counter()
                    curve, flags = _search(cfg, corpus.encoded, storage, budget)
                    seconds[name].append(time.perf_counter() - t0)
                    curves[name].append(curve)
                    seeded[name].append(flags)
                    seed_curves[name] = curve
            row = score_seed(seed, seed_curves, {m: seeded[m][-1] for m in methods}, budget, args.tolerance)
            rows.append(row)
            print(
                f"seed {seed}: "
                + "; ".join(
                    f"{m} best {row['best'][m]:.3f}"
                    + (
                        f" reach {row['reach'][m][0] or 'never'} vs {row['reach'][m][1] or 'never'}"
                        f" gain over the seeded trials {row['gain'][m]:+.3f} (they end at {row['seed_end'][m]})"
                        if m in variants
                        else ""
                    )
                    + f" ({len(curves[m][-1])} trial-epochs, {seconds[m][-1]:.0f} s)"
                    for m in methods
                ),
                flush=True,
            )
            _dump(args.out, budget, args.tolerance, variants, rows, curves, seeded)
    wall = time.perf_counter() - t_start

    lines = summarize(rows, methods, budget, args.tolerance)
    for cut in sorted({b for b in args.report_at if b < budget}, reverse=True):
        # A search does not know its budget (it only stops at it), so its first `cut` trial-epochs are what a
        # search with budget `cut` would have spent; random search's first trials are the same samples too.
        cut_rows = [
            score_seed(
                row["seed"],
                {m: curves[m][i][:cut] for m in methods},
                {m: seeded[m][i] for m in methods},
                cut,
                args.tolerance,
            )
            for i, row in enumerate(rows)
        ]
        lines += ["", f"--- the same searches cut at {cut} trial-epochs ---"]
        lines += summarize(cut_rows, methods, cut, args.tolerance)
    lines.append(
        "seconds per search (median): "
        + ", ".join(f"{m} {statistics.median(seconds[m]):.0f}" for m in methods)
        + f"; whole bench {wall:.0f} s"
    )
    print("\n" + "\n".join(lines))
    png = os.path.join(args.out, "tune_best_so_far.png")
    title = (
        f"{args.max_docs} docs, {args.max_len} tokens, {args.max_epochs}-epoch trials, budget {budget} "
        f"trial-epochs, seeds {args.seed}..{args.seed + args.repeats - 1}"
    )
    plot(curves, budget, png, title)
    atomic_write_text(os.path.join(args.out, "tune_table.txt"), "\n".join(lines) + "\n")
    print(f"plot: {os.path.abspath(png)}")
    print(f"curves and table: {os.path.abspath(args.out)}/tune_curves.json, tune_table.txt")
    return 0
