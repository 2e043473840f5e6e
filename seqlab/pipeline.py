"""``seqlab pipeline`` / ``jobs/pipeline.py``: scrape -> tune -> finetune -> deploy, skipping what is up to date.

Each stage writes under ``out`` (``scrape/``, ``tune/``, ``finetune/``) and the pipeline records, in
``out/pipeline.json``, what each stage ran with: the hash of its config and the content hashes of its
inputs' manifests, plus the hash of the manifest it produced. A stage is skipped when all three still
match, so re-submitting the same pipeline redoes nothing, and changing the tune config re-runs tune (and
deploy) but not scrape or finetune. A stage whose output directory holds a different run is not
overwritten: the pipeline stops and names it, unless ``force`` moves the old run aside (never deletes it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from seqlab import artifacts
from seqlab.config import Config, ConfigError, add_config_arguments, dump_config, load_config
from seqlab.data.config import ScrapeJobConfig
from seqlab.interrupts import Interrupted
from seqlab.lm.config import FinetuneJobConfig
from seqlab.serve.config import DeployJobConfig
from seqlab.tune.config import TuneJobConfig

__all__ = ["PipelineJobConfig", "run_pipeline"]

log = logging.getLogger(__name__)
STATE = "pipeline.json"
Stage = Literal["scrape", "tune", "finetune", "deploy"]


class PipelineJobConfig(Config):
    """``jobs/pipeline.yaml``: every stage's own config; the pipeline wires their paths under ``out``."""

    out: str = Field("runs/pipeline", description="local directory holding scrape/, tune/, finetune/")
    steps: list[Stage] = Field(
        ["scrape", "tune", "finetune", "deploy"], description="stages to run, in order"
    )
    force: bool = Field(False, description="move a stage's differing earlier run aside instead of stopping")
    scrape: ScrapeJobConfig = Field(default_factory=ScrapeJobConfig, description="crawl (out is set here)")
    tune: TuneJobConfig = Field(
        default_factory=TuneJobConfig, description="scorer search (data/out set here)"
    )
    finetune: FinetuneJobConfig = Field(
        default_factory=FinetuneJobConfig, description="GPT-2 (data/out set here)"
    )
    deploy: DeployJobConfig = Field(
        default_factory=DeployJobConfig, description="the Serve app (its artifacts are set here)"
    )


def _hash(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def _manifest_hash(directory: Path) -> str | None:
    try:
        return artifacts.manifest_hash(artifacts.read_manifest(directory))
    except FileNotFoundError:
        return None


class _State:
    """``out/pipeline.json``: per stage, the config hash, input hashes and output hash it last ran with."""

    def __init__(self, out: Path) -> None:
        self.path = out / STATE
        self.data: dict[str, Any] = json.loads(self.path.read_text("utf-8")) if self.path.is_file() else {}

    def up_to_date(self, stage: str, key: dict[str, Any], output: Path) -> bool:
        entry = self.data.get(stage)
        return bool(entry) and entry["key"] == key and entry["output"] == _manifest_hash(output)

    def record(self, stage: str, key: dict[str, Any], output: Path) -> None:
        self.data[stage] = {"key": key, "output": _manifest_hash(output)}
        artifacts.atomic_write_text(self.path, json.dumps(self.data, indent=2))


def _make_room(directory: Path, force: bool, stage: str) -> None:
    """A stage must re-run but ``directory`` holds another run: stop, or (force) move it aside."""
    if not directory.exists() or not any(directory.iterdir()):
        return
    if not force:
        raise ConfigError(
            f"{directory} holds a {stage} run made with another config or other inputs; "
            "rerun with --force=true to move it aside (it is kept, renamed) or pick another --out"
        )
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = directory.with_name(f"{directory.name}.replaced-{stamp}")
    directory.rename(aside)
    print(f"{stage}: moved the earlier run to {aside}", flush=True)


def run_pipeline(cfg: PipelineJobConfig) -> dict[str, str]:
    """Run the stages in ``cfg.steps``; returns what happened to each (``ran`` or ``up to date``)."""
    out = Path(cfg.out)
    if artifacts.is_uri(cfg.out):
        raise ConfigError(
            "pipeline.out must be a local or mounted directory (each stage may still write URIs)"
        )
    out.mkdir(parents=True, exist_ok=True)
    state = _State(out)
    scrape_dir, tune_dir, ft_dir = out / "scrape", out / "tune", out / "finetune"
    scrape = cfg.scrape.with_out(scrape_dir)
    tune = cfg.tune.with_out(tune_dir)
    tune.data.path = str(scrape_dir)
    ft = cfg.finetune.with_out(ft_dir)
    ft.data.path = str(scrape_dir)
    deploy = cfg.deploy.model_copy(deep=True)
    deploy.app = deploy.app.model_copy(
        update={"scorer": str(tune_dir / "best"), "generator": str(ft_dir / "model")}
    )
    corpus_hash = lambda: _manifest_hash(scrape_dir)  # noqa: E731 - read after scrape has (re)run

    plan = {
        "scrape": (scrape, lambda: {}, scrape_dir, scrape_dir),
        "tune": (tune, lambda: {"corpus": corpus_hash()}, tune_dir, tune_dir),
        "finetune": (ft, lambda: {"corpus": corpus_hash()}, ft_dir, ft_dir / "model"),
    }
    done: dict[str, str] = {}
    for stage in cfg.steps:
        if stage == "deploy":
            done["deploy"] = _deploy(deploy)
            continue
        stage_cfg, inputs, directory, output = plan[stage]
        key = {"config": _hash(dump_config(stage_cfg)), "inputs": inputs()}
        if state.up_to_date(stage, key, output):
            print(f"{stage}: up to date (same config and inputs as {output}); skipped", flush=True)
            done[stage] = "up to date"
            continue
        if stage != "scrape":  # scrape resumes into its own directory by design
            _make_room(directory, cfg.force, stage)
        print(f"{stage}: running -> {directory}", flush=True)
        _run_stage(stage, stage_cfg)
        state.record(stage, key, output)
        done[stage] = "ran"
    return done


def _run_stage(stage: str, stage_cfg: Config) -> None:
    if stage == "scrape":
        from seqlab.data.pipeline import run_scrape

        run_scrape(stage_cfg)
    elif stage == "tune":
        from seqlab.tune.job import run_tune_job

        result = run_tune_job(stage_cfg)
        if result.get("interrupted"):
            raise Interrupted("the search was interrupted; nothing was exported", resume=result["resume"])
    else:
        from seqlab.lm.finetune import run_finetune

        run_finetune(stage_cfg)


def _deploy(deploy: DeployJobConfig) -> str:
    import os

    if not os.environ.get("RAY_ADDRESS"):
        print("deploy: skipped (no cluster: submit the pipeline with 'ray job submit' to deploy)", flush=True)
        return "skipped (no cluster)"
    from seqlab.serve.cli_serve import start_local

    url = start_local(
        deploy.app, deploy.http.model_dump(), name=deploy.name, route_prefix=deploy.route_prefix
    )
    print(f"deploy: serving at {url}", flush=True)
    return f"serving at {url}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", help="output directory (default: the config's out)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(PipelineJobConfig, args.config, args.overrides, flags={"out": args.out})
    if "scrape" in cfg.steps and not cfg.scrape.sources.start_urls:  # before Ray: nothing could be crawled
        raise ConfigError(
            "scrape.sources has no seeds, sitemaps or feeds: pass --config jobs/pipeline.yaml (the bundled "
            "site's seeds) or --scrape.sources.seeds=[URL]"
        )
    from seqlab.data.pipeline import ScrapeFailed
    from seqlab.ray_utils import ray_session

    with ray_session():
        try:
            done = run_pipeline(cfg)
        except (ScrapeFailed, FileExistsError, FileNotFoundError, ValueError) as exc:
            print(f"seqlab pipeline: {exc}", file=sys.stderr)  # what the stage verbs say, one line
            return 2
    print("pipeline: " + ", ".join(f"{k} {v}" for k, v in done.items()))
    return 0
