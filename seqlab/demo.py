"""``seqlab demo``: the whole pipeline on the bundled data, on a local Ray, as one straight-line recipe.

1. serve generated documents as a local website (faults included: 404s, 500s, slow pages, windows-1256);
2. scrape it with the Ray Data pipeline, joining the site's manual labels -> ``OUT/scrape/``;
3. search RNN scorers on that corpus with Ray Tune + Optuna + ASHA -> ``OUT/tune/{best,report}``;
4. train a small GPT-2 with Ray Train -> ``OUT/finetune/{model,report}``;
5. generate a few continuations and score them with the best scorer;
6. serve both models with Ray Serve and show real HTTP exchanges (curl command + answer), then stop Serve
   (``--keep-serving`` leaves it up until Ctrl-C).

Each step calls the same function as its own verb, so the demo is also the integration test of the verbs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from seqlab.artifacts import json_text
from seqlab.config import Config, ConfigError, add_config_arguments, apply_overrides, dump_config, load_config
from seqlab.interrupts import Interrupted
from seqlab.lm.config import DecodingParams, FinetuneJobConfig
from seqlab.tune.config import TuneJobConfig

STEPS = ("scrape", "tune", "finetune", "generate", "serve")
Step = Literal["scrape", "tune", "finetune", "generate", "serve"]
FULL_TUNE = "seqlab tune --config jobs/tune.yaml --data {out}/scrape --out runs/tune"
FULL_FINETUNE = "seqlab finetune --config jobs/finetune.yaml --data {out}/scrape --out runs/finetune"


def demo_tune_config() -> TuneJobConfig:
    """The demo's search: a compact space around the architecture the full search found best (a GRU
    with attention pooling), a few trials long enough to learn. ``data.path`` and ``out`` are set by the
    demo (its scraped corpus, ``OUT/tune``)."""
    return TuneJobConfig.model_validate(
        {
            "data": {"tokenizer": {"max_len": 256}},
            "train": {"max_epochs": 24, "patience": 4},
            "search": {
                "num_samples": 4,
                "max_concurrent": 2,
                "grace_period": 6,
                "seed_architectures": False,
                "space": {
                    "cell": ["gru"],
                    "bidirectional": [False],
                    "hidden": [64, 128],
                    "layers": [2],
                    "dropout": [0.1],
                    "lr": [0.002, 0.008],
                    "batch_size": [16],
                    "embed_dim": [128],
                    "pooling": ["attention"],
                },
            },
            "run": {"verbose": 0},
        }
    )


def demo_finetune_config() -> FinetuneJobConfig:
    """The demo's GPT-2: small and trained long enough to be clearly better than untrained."""
    return FinetuneJobConfig.model_validate(
        {
            "model": {"vocab_size": 2000, "n_layer": 2, "n_head": 4, "n_embd": 128, "n_positions": 128},
            "data": {"block_size": 128},
            "train": {
                "epochs": 4,
                "batch_size": 8,
                "grad_accum": 1,
                "report_every": 50,  # ~13 progress lines over the demo's 4 epochs
                "checkpoint_every": 200,
            },
            "eval": {
                "num_prompts": 16,
                "prompt_tokens": 12,
                "continuation_tokens": 24,
                "max_eval_blocks": 128,
            },
        }
    )


class DemoConfig(Config):
    """The demo run: the local site, and each stage's own typed config at demo size.

    Every field can be overridden with dotted flags, e.g. ``--tune.search.num_samples=4`` or
    ``--finetune.train.epochs=2``. The demo sets ``tune.out``/``finetune.out`` under ``out`` and points
    both at the corpus it scraped.
    """

    out: str = Field("runs/demo", description="output directory (scrape/, tune/, finetune/, summary.json)")
    n_docs: int = Field(1000, ge=20, le=100_000, description="documents on the local website")
    seed: int = Field(0, description="corpus and site seed")
    faults: bool = Field(True, description="serve the site's faulty pages (404/500/slow/redirects/encodings)")
    steps: list[Step] = Field(list(STEPS), description=f"which steps to run, in order, from {list(STEPS)}")
    tune: TuneJobConfig = Field(default_factory=demo_tune_config, description="the scorer search (demo size)")
    finetune: FinetuneJobConfig = Field(
        default_factory=demo_finetune_config, description="the GPT-2 training (demo size)"
    )
    prompts: list[str] = Field(
        [
            "يعتمد الذكاء الاصطناعي على",
            "أعلنت الشركة اليوم عن",
            "في مباراة أمس",
            "تحتاج هذه الوصفة إلى",
        ],
        min_length=1,
        description="prompts continued in the generate step",
    )
    decoding: DecodingParams = Field(
        DecodingParams(
            strategy="sample",
            temperature=0.8,
            top_k=50,
            top_p=0.92,
            repetition_penalty=1.2,
            max_new_tokens=32,
            num_candidates=2,
            seed=0,
        ),
        description="how the generate step decodes (sampling with a repetition penalty: greedy loops on a "
        "small model)",
    )
    serve_port: int = Field(
        8000, ge=0, le=65535, description="port of the served app (busy or 0: a free one)"
    )
    keep_serving: bool = Field(False, description="leave the app up at the end until Ctrl-C")

    @field_validator("tune", "finetune", "decoding", mode="before")
    @classmethod
    def _on_demo_defaults(cls, value: Any, info: ValidationInfo) -> Any:
        """A partial section (YAML or ``--tune.search.num_samples=4``) changes the demo's defaults, not
        the stage's full-size ones."""
        if not isinstance(value, dict):
            return value
        defaults = cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return apply_overrides(defaults.model_dump(), value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", help="output directory (default: runs/demo)")
    parser.add_argument("--steps", help=f"comma-separated subset of {','.join(STEPS)}")
    parser.add_argument(
        "--keep-serving", action="store_true", help="leave the Serve app up at the end (Ctrl-C stops it)"
    )


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo steps; returns (and writes to ``OUT/summary.json``) what each produced."""
    from seqlab.data.config import ScrapeJobConfig, SourcesConfig
    from seqlab.data.pipeline import format_summary, run_scrape
    from seqlab.ray_utils import ray_session
    from seqlab.synth.corpus import generate_documents, noise_floor_rmse, write_labels_csv
    from seqlab.synth.site import LocalSite

    out = Path(cfg.out)
    for step in ("tune", "finetune"):  # refuse before anything starts: never train over an earlier run
        if step in cfg.steps and (out / step).exists() and any((out / step).iterdir()):
            raise ConfigError(
                f"{out / step} already holds a {step} run; pass another --out, or delete it to redo the demo"
            )
    out.mkdir(parents=True, exist_ok=True)
    corpus = str(out / "scrape")
    summary: dict = {"out": str(out), "config": dump_config(cfg), "steps": {}}
    with ray_session():
        t0 = time.monotonic()
        n = len(STEPS)
        if "scrape" in cfg.steps:
            _banner(
                f"1/{n} scrape: a local website of {cfg.n_docs} generated documents -> Parquet (Ray Data)"
            )
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
                scrape_cfg = ScrapeJobConfig(sources=sources, out=corpus, labels=labels)
                # the site's documents come from the generator: the corpus has a known noise floor
                result = run_scrape(
                    scrape_cfg, extra_metrics={"noise_floor_rmse": round(noise_floor_rmse(docs), 4)}
                )
            print(format_summary(result))
            summary["steps"]["scrape"] = result
        if "tune" in cfg.steps:
            summary["steps"]["tune"] = _tune(cfg, out, corpus, n)
        if "finetune" in cfg.steps:
            summary["steps"]["finetune"] = _finetune(cfg, out, corpus, n)
        if "generate" in cfg.steps:
            _banner(f"4/{n} generate and score: each prompt, then its continuation")
            summary["steps"]["generate"] = _generate_and_score(out, cfg)
        if "serve" in cfg.steps:
            _banner(f"5/{n} serve: both models over HTTP (Ray Serve)")
            summary["steps"]["serve"] = _serve_and_query(out, cfg)
    summary["elapsed_s"] = round(time.monotonic() - t0, 1)
    (out / "summary.json").write_text(json_text(summary), "utf-8")
    _print_artifacts(out)
    return summary


def _tune(cfg: DemoConfig, out: Path, corpus: str, n: int) -> dict:
    from seqlab.tune.job import run_tune_job

    tune_cfg = cfg.tune.with_out(out / "tune")
    tune_cfg.data.path = corpus
    space = tune_cfg.search.space
    _banner(f"2/{n} tune: RNN scorer search (Ray Tune + Optuna + ASHA)")
    print(
        f"demo size: {tune_cfg.search.num_samples} trial(s) of up to {tune_cfg.train.max_epochs} epochs over "
        f"{'/'.join(space.cell)} x hidden {space.hidden} x {space.pooling} pooling. Full size: "
        + FULL_TUNE.format(out=out),
        flush=True,
    )
    result = run_tune_job(tune_cfg)
    if result.get("interrupted"):
        raise Interrupted("the search was interrupted; nothing was exported", resume=result["resume"])
    best, base = result["best"], result["baselines"]
    tfidf, mean = base["tfidf_ridge"]["test_rmse"], base["mean"]["test_rmse"]
    floor = result.get("noise_floor_rmse")
    verdict = "beats" if best["test_rmse"] < tfidf else "does NOT beat"
    print(
        f"scorer {best['architecture']}: test RMSE {best['test_rmse']:.3f} (R² {best['test_r2']:.3f}) "
        f"{verdict} TF-IDF+ridge {tfidf:.3f}; predicting the mean {mean:.3f}"
        + (f"; label-noise floor {floor:.3f}" if floor else "")
    )
    return {
        "test_rmse": best["test_rmse"],
        "tfidf_test_rmse": tfidf,
        "mean_test_rmse": mean,
        "noise_floor_rmse": floor,
        "beats_tfidf": best["test_rmse"] < tfidf,
        "architecture": best["architecture"],
        "elapsed_s": result["elapsed_s"],
    }


def _finetune(cfg: DemoConfig, out: Path, corpus: str, n: int) -> dict:
    from seqlab.lm.finetune import run_finetune

    ft = cfg.finetune.with_out(out / "finetune")
    ft.data.path = corpus
    m = ft.smoke().model
    _banner(f"3/{n} finetune: GPT-2 with Ray Train")
    print(
        f"demo size: a {m.n_layer}-layer, {m.n_embd}-wide GPT-2 with a {m.vocab_size}-token BPE vocabulary, "
        f"{ft.train.epochs} epoch(s) from scratch. Full size: " + FULL_FINETUNE.format(out=out),
        flush=True,
    )
    manifest = run_finetune(ft)
    metrics = manifest["metrics"]
    trained, untrained = metrics["test_perplexity"], metrics["test_perplexity_untrained"]
    print(
        f"generator: test perplexity {trained:.1f} vs {untrained:.1f} untrained "
        f"({untrained / trained:.1f}x lower), {metrics['steps']} steps, {metrics['tokens_per_s']:.0f} tokens/s"
    )
    for strategy, row in metrics.get("decoding", {}).items():
        print(
            f"  decoding {strategy:<12} distinct-2 {row['distinct_2']:.2f}  BLEU {row['bleu']:.2f}  "
            f"real words {row.get('real_words', float('nan')):.2f}"
        )
    return {
        "test_perplexity": trained,
        "test_perplexity_untrained": untrained,
        "ratio": untrained / trained,
        "decoding": metrics.get("decoding", {}),
    }


def _generate_and_score(out: Path, cfg: DemoConfig) -> dict:
    from seqlab.lm.config import DecodingConfig
    from seqlab.lm.evaluate import distinct_n
    from seqlab.lm.generator import load_generator
    from seqlab.models import load_scorer

    generator = load_generator(out / "finetune" / "model")
    scorer = load_scorer(str(out / "tune" / "best"))
    d = cfg.decoding
    print(
        f"decoding: {d.strategy}, temperature {d.temperature}, top-k {d.top_k}, top-p {d.top_p}, "
        f"repetition penalty {d.repetition_penalty}, {d.num_candidates} candidates per prompt"
    )
    rows, continuations = [], []
    for prompt in cfg.prompts:
        candidates = generator.generate(prompt, DecodingConfig(**d.model_dump()))
        texts = [c.text for c in candidates]
        scores = scorer.predict([f"{prompt} {t}" for t in texts])
        for text, score in zip(texts, scores, strict=True):
            print(f"[score {score:4.1f}] {prompt} {' '.join(text.split())}")  # one line per continuation
            rows.append({"prompt": prompt, "text": text, "score": round(score, 2)})
        continuations.extend(texts)
    d2 = distinct_n(continuations, 2)
    print(f"distinct-2 over these continuations: {d2:.2f} (1.0 = no repeated word pair)")
    return {"continuations": rows, "distinct_2": d2}


def _print_artifacts(out: Path) -> None:
    where = [
        ("scraped corpus", out / "scrape" / "corpus"),
        ("scrape failures", out / "scrape" / "failures"),
        ("best scorer", out / "tune" / "best"),
        ("search report", out / "tune" / "report" / "report.md"),
        ("generator", out / "finetune" / "model"),
        ("generator report", out / "finetune" / "report" / "report.md"),
        ("run summary", out / "summary.json"),
    ]
    print("\nartifacts:")
    for label, path in where:
        if path.exists():
            print(f"  {label:<17} {path}")


def _serve_and_query(out: Path, cfg: DemoConfig) -> dict:
    """Serve the demo's artifacts on this Ray, send three real requests, print them as curl + answer."""
    import socket

    from ray import serve

    from seqlab.serve.cli_serve import examples, start_local
    from seqlab.serve.config import ServeArgs

    port = cfg.serve_port
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.bind(("127.0.0.1", 0))
            print(f"port {port} is busy; serving on a free port instead")
        port = sock.getsockname()[1]
    args = ServeArgs(
        scorer=str((out / "tune" / "best").resolve()),
        generator=str((out / "finetune" / "model").resolve()),
        log_requests=False,
    )
    url = start_local(args, {"host": "127.0.0.1", "port": port, "request_timeout_s": 60}, log_level="WARNING")
    exchanges = []
    try:
        requests = [
            (
                "/v1/score",
                {"texts": ["يعتمد الذكاء الاصطناعي على البيانات والخوارزميات", "طبخت الجدة الأرز مع العدس"]},
            ),
            (
                "/v1/generate",
                {
                    "prompt": cfg.prompts[0],
                    "max_new_tokens": 24,
                    "num_candidates": 3,
                    "seed": 0,
                    "rerank": True,
                },
            ),
            (
                "/v1/completions",
                {"model": args.generator_name, "prompt": cfg.prompts[0], "max_tokens": 24, "seed": 0},
            ),
        ]
        for route, body in requests:
            answer = _post(url + route, body)
            payload = json.dumps(body, ensure_ascii=False)
            print(f"$ curl -s {url}{route} -H 'Content-Type: application/json' -d '{payload}'")
            print(_compact(answer) + "\n")
            exchanges.append({"route": route, "request": body, "response": answer})
        if cfg.keep_serving:
            print(examples(url, args))
            print(
                f"\nServe keeps running at {url}; press Ctrl-C to stop it (and this demo's Ray).", flush=True
            )
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    finally:
        serve.shutdown()
    return {"url": url, "exchanges": exchanges}


def _compact(answer: dict) -> str:
    """An answer as a few lines: each top-level field on one line (JSON), long values cut at 300 chars."""
    lines = []
    for key, value in answer.items():
        text = json.dumps(value, ensure_ascii=False)
        lines.append(f"  {key}: {text if len(text) <= 300 else text[:297] + '...'}")
    return "{\n" + "\n".join(lines) + "\n}"


def _post(url: str, body: dict) -> dict:
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        return json.loads(resp.read().decode("utf-8"))


def run(args: argparse.Namespace) -> int:
    steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else None
    flags = {"out": args.out, "steps": steps, "keep_serving": args.keep_serving or None}
    cfg = load_config(DemoConfig, args.config, args.overrides, flags=flags)
    summary = run_demo(cfg)
    print(f"\ndemo finished in {summary['elapsed_s']} s; everything is under {cfg.out}/ (summary.json)")
    return 0
