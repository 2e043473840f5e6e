"""``seqlab bench <name>``: route to ``seqlab.bench.<name>`` (``add_arguments`` / ``run``)."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS: dict[str, str] = {
    "normalize": "character-level normalization: seqlab vs PyArabic vs the seed's re.sub chain (chars/s)",
    "extract": "article extraction on real Arabic pages: token F1 vs trafilatura and others, pages/s per core",
    "scrape": "scraper pages/s against the local site with injected latency, vs the concurrency bound",
    "crawl": "focused crawl vs breadth-first on the local site: harvest rate at 10/25/50% of pages, pages/s",
    "pipeline": "Ray Data normalization docs/s on 1 vs 2 CPUs vs a single-process pandas loop",
    "train": "trial training loop vs bare PyTorch loop vs pad-to-longest batching (samples/s)",
    "tune": "ASHA+Optuna vs random search without early stopping (trial-epochs to near-best R²)",
    "finetune": "Ray Train GPT-2 loop vs bare transformers loop (tokens/s)",
    "generate": "new tokens/s and time to first token, with vs without KV cache",
    "serve": "Ray Serve app vs bare FastAPI: /v1/score req/s + p99, streamed completions tokens/s + TTFT",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        choices=sorted(BENCHMARKS),
        help="which benchmark; " + "; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()),
    )
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of that benchmark (see --help)")


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"seqlab.bench.{args.name}")
    parser = argparse.ArgumentParser(prog=f"seqlab bench {args.name}", description=BENCHMARKS[args.name])
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(args.bench_args)) or 0)
