"""``TrainConfig``: the optimization settings of one training run. Pure (no torch), for config modules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from seqlab.config import Config

__all__ = ["TrainConfig"]


class TrainConfig(Config):
    """Optimization settings of one run (the search samples ``lr`` and ``batch_size``)."""

    max_epochs: int = Field(20, ge=1, description="upper bound on epochs (ASHA's max_t in a search)")
    patience: int = Field(
        3, ge=0, description="stop after this many epochs without val-loss improvement (0 = never)"
    )
    min_delta: float = Field(1e-4, ge=0, description="smallest val-loss drop that counts as improvement")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    batch_size: int = Field(32, ge=1, description="documents per batch")
    optimizer: Literal["adam", "adamw"] = Field("adam", description="Adam, or AdamW (decoupled decay)")
    weight_decay: float = Field(0.0, ge=0, description="L2 (adam) or decoupled (adamw) weight decay")
    grad_clip: float = Field(1.0, ge=0, description="clip the global gradient norm to this (0 = off)")
    lr_decay: float = Field(
        0.5, gt=0, le=1, description="multiply lr by this after an epoch without val improvement (1 = off)"
    )
    seed: int = Field(0, description="seeds weights, dropout and batch order")
    device: str = Field("auto", description="'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1'...")
    chunk_batches: int = Field(50, ge=1, description="batches per length-sorted chunk (bucketing)")
    eval_batch_size: int = Field(256, ge=1, description="documents per batch when evaluating")
