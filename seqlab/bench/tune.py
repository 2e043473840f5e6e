"""``seqlab bench tune``: ASHA + Optuna vs random search without early stopping, same space and budget.

Both searches sample the same space and may spend the same number of trial-epochs (one trial-epoch = one
epoch of one trial). Random search runs ``budget / max_epochs`` trials to the end (FIFO, no patience); ASHA +
Optuna (TPE) runs as many trials as fit in the budget, stopping weak ones at its rungs. The figure of merit:
trial-epochs spent (in reporting order) until a trial first reaches within ``--tolerance`` R² (val) of the
best R² either search found (and, second reading, of the best R² random search found with its whole
budget). Goal: ASHA + Optuna needs <= 40% of random search's trial-epochs.

The default run is deliberately small (600 documents, 128 tokens, a narrow space, 6-epoch trials, 48
trial-epochs per search); it takes about 3–5 minutes on 2 CPU cores. ``--repeats`` averages over seeds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="corpus directory (default: the bundled corpus)")
    parser.add_argument("--max-docs", type=int, default=600, help="labeled documents to use (default 600)")
    parser.add_argument("--max-len", type=int, default=128, help="tokens kept per document")
    parser.add_argument("--max-epochs", type=int, default=6, help="epochs of a full trial (ASHA's max_t)")
    parser.add_argument(
        "--random-trials", type=int, default=8, help="random-search trials (budget = this x epochs)"
    )
    parser.add_argument("--tolerance", type=float, default=0.02, help="R² distance to the best that counts")
    parser.add_argument("--repeats", type=int, default=1, help="independent seeds (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once")
    parser.add_argument("--full-space", action="store_true", help="the job's full default space (slow)")


def _first_reach(reports: list[tuple[float, float]], target: float) -> int | None:
    """Trial-epochs (1-based, in report order) until a report's R² >= target; None if never."""
    for spent, (_, r2) in enumerate(sorted(reports), start=1):
        if r2 >= target:
            return spent
    return None


def _search(cfg, data, storage: str) -> list[tuple[float, float]]:
    """Run one search; returns every epoch report as (reported_at, val_r2)."""
    from seqlab.tune.search import build_tuner

    grid = build_tuner(cfg, data, storage).fit()
    reports = []
    for result in grid:
        df = result.metrics_dataframe
        if df is None or df.empty:
            continue
        reports += [(float(t), float(r)) for t, r in zip(df["reported_at"], df["val_r2"], strict=True)]
    return reports


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
        "--train.patience=0",  # no early stopping inside trials: only the scheduler differs
        "--search.seed_architectures=false",  # both searches start from their own samples
        f"--search.max_concurrent={args.concurrency}",
        "--run.verbose=0",
        "--run.max_failures=0",
        *([] if args.full_space else small_space),
    ]
    with ray_session():
        rows = []
        for repeat in range(args.repeats):
            seed = args.seed + repeat
            asha_cfg = load_config(
                TuneJobConfig,
                None,
                [
                    *common,
                    f"--search.seed={seed}",
                    "--search.algorithm=optuna",
                    "--search.scheduler=asha",
                    "--search.grace_period=1",
                    f"--search.num_samples={budget}",  # the trial-epoch budget ends it first
                    f"--search.max_trial_epochs={budget}",
                    "--run.name=asha_optuna",
                ],
            )
            random_cfg = load_config(
                TuneJobConfig,
                None,
                [
                    *common,
                    f"--search.seed={seed}",
                    "--search.algorithm=random",
                    "--search.scheduler=fifo",
                    f"--search.num_samples={args.random_trials}",
                    "--run.name=random",
                ],
            )
            with tempfile.TemporaryDirectory() as storage:
                t0 = time.perf_counter()
                asha = _search(asha_cfg, corpus.encoded, storage)
                t1 = time.perf_counter()
                rand = _search(random_cfg, corpus.encoded, storage)
                t2 = time.perf_counter()
            best_a, best_r = max(x for _, x in asha), max(x for _, x in rand)
            row = {"seed": seed, "best_asha": best_a, "best_random": best_r}
            # Two readings of "the best found": by either search, and by random search (its full-budget
            # result, i.e. how soon ASHA+Optuna matches what random search ends with).
            for key, best in (("overall", max(best_a, best_r)), ("random", best_r)):
                target = best - args.tolerance
                row[key] = (_first_reach(asha, target), _first_reach(rand, target))
            rows.append(row)
            print(
                f"seed {seed}: best val R² ASHA+Optuna {best_a:.3f} ({len(asha)} trial-epochs, {t1 - t0:.0f} s), "
                f"random {best_r:.3f} ({len(rand)} trial-epochs, {t2 - t1:.0f} s)"
            )

    # A search that never gets there is charged its whole budget, which makes the ratio a bound.
    print(f"\nbudget per search: {budget} trial-epochs; tolerance {args.tolerance} R²; {len(rows)} seed(s)")
    print("trial-epochs until val R² >= best - tolerance (ASHA+Optuna / random = ratio)")
    print(
        "seed   best R² ASHA  random   | best of both: ASHA  random  ratio | random's best: ASHA  random  ratio"
    )
    ratios: dict[str, list[float]] = {"overall": [], "random": []}
    for row in rows:
        cells = []
        for key in ("overall", "random"):
            a, r = row[key]
            ratio = (a or budget) / (r or budget)
            bound = "<=" if r is None and a is not None else (">=" if a is None and r is not None else "")
            ratios[key].append(ratio)
            cells.append(f"{a or 'never':>6}  {r or 'never':>6}  {bound}{ratio:.2f}")
        print(
            f"{row['seed']:4d}   {row['best_asha']:12.3f}  {row['best_random']:6.3f}   |   {cells[0]:>22}   |   "
            f"{cells[1]:>22}"
        )
    for key, label in (("overall", "best of both searches"), ("random", "random search's best")):
        mean_ratio = statistics.mean(ratios[key])
        verdict = "met" if mean_ratio <= 0.4 else "not met"
        print(
            f"ratio to reach {label} (mean over seeds): {mean_ratio:.2f} (goal <= 0.40: {verdict}; "
            "'never' counts as the whole budget)"
        )
    return 0
