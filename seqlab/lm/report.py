"""The fine-tuning run's report: training curve PNG + ``report.md`` with perplexity and decoding tables."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from seqlab.artifacts import atomic_write_text

__all__ = ["plot_training_curve", "write_report"]

log = logging.getLogger(__name__)


def plot_training_curve(history: list[dict[str, Any]], path: str | Path) -> None:
    """Train loss per reported step (and validation loss where measured) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".", label="train loss")
    val = [h for h in history if "val_loss" in h]
    if val:
        ax.plot([h["step"] for h in val], [h["val_loss"] for h in val], "o--", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("GPT-2 training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(text: str, limit: int = 90) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def write_report(
    report_dir: str | Path,
    history: list[dict[str, Any]],
    perplexity: dict[str, float],
    strategies: list[dict[str, Any]],
    summary: dict[str, Any],
) -> Path:
    """Write ``report.md`` and ``training_curve.png`` into ``report_dir`` and return the markdown path.

    Args:
        report_dir: local directory (created).
        history: training reports (``step``, ``loss``, optional ``val_loss``).
        perplexity: held-out perplexity by model (``untrained``, ``trained``).
        strategies: rows from :func:`seqlab.lm.evaluate.evaluate_strategies`.
        summary: a few facts shown at the top (model source, parameters, steps, tokens/s ...).
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    plot_training_curve(history, report_dir / "training_curve.png")
    lines = ["# GPT-2 fine-tuning report", ""]
    lines += [f"- **{key}**: {value}" for key, value in summary.items()]
    lines += ["", "## Training curve", "", "![training curve](training_curve.png)", ""]
    lines += ["## Held-out perplexity (test split)", "", "| model | perplexity |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in perplexity.items()]
    lines += [
        "",
        "## Decoding strategies on held-out continuations",
        "",
        "BLEU (sacrebleu, intl tokenization) of each strategy's continuation against the text that really "
        "followed the prompt; distinct-n = unique word n-grams / all n-grams (higher = less repetitive); "
        "real words = share of the words written that occur in the training text (lower = invented strings). "
        "The `reference` row is the human continuations themselves.",
        "",
        "| strategy | BLEU | distinct-1 | distinct-2 | real words | first continuation |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r['strategy']} | {r['bleu']:.2f} | {r['distinct_1']:.3f} | {r['distinct_2']:.3f} | "
        f"{r.get('real_words', float('nan')):.3f} | {_cell(r['sample'])} |"
        for r in strategies
    ]
    path = report_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    log.info("wrote %s", path)
    return path
