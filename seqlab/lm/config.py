"""The fine-tuning job's config (``jobs/finetune.yaml``, ``seqlab finetune``): one typed place for every default.

Two ways to get a model, same training path:

* ``model.base_model`` set (a Hugging Face id such as ``gpt2`` / ``aubmindlab/aragpt2-base`` or a local
  directory): model and tokenizer come from ``from_pretrained``; the lr default is 5e-5 (fine-tuning).
* unset (the offline default): a byte-level BPE tokenizer is trained on the corpus' train split and a small
  GPT-2 is built from ``GPT2Config``; the lr default is 1e-3 (training from scratch needs a bigger step).

``smoke_test: true`` shrinks data, model and evaluation so the whole job runs in about a minute on a CPU.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import ConfigDict, Field, model_validator

from seqlab.config import Config, JobConfig

__all__ = [
    "DECODING_PRESETS",
    "DECODING_PRESET_CONFIGS",
    "DecodingConfig",
    "DecodingParams",
    "EvalConfig",
    "FinetuneJobConfig",
    "LMDataConfig",
    "LMTrainConfig",
    "ModelConfig",
    "RayConfig",
]

_P = TypeVar("_P", bound="DecodingParams")


class DecodingParams(Config):
    """How to pick each next token: the decoding parameters a person chooses.

    The one definition of them: ``seqlab generate``'s flags, the finetune report's presets and the HTTP
    schemas of ``/v1/generate`` and ``/v1/completions`` are all made from these fields. Defaults follow the
    seed's table: temperature 0.8 (0.7-1.0), top-k 50 (40-100), top-p 0.92 (0.9-0.95), repetition
    penalty 1.2 (1.1-1.3).
    """

    model_config = ConfigDict(frozen=True)

    strategy: Literal["greedy", "sample"] = Field(
        "sample", description="'greedy' (argmax; temperature/top-k/top-p ignored) or 'sample'"
    )
    temperature: float = Field(
        0.8,
        ge=0,
        le=100,
        description="divides the logits before sampling (< 1 sharpens, > 1 flattens); 0 means greedy, "
        "as in OpenAI's API",
    )
    top_k: int = Field(50, ge=0, description="sample only among the k most likely tokens (0 disables)")
    top_p: float = Field(
        0.92,
        gt=0,
        le=1,
        description="sample only within the nucleus: the smallest set of most likely tokens whose "
        "probability mass reaches top_p (1 disables)",
    )
    repetition_penalty: float = Field(
        1.2,
        gt=0,
        le=10,
        description="CTRL-style penalty on every token already in the prompt or output: positive logits "
        "are divided by it, negative ones multiplied (1 disables)",
    )
    max_new_tokens: int = Field(
        64, ge=1, description="tokens to generate per candidate (fewer when end-of-text comes first)"
    )
    num_candidates: int = Field(
        1, ge=1, le=64, description="independent continuations generated together as one batch"
    )
    seed: int | None = Field(
        None, ge=0, description="seed of the sampling generator (same seed, same text); null draws one"
    )

    @model_validator(mode="before")
    @classmethod
    def _zero_temperature_is_greedy(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("temperature") == 0:
            data = {**data, "strategy": "greedy"}
        return data

    def replace(self, **changes: Any) -> DecodingParams:
        """A validated copy with ``changes`` applied (a bad value raises, naming the field)."""
        return type(self).model_validate({**self.model_dump(), **changes})

    @classmethod
    def of(cls: type[_P], params: DecodingParams) -> _P:
        """``params`` as exactly this class: itself when it is one, else its decoding fields (a request
        schema's narrowed to :class:`DecodingParams`; :class:`DecodingConfig`'s switches at their defaults)."""
        if type(params) is cls:
            return params
        return cls(**{name: getattr(params, name) for name in DecodingParams.model_fields})


class DecodingConfig(DecodingParams):
    """:class:`DecodingParams` plus the engine switches that only code (tests, benchmarks) turns off."""

    use_cache: bool = Field(True, description="reuse attention keys/values (KV cache)")
    stop_at_eos: bool = Field(True, description="stop a candidate at <|endoftext|> (benchmarks turn it off)")


# The decoding presets the finetune report compares, by name: the one definition of both the names
# (``eval.strategies`` accepts exactly these) and their options. Each changes one thing at a time from
# plain greedy / plain sampling, so the report shows what that one switch does; "default" is the seed table.
_SEED_TABLE = DecodingConfig()
DECODING_PRESET_CONFIGS: dict[str, DecodingConfig] = {
    "greedy": DecodingConfig(strategy="greedy", repetition_penalty=1.0),
    "greedy_rep": DecodingConfig(strategy="greedy", repetition_penalty=_SEED_TABLE.repetition_penalty),
    "temperature": DecodingConfig(strategy="sample", top_k=0, top_p=1.0, repetition_penalty=1.0),
    "top_k": DecodingConfig(strategy="sample", top_k=_SEED_TABLE.top_k, top_p=1.0, repetition_penalty=1.0),
    "top_p": DecodingConfig(strategy="sample", top_k=0, top_p=_SEED_TABLE.top_p, repetition_penalty=1.0),
    "default": _SEED_TABLE,
}
DECODING_PRESETS: tuple[str, ...] = tuple(DECODING_PRESET_CONFIGS)  # the names, in report order


class ModelConfig(Config):
    """Where the model comes from, and the shape of the small from-scratch GPT-2."""

    base_model: str | None = Field(
        None,
        description="Hugging Face model id or local directory to fine-tune (from_pretrained); "
        "null trains a byte-level BPE tokenizer and a small GPT-2 from scratch (offline default)",
    )
    vocab_size: int = Field(8000, ge=300, description="BPE vocabulary size (from-scratch only)")
    min_frequency: int = Field(2, ge=1, description="minimum pair count for a BPE merge (from-scratch only)")
    n_layer: int = Field(4, ge=1, le=48, description="transformer blocks (from-scratch only)")
    n_head: int = Field(4, ge=1, description="attention heads; must divide n_embd (from-scratch only)")
    n_embd: int = Field(256, ge=16, description="hidden size (from-scratch only)")
    n_positions: int = Field(256, ge=16, description="maximum context length (from-scratch only)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="residual/embedding/attention dropout")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class LMDataConfig(Config):
    """Which corpus and how it becomes training blocks."""

    path: str | None = Field(
        None,
        description="corpus directory (corpus/ Parquet + manifest.json); null uses the bundled corpus",
    )
    text_column: Literal["text", "text_norm"] = Field(
        "text",
        description="column to train on: 'text' (extracted, natural text, so generations read naturally) "
        "or 'text_norm' (normalized: no diacritics/tatweel, unified alef forms)",
    )
    block_size: int = Field(
        128, ge=8, description="tokens per packed training block (<= the model's n_positions)"
    )
    max_docs: int | None = Field(
        None,
        ge=1,
        description="use only the corpus' first N documents, all splits together (null: all); "
        "smoke tests use a few hundred",
    )


class LMTrainConfig(Config):
    """The optimization loop run by every Ray Train worker."""

    lr: float | None = Field(
        None, gt=0, description="AdamW peak learning rate; null: 5e-5 when fine-tuning, 1e-3 from scratch"
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not on biases/LayerNorm)")
    epochs: int = Field(3, ge=1, le=100, description="passes over the train split")
    batch_size: int = Field(8, ge=1, description="blocks per micro-batch per worker")
    grad_accum: int = Field(4, ge=1, description="micro-batches accumulated per optimizer step")
    warmup_steps: int = Field(200, ge=0, description="linear warmup steps (upper bound, see warmup_fraction)")
    warmup_fraction: float = Field(
        0.1, ge=0, le=1, description="warmup is at most this fraction of all steps (small corpora)"
    )
    max_steps: int | None = Field(
        None, ge=1, description="stop after this many optimizer steps in total (null: run all epochs)"
    )
    grad_clip: float = Field(1.0, gt=0, description="max global gradient norm")
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = Field(
        "auto",
        description="autocast dtype on GPU ('auto': bf16 if supported, else fp16 with loss scaling); "
        "always off on CPU",
    )
    report_every: int = Field(10, ge=1, description="report loss/perplexity every N optimizer steps")
    checkpoint_every: int = Field(
        100, ge=1, description="checkpoint (model+optimizer+scheduler+step) every N optimizer steps"
    )
    shuffle_buffer: int = Field(256, ge=0, description="blocks in the local shuffle buffer (0: no shuffle)")
    seed: int = Field(0, description="seed for model init, shuffling and evaluation sampling")


class RayConfig(Config):
    """Ray Train scaling, storage and fault tolerance."""

    num_workers: int = Field(1, ge=1, description="data-parallel training workers")
    use_gpu: bool = Field(False, description="one GPU per worker (and mixed precision)")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs per worker (also its torch thread count)")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK",
        description="how workers are placed on nodes: PACK fills a node first; STRICT_SPREAD puts each "
        "worker on its own node (one GPU node per worker)",
    )
    max_failures: int = Field(2, ge=-1, description="worker-failure restarts from the latest checkpoint")
    storage_path: str | None = Field(
        None,
        description="where Ray Train keeps checkpoints (local dir or URI); null: <out>/ray_results. "
        "Rerunning with the same storage_path and name resumes from the latest checkpoint",
    )
    name: str = Field("finetune", description="run name under storage_path")
    num_to_keep: int = Field(2, ge=1, description="checkpoints kept on storage")


class EvalConfig(Config):
    """Held-out evaluation written to the report."""

    num_prompts: int = Field(32, ge=1, description="test documents used as prompts for BLEU/distinct-n")
    prompt_tokens: int = Field(24, ge=1, description="prompt length in tokens (start of a test document)")
    continuation_tokens: int = Field(
        32, ge=1, description="reference continuation length = tokens generated per prompt"
    )
    strategies: list[Literal[DECODING_PRESETS]] = Field(  # type: ignore[valid-type]
        list(DECODING_PRESETS), min_length=1, description=f"decoding presets to compare: {DECODING_PRESETS}"
    )
    max_eval_blocks: int = Field(512, ge=1, description="cap on held-out blocks for perplexity")


class FinetuneJobConfig(JobConfig):
    """``seqlab finetune`` / ``jobs/finetune.py``: train or fine-tune GPT-2 with Ray Train."""

    out: str | None = Field(None, description="output directory (model/, report/); --out overrides it")
    smoke_test: bool = Field(
        False, description="tiny data, model and evaluation: runs end to end in about a minute on a CPU"
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="model source and shape")
    data: LMDataConfig = Field(default_factory=LMDataConfig, description="corpus and packing")
    train: LMTrainConfig = Field(default_factory=LMTrainConfig, description="optimization loop")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray Train scaling and storage")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="held-out evaluation")

    def effective_lr(self) -> float:
        """The learning rate actually used (the null default depends on fine-tuning vs from scratch)."""
        if self.train.lr is not None:
            return self.train.lr
        return 5e-5 if self.model.base_model else 1e-3

    def _smoke_reduced(self) -> FinetuneJobConfig:
        """Every size shrunk so the job runs in about a minute on a CPU."""
        data = self.model_dump()
        data["model"].update(
            vocab_size=min(self.model.vocab_size, 1000), n_layer=2, n_embd=64, n_positions=128
        )
        data["data"].update(
            block_size=min(self.data.block_size, 64), max_docs=min(self.data.max_docs or 300, 300)
        )
        data["train"].update(epochs=1, max_steps=min(self.train.max_steps or 30, 30), grad_accum=1)
        data["train"].update(report_every=5, checkpoint_every=15, warmup_steps=5)
        data["eval"].update(num_prompts=min(self.eval.num_prompts, 6), max_eval_blocks=64)
        data["eval"].update(prompt_tokens=min(self.eval.prompt_tokens, 12))
        data["eval"].update(continuation_tokens=min(self.eval.continuation_tokens, 16))
        return type(self).model_validate(data)
