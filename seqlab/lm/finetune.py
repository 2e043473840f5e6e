"""The fine-tuning stage end to end: corpus -> tokenizer/model -> Ray Train -> export -> evaluation -> report.

``run_finetune(cfg)`` is what ``seqlab finetune`` and ``jobs/finetune.py`` call. It writes::

    OUT/model/    Hugging Face directory (save_pretrained of model + tokenizer) + manifest.json
    OUT/report/   report.md, training_curve.png, metrics.json
    OUT/ray_results/<name>/   Ray Train checkpoints (default storage; rerun to resume)

``OUT`` may be a URI (``s3://...``): the model and report are written locally first, then copied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from seqlab.artifacts import (
    claim_output_dir,
    is_uri,
    join,
    json_text,
    read_manifest,
    read_text,
    releases_outputs,
    staged_dir,
    write_manifest,
    write_text,
)
from seqlab.config import dump_config
from seqlab.corpus_source import resolve_corpus_dir
from seqlab.interrupts import Interrupted
from seqlab.lm.config import FinetuneJobConfig
from seqlab.lm.data import pack_blocks, read_split_texts
from seqlab.lm.model import ModelSpec, count_parameters, init_model, load_causal_lm, small_gpt2_config
from seqlab.lm.tokenizer import load_tokenizer, train_bpe_tokenizer

__all__ = ["prepare_model_and_tokenizer", "run_finetune"]

log = logging.getLogger(__name__)


def prepare_model_and_tokenizer(cfg: FinetuneJobConfig, corpus_dir: str) -> tuple[ModelSpec, Any, int]:
    """The model recipe, the tokenizer and the model's context length.

    With ``cfg.model.base_model`` both come from ``from_pretrained``; otherwise a byte-level BPE is
    trained on the train split and the spec describes a small GPT-2 built from ``GPT2Config``.
    """
    m = cfg.model
    if m.base_model:
        from transformers import AutoConfig

        local = Path(m.base_model).expanduser()
        looks_local = (
            local.exists() or m.base_model.startswith((".", "/", "~")) or m.base_model.count("/") > 1
        )
        if looks_local and not (local / "config.json").is_file():
            what = "does not exist" if not local.exists() else "has no config.json"
            raise FileNotFoundError(
                f"--base-model {m.base_model} {what}: give a Hugging Face model directory (save_pretrained) "
                "or a hub id such as gpt2"
            )
        try:
            tokenizer = load_tokenizer(m.base_model)
            hf_cfg = AutoConfig.from_pretrained(m.base_model)
        except OSError as exc:  # a hub id that cannot be fetched (offline, typo, gated)
            raise FileNotFoundError(f"--base-model {m.base_model}: {str(exc).splitlines()[0]}") from None
        context = getattr(hf_cfg, "n_positions", None) or hf_cfg.max_position_embeddings
        return ModelSpec(base_model=m.base_model, seed=cfg.train.seed), tokenizer, int(context)
    texts = read_split_texts(corpus_dir, "train", cfg.data.text_column, cfg.data.max_docs)
    if not texts:
        raise ValueError(f"{corpus_dir}: the train split has no '{cfg.data.text_column}' text")
    tokenizer = train_bpe_tokenizer(texts, m.vocab_size, m.min_frequency)
    gpt2 = small_gpt2_config(m, vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id)
    return ModelSpec(gpt2_config=gpt2.to_dict(), seed=cfg.train.seed), tokenizer, m.n_positions


def _check_resume_identity(storage: str, cfg: FinetuneJobConfig, spec: ModelSpec, tokenizer: Any) -> None:
    """Refuse to resume a Ray Train run made by a different model, tokenizer or data packing.

    Rerunning with the same storage path and run name resumes from the latest checkpoint; that is only
    right when the checkpoint's model matches. The first run records what it trains in
    ``<storage>/<name>/seqlab_run.json``; later runs must match it.
    """
    identity = json.loads(  # through JSON, so it compares equal to what a previous run wrote
        json.dumps(
            {
                "model": {"base_model": spec.base_model, "gpt2_config": spec.gpt2_config, "seed": spec.seed},
                "data": cfg.data.model_dump(mode="json"),
                "tokenizer_sha256": hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest(),
            },
            default=str,
        )
    )
    path = join(storage, cfg.ray.name, "seqlab_run.json")
    try:
        previous = json.loads(read_text(path))
    except OSError:  # no such file: a new run
        write_text(path, json.dumps(identity, indent=1))
        return
    changed = sorted(k for k in identity if previous.get(k) != identity[k])
    if changed:
        raise ValueError(
            f"{join(storage, cfg.ray.name)} holds checkpoints of a different run (changed: {', '.join(changed)}); "
            "use another --out or --ray.name to start a new run"
        )


def _held_out_blocks(tokenizer: Any, texts: list[str], block_size: int, cap: int) -> Any:
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    return pack_blocks(ids, block_size, tokenizer.eos_token_id)[:cap]


def _evaluate(cfg: FinetuneJobConfig, spec: ModelSpec, tokenizer: Any, corpus_dir: str, model_dir: str):
    from seqlab.lm.evaluate import continuation_set, evaluate_strategies, perplexity, vocabulary

    texts = read_split_texts(corpus_dir, "test", cfg.data.text_column, cfg.data.max_docs)
    if not texts:
        log.warning("no test split: evaluating on the validation split")
        texts = read_split_texts(corpus_dir, "val", cfg.data.text_column, cfg.data.max_docs)
    blocks = _held_out_blocks(tokenizer, texts, cfg.data.block_size, cfg.eval.max_eval_blocks)
    trained = load_causal_lm(model_dir)
    ppl = {"untrained": perplexity(init_model(spec), blocks), "trained": perplexity(trained, blocks)}
    e = cfg.eval
    held_out = continuation_set(tokenizer, texts, e.prompt_tokens, e.continuation_tokens, e.num_prompts)
    known = vocabulary(read_split_texts(corpus_dir, "train", cfg.data.text_column, cfg.data.max_docs))
    rows = evaluate_strategies(trained, tokenizer, held_out, e.strategies, seed=cfg.train.seed, known=known)
    return ppl, rows, len(blocks), len(held_out.references)


@releases_outputs
def run_finetune(
    cfg: FinetuneJobConfig, fail_at_step: int | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Run the whole stage for ``cfg`` (``cfg.out`` must be set) and return the model's manifest.

    Connects to ``RAY_ADDRESS`` or starts a local Ray if none is running (and stops what it started).
    A re-run with the same ``cfg.out`` resumes from the latest checkpoint.

    Raises:
        seqlab.artifacts.OutputTaken: ``cfg.out`` holds another stage's artifact (unless ``overwrite``).
    """
    from seqlab.lm.train import fit
    from seqlab.ray_utils import ray_session

    if not cfg.out:
        raise ValueError("no output directory: pass --out DIR or set out: in the config")
    claim_output_dir(cfg.out, "finetune", overwrite=overwrite)
    cfg = cfg.smoke().model_copy(deep=True)
    corpus_dir = resolve_corpus_dir(cfg.data.path)
    cfg.data.path = corpus_dir  # the manifest records the corpus actually read
    try:
        corpus_manifest = read_manifest(corpus_dir)
    except FileNotFoundError:
        log.warning("%s has no manifest.json; the model's manifest will not link to it", corpus_dir)
        corpus_manifest = {"path": corpus_dir}
    spec, tokenizer, context = prepare_model_and_tokenizer(cfg, corpus_dir)
    if cfg.data.block_size > context:
        raise ValueError(f"data.block_size {cfg.data.block_size} exceeds the model's context of {context}")
    out = cfg.out if is_uri(cfg.out) else str(Path(cfg.out).expanduser().resolve())
    storage = cfg.ray.storage_path or join(out, "ray_results")
    if not is_uri(storage):
        storage = str(Path(storage).expanduser().resolve())

    _check_resume_identity(storage, cfg, spec, tokenizer)
    with ray_session():
        try:
            run = fit(cfg, spec, tokenizer, corpus_dir, storage, fail_at_step=fail_at_step)
        except KeyboardInterrupt:
            raise Interrupted(
                f"fine-tuning interrupted; nothing was exported, its checkpoints are kept in {join(storage, cfg.ray.name)}"
            ) from None

    # Both directories appear only when complete (a Ctrl+C here leaves any earlier export as it was).
    with staged_dir(join(out, "model")) as model_dir, staged_dir(join(out, "report")) as report_dir:
        with run.checkpoint.as_directory() as ckpt_dir:
            shutil.copytree(Path(ckpt_dir, "model"), model_dir, dirs_exist_ok=True)
        tokenizer.save_pretrained(model_dir)
        manifest = _evaluate_and_report(
            cfg, spec, tokenizer, corpus_dir, corpus_manifest, run, model_dir, report_dir
        )
    log.info("model in %s, report in %s", join(out, "model"), join(out, "report"))
    return manifest


def _evaluate_and_report(
    cfg: FinetuneJobConfig,
    spec: ModelSpec,
    tokenizer: Any,
    corpus_dir: str,
    corpus_manifest: dict[str, Any],
    run: Any,
    model_dir: Path,
    report_dir: Path,
) -> dict[str, Any]:
    """Held-out perplexity and decoding metrics of the exported model, its report, and its manifest."""
    from seqlab.lm.report import write_report

    ppl, rows, n_blocks, n_prompts = _evaluate(cfg, spec, tokenizer, corpus_dir, str(model_dir))
    last = run.history[-1]
    steady = [h["tokens_per_s"] for h in run.history[1:]] or [last["tokens_per_s"]]
    n_params = count_parameters(load_causal_lm(str(model_dir)))
    metrics = {
        "steps": last["step"],
        "final_train_loss": last["loss"],
        "val_loss": next((h["val_loss"] for h in reversed(run.history) if "val_loss" in h), None),
        "test_perplexity": ppl["trained"],
        "test_perplexity_untrained": ppl["untrained"],
        "tokens_per_s": sum(steady) / len(steady),
        "parameters": n_params,
        "decoding": {
            r["strategy"]: {k: r[k] for k in ("bleu", "distinct_1", "distinct_2", "real_words")} for r in rows
        },
    }
    summary = {
        "model source": f"{spec.source} ({spec.base_model or 'GPT2Config from the job config'})",
        "parameters": f"{n_params / 1e6:.2f}M",
        "text column": cfg.data.text_column,
        "optimizer steps": f"{last['step']} (lr {cfg.effective_lr():g}, {cfg.ray.num_workers} worker(s))",
        "tokens/s (mean of reporting windows after the first)": f"{metrics['tokens_per_s']:.0f}",
        "held-out blocks / prompts": f"{n_blocks} / {n_prompts}",
        "Ray Train run": run.path,
    }
    write_report(report_dir, run.history, ppl, rows, summary)
    (report_dir / "metrics.json").write_text(json_text({**metrics, "history": run.history}))
    manifest = write_manifest(
        model_dir,
        stage="finetune",
        config=dump_config(cfg),
        inputs={"corpus": corpus_manifest},
        metrics=metrics,
        model_source=spec.source,
        base_model=spec.base_model,
        tokenizer="pretrained" if spec.base_model else "byte-level BPE trained on the corpus train split",
        ray_run=run.path,
    )
    return manifest
