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

from pydantic import Field

from seqlab.config import Config, add_config_arguments, load_config

STEPS = ("scrape", "tune", "finetune", "generate", "serve")
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
    serve_port: int = Field(
        8000, ge=0, le=65535, description="port of the served app (busy or 0: a free one)"
    )
    keep_serving: bool = Field(False, description="leave the app up at the end until Ctrl-C")


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
            _banner(f"1/5 scrape: local site with {cfg.n_docs} documents")
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
            _banner("2/5 tune: RNN scorer search (Ray Tune + Optuna + ASHA)")
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
            _banner("3/5 finetune: GPT-2 with Ray Train")
            args = ["finetune", "--config", str(JOBS_DIR / "finetune.yaml"), "--data", corpus]
            _check(seqlab_main([*args, "--out", str(out / "finetune"), *cfg.finetune_overrides]), "finetune")
            summary["steps"]["finetune"] = _manifest_metrics(out / "finetune" / "model")
        if "generate" in cfg.steps:
            _banner("4/5 generate and score")
            summary["steps"]["generate"] = _generate_and_score(out, cfg.prompt)
        if "serve" in cfg.steps:
            _banner("5/5 serve: both models over HTTP (Ray Serve)")
            summary["steps"]["serve"] = _serve_and_query(out, cfg)
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


def _serve_and_query(out: Path, cfg: DemoConfig) -> dict:
    """Serve the demo's artifacts on this Ray, send three real requests, print them as curl + answer."""
    import socket

    from ray import serve

    from seqlab.serve.cli import examples, start_local
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
                {"prompt": cfg.prompt, "max_new_tokens": 24, "num_candidates": 3, "seed": 0, "rerank": True},
            ),
            (
                "/v1/completions",
                {"model": args.generator_name, "prompt": cfg.prompt, "max_tokens": 24, "seed": 0},
            ),
        ]
        for route, body in requests:
            answer = _post(url + route, body)
            payload = json.dumps(body, ensure_ascii=False)
            print(f"$ curl -s {url}{route} -H 'Content-Type: application/json' -d '{payload}'")
            print(json.dumps(answer, ensure_ascii=False, indent=2)[:1500] + "\n")
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
    cfg = load_config(DemoConfig, args.config, args.overrides)
    if args.keep_serving:
        cfg.keep_serving = True
    if args.out:
        cfg.out = args.out
    if args.steps:
        cfg.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    summary = run_demo(cfg)
    print(f"\ndemo finished in {summary['elapsed_s']} s; everything is under {cfg.out}/ (summary.json)")
    return 0
