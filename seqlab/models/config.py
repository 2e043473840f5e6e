"""The regressor's architecture as data: :class:`RNNConfig`, the cells and poolings, the seed table's names.

Pure (no torch), so config modules such as ``seqlab.tune.config`` can import it without loading PyTorch;
:mod:`seqlab.models.rnn` builds the module from it.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from seqlab.config import Config

__all__ = ["CELLS", "POOLINGS", "Cell", "Pooling", "RNNConfig", "architecture_name"]

Cell = Literal["rnn", "gru", "lstm"]
Pooling = Literal["last", "mean", "max", "attention"]
CELLS: tuple[str, ...] = get_args(Cell)  # ("rnn", "gru", "lstm"): the seed table's order
POOLINGS: tuple[str, ...] = get_args(Pooling)


class RNNConfig(Config):
    """Architecture of one :class:`RNNRegressor` (stored as ``config.json`` in a scorer artifact)."""

    vocab_size: int = Field(..., ge=2, description="embedding rows, including [PAD]=0 and [UNK]=1")
    embed_dim: int = Field(128, ge=1, description="token embedding size E")
    cell: Cell = Field("gru", description="recurrent cell: rnn (tanh Elman), gru or lstm")
    bidirectional: bool = Field(False, description="run a second RNN right-to-left and concatenate")
    hidden: int = Field(128, ge=1, description="hidden size H per direction")
    layers: int = Field(1, ge=1, le=8, description="stacked recurrent layers")
    dropout: float = Field(
        0.1, ge=0.0, lt=1.0, description="dropout on embeddings, between layers and before the head"
    )
    pooling: Pooling = Field(
        "last", description="sequence summary: last state, mean, max, or additive attention"
    )


def architecture_name(cell: str, bidirectional: bool) -> str:
    """The seed table's row name: ``RNN``, ``BiRNN``, ``GRU``, ``BiGRU``, ``LSTM`` or ``BiLSTM``."""
    return ("Bi" if bidirectional else "") + cell.upper()
