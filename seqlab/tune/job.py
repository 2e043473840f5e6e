"""The ``tune`` job from start to finish: data -> search -> evaluate -> export ``best/`` -> ``report/``.

:func:`run_tune_job` is what ``seqlab tune`` and ``jobs/tune.py`` call. Output directory (local or URI)::

    DIR/job_config.json   the config as given (``--resume DIR`` reads it back)
    DIR/tokenizer.json    the vocabulary every trial trained with (``--resume`` reuses it)
    DIR/search/           the Tune experiment (trials, checkpoints, searcher state); storage may live elsewhere
    DIR/best/             the best trial's scorer artifact (seqlab.models.load_scorer)
    DIR/report/           report.md, results.json, learning_curves.png, architectures.png, importances.png
    DIR/manifest.json     stage "tune": config, the corpus manifest's hash, headline metrics
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from seqlab import artifacts
from seqlab.config import dump_config
from seqlab.tune.config import TuneJobConfig

__all__ = ["JOB_CONFIG_FILE", "run_tune_job"]

log = logging.getLogger(__name__)
JOB_CONFIG_FILE = "job_config.json"
TOKENIZER_FILE = "tokenizer.json"  # the search's vocabulary, reused on --resume


@artifacts.releases_outputs
def run_tune_job(cfg: TuneJobConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) the search described by ``cfg`` and write its outputs.

    Args:
        cfg: the job config; ``cfg.out`` is the output directory. Smoke-test reductions are applied here.
        resume: continue the interrupted search in ``cfg.out`` instead of starting a new one.

    Returns:
        The search summary (also in ``report/results.json``). When the search was interrupted it holds
        ``{"interrupted": True, "resume": <command>}`` and nothing is exported; when ``resume`` finds the
        search finished already, ``{"finished": True, "created_at": ..., "out": ...}`` and nothing changes.

    Raises:
        FileExistsError: a new search would overwrite an existing one in ``cfg.out`` (use ``resume``).
        seqlab.artifacts.OutputTaken: ``cfg.out`` holds another stage's artifact (unless ``overwrite``).
    """
    from ray import tune

    from seqlab.interrupts import Interrupted, own_signal_handlers
    from seqlab.ray_utils import init_ray
    from seqlab.tune.data import prepare_data
    from seqlab.tune.search import build_tuner, restore_tuner, search_finished

    run_cfg = cfg.smoke()
    out = cfg.out
    if resume and (finished := _finished_search(out)) is not None:
        return finished  # a resume of a finished search changes nothing
    artifacts.claim_output_dir(out, "tune", overwrite=overwrite)
    storage = run_cfg.run.storage_path or out
    experiment = artifacts.join(storage, run_cfg.run.name)

    tokenizer_path = artifacts.join(out, TOKENIZER_FILE)
    saved_tokenizer = None
    if resume:
        try:
            saved_tokenizer = artifacts.read_text(tokenizer_path)
        except FileNotFoundError:
            log.warning(
                "%s is missing; retraining the tokenizer (deterministic for the same corpus)", tokenizer_path
            )
    corpus = prepare_data(
        run_cfg.data.path,
        run_cfg.data.tokenizer,
        run_cfg.data.text_column,
        run_cfg.data.max_docs,
        run_cfg.data.seed,
        tokenizer_json=saved_tokenizer,
    )
    started = init_ray()
    try:
        if resume and tune.Tuner.can_restore(artifacts.resolve(experiment)):
            tuner = restore_tuner(experiment, run_cfg, corpus.encoded)
        elif resume:  # stopped (or killed) before Tune saved its first state: nothing ran, start afresh
            log.warning(
                "%s holds no saved search state yet; starting the search from the beginning", experiment
            )
            tuner = build_tuner(run_cfg, corpus.encoded, storage)
        else:
            if tune.Tuner.can_restore(artifacts.resolve(experiment)):
                raise FileExistsError(
                    f"{experiment} already holds a search; resume it with --resume {out} or pick another --out"
                )
            artifacts.write_text(
                artifacts.join(out, JOB_CONFIG_FILE),
                json.dumps(dump_config(cfg), indent=2, ensure_ascii=False),
            )
            artifacts.write_text(tokenizer_path, corpus.encoded.tokenizer_json)
            tuner = build_tuner(run_cfg, corpus.encoded, storage)
        command = f"seqlab tune --resume {out}"
        start = time.perf_counter()
        try:
            with own_signal_handlers():  # Tune leaves its SIGINT handler behind after a normal end
                grid = tuner.fit()
            elapsed = time.perf_counter() - start
            if not search_finished(grid, run_cfg):
                log.warning("search interrupted; its state is saved. Resume with: %s", command)
                return {"interrupted": True, "resume": command, "experiment": experiment}
            return finish_search(grid, run_cfg, corpus, out, elapsed)
        except KeyboardInterrupt:  # outside Tune's own handler: starting up, or exporting the finished search
            raise Interrupted("search interrupted; nothing was exported", resume=command) from None
    finally:
        if started:
            import ray

            ray.shutdown()


def _finished_search(out: str) -> dict[str, Any] | None:
    """``{"finished": True, ...}`` when ``out`` holds a search that ran to its end (its manifest is written
    last), else None."""
    try:
        manifest = artifacts.read_manifest(out)
    except (FileNotFoundError, ValueError, OSError):
        return None
    if manifest.get("stage") != "tune":
        return None
    return {"finished": True, "created_at": manifest.get("created_at"), "out": out}


def finish_search(grid, cfg: TuneJobConfig, corpus, out: str, elapsed_s: float) -> dict[str, Any]:
    """Evaluate each architecture's best trial, export the best model, fit baselines, write the report.

    The steps, in order: pick each architecture's best trial, evaluate those on val/test, fit the
    baselines and check the goals, export ``best/``, write ``report/`` and the job's ``manifest.json``.
    """
    from seqlab.tune.baselines import fit_baselines
    from seqlab.tune.search import collect_trials

    records = collect_trials(grid)
    if not records:
        raise RuntimeError("no trial reported a result; see the Tune logs under " + str(grid.experiment_path))
    best_per_arch = _best_per_architecture(records)
    rows, models = _evaluate_architectures(best_per_arch, corpus.encoded, cfg)
    best_row = min(rows, key=lambda r: r["val_rmse"])
    best_record = best_per_arch[best_row["architecture"]]
    best_metrics = _split_metrics(best_row)
    baselines = fit_baselines(corpus.frames)
    summary = _search_summary(grid, cfg, corpus, records, rows, best_row, baselines, elapsed_s)
    inputs = {"corpus": corpus.manifest}

    _export_best(
        artifacts.join(out, "best"), models[best_row["architecture"]], best_record, best_metrics, cfg, corpus
    )
    curves = _learning_curves(records, cfg)
    _write_report_dir(artifacts.join(out, "report"), summary, curves, cfg, inputs)
    headline = {
        **best_metrics,
        "tfidf_test_rmse": baselines["tfidf_ridge"].get("test_rmse"),
        "mean_test_rmse": baselines["mean"].get("test_rmse"),
        "noise_floor_rmse": corpus.noise_floor_rmse,
        "total_trial_epochs": summary["total_trial_epochs"],
        "num_trials": len(records),
    }
    artifacts.write_manifest(out, stage="tune", config=dump_config(cfg), inputs=inputs, metrics=headline)
    log.info(
        "best: %s %s; exported to %s", best_row["architecture"], best_metrics, artifacts.join(out, "best")
    )
    return summary


def _best_per_architecture(records) -> dict[str, Any]:
    """Each architecture's trial with the lowest best val RMSE."""
    best: dict[str, Any] = {}
    for record in records:
        current = best.get(record.architecture)
        if current is None or record.best_val_rmse < current.best_val_rmse:
            best[record.architecture] = record
    return best


def _split_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The ``val_*`` and ``test_*`` entries of a row."""
    return {k: v for k, v in row.items() if k.split("_")[0] in ("val", "test")}


def _evaluate_architectures(best_per_arch, data, cfg: TuneJobConfig) -> tuple[list[dict[str, Any]], dict]:
    """Reload each architecture's best trial and measure it on val and test (in the report's order).

    Returns:
        ``(rows, models)``: one table row per architecture, and the loaded models by architecture.
    """
    from seqlab.train.regressor import evaluate, resolve_device
    from seqlab.tune.report import ARCHITECTURES
    from seqlab.tune.search import load_trial_model

    device = resolve_device(cfg.train.device)
    rows, models = [], {}
    order = {a: i for i, a in enumerate(ARCHITECTURES)}
    for arch, record in sorted(best_per_arch.items(), key=lambda kv: order.get(kv[0], 99)):
        model = load_trial_model(record, data).to(device)
        metrics: dict[str, float] = {}
        for split in ("val", "test"):
            if split in data.splits and len(data.splits[split]):
                metrics.update(
                    evaluate(model, data.splits[split], device, cfg.train.eval_batch_size, f"{split}_")
                )
        models[arch] = model
        rows.append(
            {
                "architecture": arch,
                "trial_id": record.trial_id,
                "config": record.config,
                "num_parameters": record.num_parameters,
                "samples_per_s": record.samples_per_s,
                "epochs": record.epochs,
                **{k: v for k, v in metrics.items() if not k.endswith("_loss")},
            }
        )
    return rows, models


def _goals(best_row: dict[str, Any], baselines: dict[str, Any], floor: float | None) -> dict[str, Any]:
    """Did the best model beat TF-IDF + ridge, and land within 15% of the label-noise floor (test RMSE)?"""
    test_rmse = best_row.get("test_rmse")
    goals: dict[str, Any] = {}
    if test_rmse is None:
        return goals
    goals["beats_tfidf"] = bool(test_rmse < baselines["tfidf_ridge"].get("test_rmse", float("inf")))
    if floor:
        goals["floor_target"] = 1.15 * floor
        goals["within_15pct_of_floor"] = bool(test_rmse <= 1.15 * floor)
    return goals


def _search_summary(grid, cfg, corpus, records, rows, best_row, baselines, elapsed_s) -> dict[str, Any]:
    """``report/results.json``: the search as run, every architecture's row, baselines, goals, importances."""
    from seqlab.tune.report import importance_note, param_importances

    configs, values = [r.config for r in records], [r.best_val_rmse for r in records]
    importances = param_importances(configs, values, cfg.search.space)
    return {
        "corpus": corpus.encoded.meta.get("corpus"),
        "corpus_hash": artifacts.manifest_hash(corpus.manifest),
        "rows": corpus.encoded.meta.get("rows"),
        "smoke_test": cfg.smoke_test,
        "search": {
            "algorithm": cfg.search.algorithm,
            "scheduler": cfg.search.scheduler,
            "num_samples": cfg.search.num_samples,
            "max_epochs": cfg.train.max_epochs,
        },
        "num_trials": len(records),
        "total_trial_epochs": int(sum(r.epochs for r in records)),
        "elapsed_s": elapsed_s,
        "best": {**best_row},
        "architectures": rows,
        "baselines": baselines,
        "noise_floor_rmse": corpus.noise_floor_rmse,
        "goals": _goals(best_row, baselines, corpus.noise_floor_rmse),
        "importances": importances,
        "importances_note": importance_note(values, importances),
        "experiment": str(grid.experiment_path),
    }


def _learning_curves(records, cfg: TuneJobConfig) -> list[dict[str, Any]]:
    """Every trial's val RMSE (and R²) per epoch and when it was reported, for the learning-curve and
    best-so-far plots; ``seeded`` marks the seeded architecture trials."""
    from seqlab.tune.search import seeded_points

    points = seeded_points(cfg.search)

    def column(history, name: str) -> list[float]:
        return history[name].astype(float).tolist() if name in history else []

    return [
        {
            "trial_id": r.trial_id,
            "architecture": r.architecture,
            "seeded": bool(points) and {k: r.config.get(k) for k in points[0]} in points,
            "epoch": r.history["epoch"].astype(int).tolist(),
            "val_rmse": column(r.history, "val_rmse"),
            "val_r2": column(r.history, "val_r2"),
            "reported_at": column(r.history, "reported_at"),
        }
        for r in records
    ]


def _export_best(
    directory: str, model, record, metrics: dict[str, float], cfg: TuneJobConfig, corpus
) -> None:
    """Save the winning trial as a scorer artifact, with the normalization its text column was made with."""
    from tokenizers import Tokenizer

    from seqlab.models import TokenizerConfig, save_scorer

    data = corpus.encoded
    save_scorer(
        directory,
        model.cpu(),
        Tokenizer.from_str(data.tokenizer_json),
        TokenizerConfig.model_validate(data.tokenizer_config),
        metrics,
        job_config=dump_config(cfg),
        inputs={"corpus": corpus.manifest},
        normalize=_training_normalization(cfg.data.text_column, corpus.manifest),
        text_column=cfg.data.text_column,
        trial_id=record.trial_id,
        architecture=record.architecture,
        trial_config=record.config,
    )


def _training_normalization(text_column: str, corpus_manifest: dict[str, Any]):
    """What ``Scorer.predict`` must do to raw text so it matches the column the search trained on."""
    from seqlab.text.config import corpus_normalization

    if text_column == "text_norm":
        return corpus_normalization(corpus_manifest)
    if text_column != "text":
        log.warning(
            "the scorer was trained on column %r; predict() will score raw text as it is", text_column
        )
    return None


def _write_report_dir(directory: str, summary, curves, cfg: TuneJobConfig, inputs) -> None:
    from seqlab.tune.report import write_report

    with artifacts.staged_dir(directory) as local:
        files = write_report(str(local), summary, curves)
        artifacts.write_manifest(
            local,
            stage="tune-report",
            config=dump_config(cfg),
            inputs=inputs,
            metrics=summary["best"],
            files=files,
        )
