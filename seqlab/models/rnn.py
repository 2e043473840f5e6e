"""The relevance regressor: token ids -> embedding -> RNN | GRU | LSTM (uni/bi) -> pooling -> score in 0–10.

One family covers the seed's comparison table (RNN, BiRNN, GRU, BiGRU, LSTM, BiLSTM). The recurrent layers
are PyTorch's fused (cuDNN on GPU, oneDNN on CPU) ``nn.RNN/GRU/LSTM``; no Python loop runs over time.

Padding is handled exactly, so a document's score never depends on its batch mates:

- Batches are length-bucketed by the training loop, so there is little padding to waste compute on, and
  the RNN runs over the padded tensor by default. On CPU that is 2.5–5x faster per token than a
  ``PackedSequence`` (measured: ``seqlab bench train``); ``forward(..., pack=True)`` packs instead.
- The forward direction is causal, so its outputs at real tokens ignore the trailing padding. The backward
  direction runs as its own stack over each sequence reversed *within its length* (padding stays at the
  end), then is reversed back — exact without packing. Bidirectional models are therefore stacks of
  one-layer modules per direction (a fused bidirectional module would read the padding first).
- Pooling masks padding ("last" takes the forward state at the last real token and the backward state at
  the first).

No training code lives here. Shapes: B = batch, T = padded length, E = embedding size, H = hidden size,
D = directions (1 or 2).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.models.config import CELLS, POOLINGS, Cell, Pooling, RNNConfig, architecture_name

__all__ = ["CELLS", "POOLINGS", "SCORE_MAX", "RNNConfig", "RNNRegressor", "architecture_name"]

SCORE_MAX = 10.0  # scores live in [0, SCORE_MAX]; the head is SCORE_MAX * sigmoid(.)
PAD_ID = 0  # the tokenizer reserves id 0 for padding (see seqlab.models.tokenizer)

_RNN_CLASSES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RNNRegressor(nn.Module):
    """Embedding -> (Bi)RNN/GRU/LSTM over the padded batch -> pooling -> ``10 * sigmoid(linear)``.

    Padding is handled exactly (see the module docstring); ``forward(..., pack=True)`` runs the recurrent
    layers over packed sequences instead, with the same result up to float rounding.

    Args mirror :class:`RNNConfig`; ``RNNRegressor.from_config(cfg)`` builds one from it.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 128,
        cell: Cell = "gru",
        bidirectional: bool = False,
        hidden: int = 128,
        layers: int = 1,
        dropout: float = 0.1,
        pooling: Pooling = "last",
    ) -> None:
        super().__init__()
        if cell not in _RNN_CLASSES:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.config = RNNConfig(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            cell=cell,
            bidirectional=bidirectional,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            pooling=pooling,
        )
        directions = 2 if bidirectional else 1
        rnn_cls = _RNN_CLASSES[cell]
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        if bidirectional:
            # Per layer: a left-to-right and a right-to-left one-layer module (see the module docstring).
            sizes = [embed_dim] + [2 * hidden] * (layers - 1)
            self.fwd = nn.ModuleList(rnn_cls(n, hidden, batch_first=True) for n in sizes)
            self.bwd = nn.ModuleList(rnn_cls(n, hidden, batch_first=True) for n in sizes)
        else:
            # One fused multi-layer module; inter-layer dropout only exists for layers > 1.
            self.rnn = rnn_cls(
                embed_dim, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
            )
        features = directions * hidden
        if pooling == "attention":
            # Additive attention: score_t = v . tanh(W h_t); one learned query over the sequence.
            self.attn_proj = nn.Linear(features, features)
            self.attn_v = nn.Linear(features, 1, bias=False)
        self.head = nn.Linear(features, 1)

    @classmethod
    def from_config(cls, cfg: RNNConfig | dict) -> RNNRegressor:
        """Build from an :class:`RNNConfig` or its dict form."""
        cfg = cfg if isinstance(cfg, RNNConfig) else RNNConfig.model_validate(cfg)
        return cls(**cfg.model_dump())

    def num_parameters(self) -> int:
        """Trainable parameter count (the seed table's "params" column)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @torch.no_grad()
    def set_output_mean(self, mean_score: float) -> None:
        """Start the head at the training mean (bias = logit(mean/10)) so early epochs fit signal, not offset."""
        p = min(max(mean_score / SCORE_MAX, 1e-3), 1 - 1e-3)
        self.head.bias.fill_(math.log(p / (1 - p)))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, pack: bool = False) -> torch.Tensor:
        """Score a padded batch.

        Args:
            tokens: (B, T) int64 token ids, right-padded with 0.
            lengths: (B,) int64 true lengths, each >= 1 (any device).
            pack: run each recurrent module over a ``PackedSequence`` instead of the padded tensor (same
                result up to float rounding; faster only with lots of padding on GPU).

        Returns:
            (B,) float scores in [0, 10].
        """
        T = tokens.shape[1]  # tokens: (B, T)
        lengths_dev = lengths.to(tokens.device)
        mask = torch.arange(T, device=tokens.device)[None, :] < lengths_dev[:, None]  # (B, T) True on tokens
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        if not self.config.bidirectional:
            out = self._run(self.rnn, x, lengths, pack)  # (B, T, H)
        else:
            rev = _reverse_index(lengths_dev, T)  # (B, T)
            out = x
            for i, (fwd, bwd) in enumerate(zip(self.fwd, self.bwd, strict=True)):
                if i > 0:
                    out = self.dropout(out)  # inter-layer dropout, as in a fused multi-layer module
                left = self._run(fwd, out, lengths, pack)  # (B, T, H)
                right = _gather_time(self._run(bwd, _gather_time(out, rev), lengths, pack), rev)  # (B, T, H)
                out = torch.cat([left, right], dim=-1)  # (B, T, 2H)
        pooled = self._pool(out, mask, lengths_dev)  # (B, D*H)
        logit = self.head(self.dropout(pooled)).squeeze(-1)  # (B,)
        return SCORE_MAX * torch.sigmoid(logit)

    @staticmethod
    def _run(module: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, pack: bool) -> torch.Tensor:
        """Outputs (B, T, H) of ``module`` over right-padded ``x`` (B, T, in); padded positions are junk."""
        if not pack:
            return module(x)[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(module(packed)[0], batch_first=True, total_length=x.shape[1])[0]

    def _pool(self, out: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooling = self.config.pooling
        if pooling == "last":
            H = self.config.hidden
            last = out[torch.arange(out.size(0), device=out.device), lengths - 1]  # (B, D*H)
            if not self.config.bidirectional:
                return last
            # Forward direction ends at the last real token, backward at the first.
            return torch.cat([last[:, :H], out[:, 0, H:]], dim=-1)  # (B, 2H)
        m = mask.unsqueeze(-1)  # (B, T, 1)
        if pooling == "mean":
            return (out * m).sum(1) / lengths.unsqueeze(-1).to(out.dtype)  # (B, D*H)
        if pooling == "max":
            return out.masked_fill(~m, float("-inf")).amax(1)  # (B, D*H)
        scores = self.attn_v(torch.tanh(self.attn_proj(out))).squeeze(-1)  # (B, T)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)  # (B, T)
        return torch.bmm(weights.unsqueeze(1), out).squeeze(1)  # (B, D*H)


def _reverse_index(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) time index that reverses each row's first ``length`` steps and keeps its padding in place.

    It is its own inverse: ``_gather_time(_gather_time(x, idx), idx) == x``.
    """
    t = torch.arange(T, device=lengths.device)[None, :]  # (1, T)
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b, t], :]`` for x (B, T, F) and index (B, T)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
