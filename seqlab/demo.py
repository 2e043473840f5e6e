"""``seqlab demo``: the whole pipeline on the bundled data, on a local Ray, as one straight-line recipe.

1. serve generated documents as a local website (faults included: 404s, 500s, slow pages, windows-1256);
2. scrape it with the Ray Data pipeline, joining the site's manual labels -> ``OUT/scrape/``;
3. search RNN scorers on that corpus with Ray Tune + Optuna + ASHA -> ``OUT/tune/{best,report}``;
4. train a small GPT-2 with Ray Train -> ``OUT/finetune/{model,report}``;
5. generate a few continuations and score them with the best scorer.

Each step calls the same function as its own verb, so the demo is also the integration test of the verbs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pydantic import Field

from seqlab.config import Config, add_config_arguments, load_config

STEPS = ("scrape", "tune", "finetune", "generate")
JOBS_DIR = Path(__file__).resolve().parents[1] / "jobs"


class DemoConfig(Config):
    """The demo run: how big the local site is and how much each stage does."""

    out: str = Field("runs/demo", description="output directory (scrape/, tune/, finetune/, summary.json)")
    n_docs: int = Field(400, ge=20, description="documents on the local website")
    seed: int = Field(0, description="corpus and site seed")
    faults: bool = Field(True, description="serve the site's faulty pages (404/500/slow/redirects/encodings)")
    steps: list[str] = Field(list(STEPS), description=f"which steps to run, in order, from {list(STEPS)}")
    tune_overrides: list[str] = Field(
        ["--smoke_test=true"], description="dotted overrides for jobs/tune.yaml (default: the smoke test)"
    )
    finetune_overrides: list[str] = Field(
        ["--smoke_test=true"], description="dotted overrides for jobs/finetune.yaml (default: the smoke test)"
    )
    prompt: str = Field("يعتمد الذكاء الاصطناعي على", description="prompt for the generation step")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", help="output directory (default: runs/demo)")
    parser.add_argument("--steps", help=f"comma-separated subset of {','.join(STEPS)}")


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo steps; returns (and writes to ``OUT/summary.json``) what each produced."""
    from seqlab.cli import main as seqlab_main
    from seqlab.data.config import ScrapeJobConfig, SourcesConfig
    from seqlab.data.corpus import generate_documents, write_labels_csv
    from seqlab.data.pipeline import format_summary, run_scrape
    from seqlab.data.site import LocalSite
    from seqlab.ray_utils import init_ray

    unknown = set(cfg.steps) - set(STEPS)
    if unknown:
        raise ValueError(f"steps: unknown {sorted(unknown)}; choose from {list(STEPS)}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"out": str(out), "steps": {}}
    started_ray = init_ray()
    t0 = time.monotonic()
    try:
        if "scrape" in cfg.steps:
            _banner(f"1/4 scrape: local site with {cfg.n_docs} documents")
            docs = generate_documents(cfg.n_docs, seed=cfg.seed)
            with LocalSite(docs, port=0, faults=cfg.faults, seed=cfg.seed) as site:
                labels = write_labels_csv(docs, out / "labels.csv", site.base_url)
                sources = SourcesConfig.from_urls(
                    [site.index_url],
                    delay_s=0.0,
                    per_host_concurrency=8,
                    request_timeout_s=3.0,
                    backoff_s=0.2,
                )
                scrape_cfg = ScrapeJobConfig(sources=sources, out=str(out / "scrape"), labels=labels)
                result = run_scrape(scrape_cfg)
            _record_noise_floor(out / "scrape", docs)
            print(format_summary(result))
            summary["steps"]["scrape"] = result
        corpus = str(out / "scrape")
        if "tune" in cfg.steps:
            _banner("2/4 tune: RNN scorer search (Ray Tune + Optuna + ASHA)")
            args = [
                "tune",
                "--config",
                str(JOBS_DIR / "tune.yaml"),
                "--data",
                corpus,
                "--out",
                str(out / "tune"),
            ]
            _check(seqlab_main([*args, *cfg.tune_overrides]), "tune")
            summary["steps"]["tune"] = _manifest_metrics(out / "tune" / "best")
        if "finetune" in cfg.steps:
            _banner("3/4 finetune: GPT-2 with Ray Train")
            args = ["finetune", "--config", str(JOBS_DIR / "finetune.yaml"), "--data", corpus]
            _check(seqlab_main([*args, "--out", str(out / "finetune"), *cfg.finetune_overrides]), "finetune")
            summary["steps"]["finetune"] = _manifest_metrics(out / "finetune" / "model")
        if "generate" in cfg.steps:
            _banner("4/4 generate and score")
            summary["steps"]["generate"] = _generate_and_score(out, cfg.prompt)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    summary["elapsed_s"] = round(time.monotonic() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), "utf-8")
    return summary


def _record_noise_floor(scrape_dir: Path, docs: list) -> None:
    """The site's documents come from the generator, so the scraped corpus has a known noise floor:
    record it in the scrape manifest, where the tune report looks for it."""
    from seqlab.artifacts import MANIFEST, atomic_write_text
    from seqlab.data.corpus import noise_floor_rmse

    path = scrape_dir / MANIFEST
    manifest = json.loads(path.read_text("utf-8"))
    manifest["metrics"]["noise_floor_rmse"] = noise_floor_rmse(docs)
    atomic_write_text(path, json.dumps(manifest, indent=2, ensure_ascii=False, default=str))


def _check(rc: int, step: str) -> None:
    if rc != 0:
        raise RuntimeError(f"demo step {step!r} failed with exit code {rc}")


def _manifest_metrics(directory: Path) -> dict:
    from seqlab.artifacts import read_manifest

    return read_manifest(directory).get("metrics", {})


def _generate_and_score(out: Path, prompt: str) -> dict:
    from seqlab.lm.config import DecodingConfig
    from seqlab.lm.generator import load_generator
    from seqlab.models import load_scorer

    generator = load_generator(out / "finetune" / "model")
    scorer = load_scorer(out / "tune" / "best")
    results = {}
    for strategy in ("greedy", "sample"):
        opts = DecodingConfig(strategy=strategy, max_new_tokens=30, num_candidates=2, seed=0)
        texts = [c.text for c in generator.generate(prompt, opts)]
        scores = scorer.predict(texts)
        results[strategy] = [{"text": t, "score": round(s, 2)} for t, s in zip(texts, scores, strict=True)]
        for t, s in zip(texts, scores, strict=True):
            print(f"[{strategy}] score {s:4.1f} | {t}")
    return results


def run(args: argparse.Namespace) -> int:
    cfg = load_config(DemoConfig, args.config, args.overrides)
    if args.out:
        cfg.out = args.out
    if args.steps:
        cfg.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    summary = run_demo(cfg)
    print(f"\ndemo finished in {summary['elapsed_s']} s; everything is under {cfg.out}/ (summary.json)")
    return 0
