"""GPT-2 build and load: a small model from a config (offline default) or a pretrained one by id/path.

A :class:`ModelSpec` is the small, picklable recipe a Ray Train worker (and the driver, for the
"untrained" baseline) turns into the same initial model: either ``from_pretrained(base_model)`` or
``GPT2LMHeadModel(GPT2Config(...))`` under a fixed seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from seqlab.lm.config import ModelConfig

__all__ = ["ModelSpec", "count_parameters", "init_model", "load_causal_lm", "small_gpt2_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """How to build the initial model.

    Attributes:
        base_model: hub id or local directory for ``from_pretrained``; None builds from ``gpt2_config``.
        gpt2_config: ``GPT2Config.to_dict()`` of the from-scratch model (used when ``base_model`` is None).
        seed: torch seed for the random init (identical weights on every worker and on the driver).
    """

    base_model: str | None = None
    gpt2_config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def source(self) -> str:
        """``"pretrained"`` or ``"scratch"`` (recorded in the manifest)."""
        return "pretrained" if self.base_model else "scratch"


def small_gpt2_config(cfg: ModelConfig, vocab_size: int, eos_token_id: int) -> GPT2Config:
    """The from-scratch GPT-2 shape from ``cfg`` and the trained tokenizer's vocabulary."""
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )


def load_causal_lm(name_or_path: str) -> PreTrainedModel:
    """``AutoModelForCausalLM.from_pretrained`` in float32 (training and CPU inference want fp32 weights).

    Hugging Face's progress bars are turned off for a local directory (a quick load whose bar only
    garbles a log) and whenever stderr is not a terminal; a hub download on a terminal keeps its bar.
    """
    import os
    import sys

    from transformers.utils import logging as hf_logging

    if os.path.isdir(name_or_path) or not sys.stderr.isatty():
        hf_logging.disable_progress_bar()
    return AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.float32)


def init_model(spec: ModelSpec) -> PreTrainedModel:
    """Build the initial (untrained or pretrained) model described by ``spec``."""
    if spec.base_model:
        return load_causal_lm(spec.base_model)
    if not spec.gpt2_config:
        raise ValueError("ModelSpec needs base_model or gpt2_config")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = GPT2LMHeadModel(GPT2Config.from_dict(spec.gpt2_config))
    log.info("built GPT-2 from config: %.2fM parameters", count_parameters(model) / 1e6)
    return model


def count_parameters(model: torch.nn.Module, non_embedding: bool = False) -> int:
    """Number of parameters (shared tensors counted once); ``non_embedding`` drops token/position tables."""
    seen: dict[int, int] = {}
    for name, p in model.named_parameters():
        if non_embedding and (name.endswith("wte.weight") or name.endswith("wpe.weight")):
            continue
        seen[id(p)] = p.numel()
    return sum(seen.values())
