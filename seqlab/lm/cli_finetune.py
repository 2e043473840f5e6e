"""``seqlab finetune --config FILE [--data CORPUS_DIR] [--base-model ID_OR_DIR] --out DIR``."""

from __future__ import annotations

import argparse
import sys

from seqlab.config import add_config_arguments, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default=None)
    parser.add_argument(
        "--data", default=None, help="corpus directory (corpus/ Parquet + manifest.json); default: bundled"
    )
    parser.add_argument(
        "--base-model",
        default=None,
        help="Hugging Face id or local directory to fine-tune (e.g. gpt2, aubmindlab/aragpt2-base); "
        "default: train a BPE tokenizer and a small GPT-2 from scratch",
    )
    parser.add_argument("--out", default=None, help="output directory: model/ and report/ (or set out:)")
    parser.add_argument(
        "--overwrite", action="store_true", help="write into --out even if another stage's artifact is there"
    )


def run(args: argparse.Namespace) -> int:
    from seqlab.lm.config import FinetuneJobConfig

    flags = {"data.path": args.data, "model.base_model": args.base_model, "out": args.out}
    cfg = load_config(FinetuneJobConfig, args.config, args.overrides, flags=flags)
    if not cfg.out:
        print("seqlab finetune: --out DIR is required (or set out: in the config)", file=sys.stderr)
        return 2

    from seqlab.lm.finetune import run_finetune

    try:
        manifest = run_finetune(cfg, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as exc:
        print(f"seqlab finetune: {exc}", file=sys.stderr)
        return 2
    m = manifest["metrics"]
    print(f"model ({manifest['model_source']}): {cfg.out}/model")
    print(f"report: {cfg.out}/report/report.md")
    print(
        f"steps {m['steps']}  train loss {m['final_train_loss']:.3f}  "
        f"test perplexity {m['test_perplexity']:.1f} (untrained {m['test_perplexity_untrained']:.1f})  "
        f"{m['tokens_per_s']:.0f} tokens/s"
    )
    return 0
