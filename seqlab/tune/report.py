"""The search report: the seed's comparison table measured, learning curves, parameter importances.

:func:`write_report` turns a finished search's summary (see ``seqlab.tune.job``) and its trials into
``report.md`` + PNG plots (matplotlib, Agg backend) + ``results.json``. :func:`param_importances` rebuilds an
Optuna study from the trials' results, so it works for any search algorithm (random search included).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from pathlib import Path
from typing import Any

from seqlab.artifacts import json_text
from seqlab.models.config import CELLS, architecture_name
from seqlab.tune.config import CHOICE_KEYS, SearchSpace

__all__ = [
    "ARCHITECTURES",
    "MIN_IMPORTANCE_TRIALS",
    "best_so_far",
    "importance_note",
    "param_importances",
    "write_report",
]

log = logging.getLogger(__name__)

# The seed table's rows in its order, each cell uni- then bidirectional: RNN, BiRNN, GRU, BiGRU, LSTM, BiLSTM.
ARCHITECTURES = tuple(architecture_name(cell, bi) for cell in CELLS for bi in (False, True))
# Six hues far apart (tab10's blue, orange, green, red, purple, brown); bidirectional ones are also dashed.
_COLORS = dict(
    zip(ARCHITECTURES, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"), strict=True)
)
# fANOVA fits a random forest to (parameters -> objective); below this many trials it mostly fits noise
# (a demo search of 8 trials gave `lr` 0.017 importance although every trial had the same lr).
MIN_IMPORTANCE_TRIALS = 20


def _linestyle(arch: str) -> str:
    return "--" if arch.startswith("Bi") else "-"


def param_importances(
    configs: list[dict[str, Any]], values: list[float], space: SearchSpace
) -> dict[str, float]:
    """fANOVA importances (Optuna) of the searched parameters for ``values`` (lower = better).

    Args:
        configs: each trial's sampled parameters.
        values: each trial's objective (its best val RMSE when the search ended it).
        space: the search space (parameters with a single value are skipped).

    Returns:
        ``{param: importance}`` over the parameters that took more than one value among the trials, summing
        to 1, most important first; empty when fewer than :data:`MIN_IMPORTANCE_TRIALS` trials finished
        with a value or nothing varied (:func:`importance_note` says which).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    distributions: dict[str, Any] = {}
    for name in CHOICE_KEYS:
        choices = list(dict.fromkeys(getattr(space, name)))
        if len(choices) > 1:
            distributions[name] = CategoricalDistribution(choices)
    if space.lr[0] < space.lr[1]:
        distributions["lr"] = FloatDistribution(space.lr[0], space.lr[1], log=True)
    pairs = [(c, v) for c, v in zip(configs, values, strict=True) if math.isfinite(v)]
    # only what the trials really varied: a parameter every trial shared explains nothing
    distributions = {k: d for k, d in distributions.items() if len({repr(c[k]) for c, _ in pairs}) > 1}
    if len(pairs) < MIN_IMPORTANCE_TRIALS or not distributions:
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    for config, value in pairs:
        params = {k: config[k] for k in distributions}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    try:
        # fANOVA explicitly (seeded): newer Optuna defaults to PED-ANOVA, which ranks what separates the
        # top quantile rather than what explains the objective's variance.
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        return {k: float(v) for k, v in importances.items()}
    except (RuntimeError, ValueError) as exc:  # e.g. every trial has the same value
        log.warning("parameter importances unavailable: %s", exc)
        return {}


def importance_note(values: list[float], importances: dict[str, float]) -> str:
    """One sentence for the report: what the importances rest on, or why there are none."""
    finished = sum(1 for v in values if math.isfinite(v))
    if importances:
        return f"fANOVA over {finished} trials with a result"
    if finished < MIN_IMPORTANCE_TRIALS:
        return (
            f"not estimated: {finished} trial(s) with a result, fewer than the {MIN_IMPORTANCE_TRIALS} "
            "fANOVA needs to tell a parameter's effect from noise"
        )
    return "not estimated: no searched parameter took more than one value among the trials"


def _early_stops(curves: list[dict[str, Any]], max_epochs: int | None) -> str:
    """What ended trials before ``max_epochs``, as a title line: counts per last epoch."""
    if not curves:
        return "no trial reported"
    lasts = [max(c["epoch"]) if c["epoch"] else 0 for c in curves]
    full = max_epochs or max(lasts)
    stopped = sorted(x for x in lasts if x < full)
    if not stopped:
        return f"all {len(curves)} trials ran the full {full} epochs; none was stopped early"
    at = ", ".join(f"{stopped.count(e)} after epoch {e}" for e in sorted(set(stopped)))
    return f"{len(stopped)} of {len(curves)} trials stopped before epoch {full} ({at})"


def best_so_far(curves: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The search's best val R² so far against trial-epochs spent (every trial's epoch reports merged in
    the order they were reported), where the seeded architecture trials ended, and what they reached.

    Returns:
        ``{"best": [...], "seed_end": k, "seeded_best": r2, "final": r2}`` (``seed_end`` is the trial-epoch
        of the last seeded trial's last report, 0 and ``seeded_best`` None without seeded trials), or None
        when the trials carry no report times (an older search). ``final - seeded_best`` is what the
        sampler's own trials added (they also run between the seeded ones, so it is measured against the
        seeded trials' best, not against the best-so-far at ``seed_end``).
    """
    reports = [
        (t, r2, bool(c.get("seeded")))
        for c in curves
        if len(c.get("reported_at", [])) == len(c.get("val_r2", [])) > 0
        for t, r2 in zip(c["reported_at"], c["val_r2"], strict=True)
    ]
    if not reports:
        return None
    reports.sort()
    best = list(itertools.accumulate((r2 for _, r2, _ in reports), max))
    seed_end = max((i for i, (_, _, seeded) in enumerate(reports, start=1) if seeded), default=0)
    return {
        "best": best,
        "seed_end": seed_end,
        "seeded_best": max((r2 for _, r2, seeded in reports if seeded), default=None),
        "final": best[-1],
    }


def _progress_line(progress: dict[str, Any]) -> str:
    """One sentence: did the search keep improving after its seeded trials?"""
    total = len(progress["best"])
    if not progress["seed_end"]:
        return f"Best val R² {progress['final']:.3f} after {total} trial-epochs (no seeded trials)."
    gain = progress["final"] - progress["seeded_best"]
    verdict = (
        "the sampled trials kept improving on them"
        if gain > 0
        else "the sampled trials have not beaten them: more trial-epochs or a wider space may help"
    )
    return (
        f"Best val R² of the seeded architecture trials {progress['seeded_best']:.3f} (the last of them "
        f"ended at trial-epoch {progress['seed_end']} of {total}), of the whole search "
        f"{progress['final']:.3f} ({gain:+.3f}): {verdict}."
    )


def _plot_best_so_far(path: Path, progress: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = progress["best"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.step(range(1, len(best) + 1), best, where="post", color="#1f77b4", label="best val R² so far")
    if progress["seed_end"]:
        ax.axvline(progress["seed_end"], color="black", linestyle=":", label="seeded architecture trials end")
        ax.axhline(progress["seeded_best"], color="gray", linestyle="--", label="best of the seeded trials")
    ax.set_xlabel("trial-epochs spent (all trials, in reporting order)")
    ax.set_ylabel("best val R² so far")
    ax.set_ylim(bottom=max(0.0, min(best[len(best) // 6 :] or best) - 0.05))
    ax.set_title("Is the search still learning?", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _plot_curves(path: Path, curves: list[dict[str, Any]], summary: dict[str, Any], stops: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(9, 5))
    seen: set[str] = set()
    for curve in curves:
        arch = curve["architecture"]
        ax.plot(
            curve["epoch"],
            curve["val_rmse"],
            color=_COLORS.get(arch, "gray"),
            linestyle=_linestyle(arch),
            alpha=0.75,
            marker=".",
            label=arch if arch not in seen else None,
        )
        seen.add(arch)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    floor = summary.get("noise_floor_rmse")
    if floor:
        ax.axhline(floor, color="black", linestyle=":", label=f"noise floor {floor:.2f}")
    tfidf = summary.get("baselines", {}).get("tfidf_ridge", {}).get("val_rmse")
    if tfidf:
        ax.axhline(tfidf, color="gray", linestyle="--", label=f"TF-IDF + ridge (val) {tfidf:.2f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation RMSE")
    scheduler = summary.get("search", {}).get("scheduler")
    ax.set_title(
        f"Learning curves of every trial ({(scheduler or 'scheduler').upper()} + patience)\n" + stops,
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside the data
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _plot_architectures(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "test_rmse" if any(r.get("test_rmse") is not None for r in rows) else "val_rmse"
    names = [r["architecture"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(names, [r[key] for r in rows], color=[_COLORS.get(n, "gray") for n in names])
    for label, value, style in (
        ("noise floor", summary.get("noise_floor_rmse"), ":"),
        ("TF-IDF + ridge", summary.get("baselines", {}).get("tfidf_ridge", {}).get(key), "--"),
        ("mean", summary.get("baselines", {}).get("mean", {}).get(key), "-."),
    ):
        if value:
            ax.axhline(value, color="black", linestyle=style, label=f"{label} {value:.2f}")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_title(f"Best trial per architecture ({key.replace('_', ' ')})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside the bars
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _plot_importances(path: Path, importances: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
    ax.set_xlabel("fANOVA importance (share of the objective's variance)")
    ax.set_title("Optuna parameter importances")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(directory: str | Path, summary: dict[str, Any], curves: list[dict[str, Any]]) -> list[str]:
    """Write ``report.md``, ``results.json`` and PNG plots into a local ``directory``.

    Args:
        directory: local output folder (created).
        summary: the search summary (``architectures`` rows, ``best``, ``baselines``, ``noise_floor_rmse``,
            ``importances``, ``total_trial_epochs``, ``num_trials``, ``search``, ``elapsed_s``, ``goals``).
        curves: per trial ``{"trial_id", "architecture", "epoch": [...], "val_rmse": [...]}``.

    Returns:
        The names of the files written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = ["report.md", "results.json"]
    rows = summary.get("architectures", [])
    stops = _early_stops(
        curves, summary.get("search", {}).get("max_epochs")
    )  # the plot's title, a report line
    if curves:
        _plot_curves(out / "learning_curves.png", curves, summary, stops)
        files.append("learning_curves.png")
    progress = best_so_far(curves)
    if progress:
        _plot_best_so_far(out / "best_so_far.png", progress)
        files.append("best_so_far.png")
    if rows:
        _plot_architectures(out / "architectures.png", rows, summary)
        files.append("architectures.png")
    if summary.get("importances"):
        _plot_importances(out / "importances.png", summary["importances"])
        files.append("importances.png")
    (out / "results.json").write_text(json_text({**summary, "curves": curves}), encoding="utf-8")
    (out / "report.md").write_text(_markdown(summary, files, stops, progress), encoding="utf-8")
    return files


def _markdown(
    summary: dict[str, Any], files: list[str], stops: str, progress: dict[str, Any] | None = None
) -> str:
    best = summary.get("best", {})
    base = summary.get("baselines", {})
    floor = summary.get("noise_floor_rmse")
    goals = summary.get("goals", {})
    lines = [
        "# RNN scorer search",
        "",
        f"Corpus: `{summary.get('corpus')}` (manifest hash `{summary.get('corpus_hash')}`), labeled documents "
        f"train/val/test = {'/'.join(str(n) for n in (summary.get('rows') or {}).values())}.",
        f"Search: {summary.get('search', {}).get('algorithm')} + {summary.get('search', {}).get('scheduler')}, "
        f"{summary.get('num_trials')} trials, **{summary.get('total_trial_epochs')} trial-epochs** in total, "
        f"{_fmt(summary.get('elapsed_s'), 0)} s wall time"
        + (" (smoke test: tiny data and space, not a quality run)." if summary.get("smoke_test") else "."),
        "",
        "## Best model",
        "",
        f"Trial `{best.get('trial_id')}` — {best.get('architecture')}: `{json.dumps(best.get('config', {}))}`",
        "",
        "| split | MAE | RMSE | R² |",
        "| --- | --- | --- | --- |",
    ]
    for split in ("val", "test"):
        if best.get(f"{split}_rmse") is not None:
            lines.append(
                f"| {split} | {_fmt(best.get(f'{split}_mae'))} | {_fmt(best.get(f'{split}_rmse'))} | "
                f"{_fmt(best.get(f'{split}_r2'))} |"
            )
    lines += [
        "",
        "## Against the baselines and the noise floor (test RMSE)",
        "",
        "| reference | test RMSE | test R² |",
        "| --- | --- | --- |",
        f"| best RNN scorer | {_fmt(best.get('test_rmse'))} | {_fmt(best.get('test_r2'))} |",
        f"| TF-IDF + ridge (alpha {_fmt(base.get('tfidf_ridge', {}).get('alpha'), 1)}) | "
        f"{_fmt(base.get('tfidf_ridge', {}).get('test_rmse'))} | {_fmt(base.get('tfidf_ridge', {}).get('test_r2'))} |",
        f"| predict the train mean | {_fmt(base.get('mean', {}).get('test_rmse'))} | "
        f"{_fmt(base.get('mean', {}).get('test_r2'))} |",
        f"| label noise floor (generator) | {_fmt(floor)} | |",
        "",
    ]
    if goals:
        lines += [
            f"- Beats TF-IDF + ridge on test RMSE: **{'yes' if goals.get('beats_tfidf') else 'no'}**",
            f"- Within 15% of the noise floor (≤ {_fmt(goals.get('floor_target'))}): "
            f"**{'yes' if goals.get('within_15pct_of_floor') else 'no'}**"
            if goals.get("floor_target") is not None
            else "- Noise floor unknown for this corpus (its manifest has no `noise_floor_rmse`).",
            "",
        ]
    lines += [
        "## Best trial per architecture",
        "",
        "Test metrics come from each architecture's best trial (lowest val RMSE), evaluated once at the end. "
        "Samples/s is the trial's median training throughput under its resource share.",
        "",
        "| architecture | params | samples/s | epochs | val MAE | val RMSE | val R² | test MAE | test RMSE | "
        "test R² | hidden×layers | embed | pooling | dropout | lr | batch |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for row in summary.get("architectures", []):
        c = row["config"]
        lines.append(
            f"| {row['architecture']} | {_fmt(row['num_parameters'])} | {_fmt(row['samples_per_s'], 0)} | "
            f"{row['epochs']} | {_fmt(row.get('val_mae'))} | {_fmt(row.get('val_rmse'))} | "
            f"{_fmt(row.get('val_r2'))} | {_fmt(row.get('test_mae'))} | {_fmt(row.get('test_rmse'))} | "
            f"{_fmt(row.get('test_r2'))} | {c['hidden']}×{c['layers']} | {c['embed_dim']} | {c['pooling']} | "
            f"{c['dropout']} | {c['lr']:.2e} | {c['batch_size']} |"
        )
    missing = [
        a for a in ARCHITECTURES if a not in {r["architecture"] for r in summary.get("architectures", [])}
    ]
    if missing:
        lines += ["", f"Not sampled by this search: {', '.join(missing)}."]
    if progress:
        lines += [
            "",
            "## Search progress",
            "",
            _progress_line(progress),
            "",
            "![best so far](best_so_far.png)",
        ]
    lines += ["", "## Learning curves", ""]
    if "learning_curves.png" in files:
        lines += [stops + ".", "", "![learning curves](learning_curves.png)", ""]
    else:
        lines += ["–", ""]
    if "architectures.png" in files:
        lines += ["![architectures](architectures.png)", ""]
    lines += ["## Parameter importances", ""]
    imp = summary.get("importances") or {}
    note = summary.get("importances_note")
    if imp:
        lines += [
            f"{note or 'fANOVA'}, on an Optuna study rebuilt from every trial's best val RMSE (a trial ASHA "
            "stopped early counts with the value it had reached, so importances also reflect how fast a "
            "setting learns); only parameters that took more than one value are ranked.",
            "",
            "| parameter | importance |",
            "| --- | ---: |",
            *[f"| {k} | {v:.3f} |" for k, v in imp.items()],
            "",
            "![importances](importances.png)",
        ]
    else:
        lines.append(
            f"Importances {note}." if note else "Too few trials (or no variation) to estimate importances."
        )
    return "\n".join(lines) + "\n"
