"""``seqlab tune``: search RNN scorers with Ray Tune + Optuna + ASHA.

Examples::

    seqlab tune --config jobs/tune.yaml --out runs/tune                     # bundled corpus
    seqlab tune --config jobs/tune.yaml --data runs/scrape --out runs/tune --search.num_samples=60
    seqlab tune --config jobs/tune.yaml --out runs/smoke --smoke_test=true  # about a minute on a CPU
    seqlab tune --resume runs/tune                                          # continue an interrupted search

Joins the cluster at ``RAY_ADDRESS`` when set (as under ``ray job submit``), else starts a local Ray.
"""

from __future__ import annotations

import argparse
import json
import sys

from seqlab.config import add_config_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default=None)
    parser.add_argument(
        "--data", help="corpus directory (corpus/ + manifest.json); default: the bundled corpus"
    )
    parser.add_argument("--out", help="output directory, local or URI (default: the config's 'out')")
    parser.add_argument(
        "--overwrite", action="store_true", help="write into --out even if another stage's artifact is there"
    )
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted search in DIR (its saved config is used; overrides still apply)",
    )


def load_job_config(args: argparse.Namespace):
    """The :class:`TuneJobConfig` for these arguments (``--resume DIR`` starts from the one saved there)."""
    from seqlab import artifacts
    from seqlab.config import ConfigError, load_config
    from seqlab.tune.config import TuneJobConfig
    from seqlab.tune.job import JOB_CONFIG_FILE

    saved = None
    if args.resume and not args.config:
        path = artifacts.join(args.resume, JOB_CONFIG_FILE)
        try:
            saved = json.loads(artifacts.read_text(path))
        except FileNotFoundError:
            raise ConfigError(
                f"--resume {args.resume}: no {JOB_CONFIG_FILE} there (not a seqlab tune output?)"
            ) from None
    flags = {"out": args.resume or args.out, "data.path": args.data}
    return load_config(TuneJobConfig, args.config, args.overrides, base=saved, flags=flags)


def run(args: argparse.Namespace) -> int:
    from seqlab import interrupts
    from seqlab.tune.job import run_tune_job

    cfg = load_job_config(args)
    try:
        summary = run_tune_job(cfg, resume=bool(args.resume), overwrite=args.overwrite)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:  # bad --data, --out, or corpus content
        print(f"seqlab tune: {exc}", file=sys.stderr)
        return 2
    if summary.get("finished"):
        print(
            f"seqlab tune: the search in {cfg.out} finished ({summary['created_at']}); nothing to resume, nothing "
            f"changed. Its scorer: {cfg.out}/best, its report: {cfg.out}/report/report.md",
            file=sys.stderr,
        )
        return 0
    if summary.get("interrupted"):
        print(
            f"seqlab tune: search interrupted; nothing was exported. Resume with: {summary['resume']}",
            file=sys.stderr,
        )
        return interrupts.exit_code()
    best, base = summary["best"], summary["baselines"]
    print(f"\nbest: {best['architecture']} (trial {best['trial_id']}) {json.dumps(best['config'])}")
    for split in ("val", "test"):
        if best.get(f"{split}_rmse") is not None:
            print(
                f"  {split}: MAE {best[f'{split}_mae']:.3f}  RMSE {best[f'{split}_rmse']:.3f}  R² {best[f'{split}_r2']:.3f}"
            )
    if best.get("test_rmse") is not None:
        floor = summary.get("noise_floor_rmse")
        print(
            f"  test RMSE vs TF-IDF+ridge {base['tfidf_ridge']['test_rmse']:.3f}, "
            f"mean {base['mean']['test_rmse']:.3f}" + (f", noise floor {floor:.3f}" if floor else "")
        )
    print(
        f"  {summary['num_trials']} trials, {summary['total_trial_epochs']} trial-epochs, {summary['elapsed_s']:.0f} s"
    )
    print(f"scorer: {cfg.out}/best   report: {cfg.out}/report/report.md")
    return 0
