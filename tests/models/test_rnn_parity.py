"""Parity of :class:`RNNRegressor` with PyTorch's own recurrent modules, one unpadded sequence at a time.

The model builds three things by hand that ``torch.nn.RNN/GRU/LSTM`` would otherwise do: the backward
direction (a separate stack run over each sequence reversed within its length, then reversed back), the
stacking of bidirectional layers (layer k + 1 reads both directions of layer k), and the masking of padded
positions in pooling. The reference here is a fused ``nn.RNN/GRU/LSTM(num_layers=L, bidirectional=...)``
holding the model's weights, run on each sequence alone and without padding, so neither padding nor the
hand-built reversal can be involved in what it computes.

Compared, at every real position of a padded batch: the last layer's outputs (B, T, D*H), the pooled
features the head reads (B, D*H), and the scores (B,). The self-consistency tests (padding, batch mates,
packed vs padded) live in test_rnn_regressor.py; a backward stack that ran left to right, a reversal that
was not undone, or directions concatenated in the wrong order would pass those but fail these.
"""

import pytest
import torch
from torch import nn

from seqlab.models.rnn import CELLS, POOLINGS, SCORE_MAX, RNNRegressor

torch.set_num_threads(1)

VOCAB, EMBED, HIDDEN = 20, 6, 5
REFERENCE = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}  # cell -> the torch module it must match
ATOL = RTOL = 1e-5


def padded_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and lengths (B,): lengths 1 and T - 2 included, two columns of padding only."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.cat([torch.tensor([1, 9]), torch.randint(2, 9, (5,), generator=g)])
    tokens = torch.zeros(len(lengths), int(lengths.max()) + 2, dtype=torch.long)  # (B, T)
    for row, n in enumerate(lengths.tolist()):
        tokens[row, :n] = torch.randint(1, VOCAB, (n,), generator=g)
    return tokens, lengths


def reference_module(model: RNNRegressor) -> nn.RNNBase:
    """A fused torch module with the model's recurrent weights (``_reverse`` = the model's backward stack)."""
    cfg = model.config
    ref = REFERENCE[cfg.cell](
        EMBED, HIDDEN, num_layers=cfg.layers, bidirectional=cfg.bidirectional, batch_first=True
    )
    if not cfg.bidirectional:
        state = model.rnn.state_dict()
    else:
        state = {}
        for k in range(cfg.layers):
            for suffix, stack in (("", model.fwd), ("_reverse", model.bwd)):
                for name, value in stack[k].state_dict().items():  # e.g. weight_ih_l0 of layer k's module
                    state[name.removesuffix("_l0") + f"_l{k}{suffix}"] = value
    ref.load_state_dict(state)  # strict: every weight of the reference comes from the model
    return ref.eval()


def reference_run(model: RNNRegressor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Outputs (L, D*H), pooled features (D*H,) and score () of one unpadded sequence ``ids`` (L,)."""
    cfg = model.config
    x = model.embedding(ids[None])  # (1, L, E)
    out, h_n = reference_module(model)(x)  # out: (1, L, D*H); h_n: (layers * D, 1, H)
    if cfg.cell == "lstm":
        h_n = h_n[0]  # (h_n, c_n) -> h_n
    out = out[0]  # (L, D*H)
    if cfg.pooling == "last":
        # torch's final states: the forward direction after the last token, the backward after the first.
        pooled = torch.cat(list(h_n[-2:, 0])) if cfg.bidirectional else h_n[-1, 0]
    elif cfg.pooling == "mean":
        pooled = out.mean(0)
    elif cfg.pooling == "max":
        pooled = out.amax(0)
    else:
        weights = torch.softmax(model.attn_v(torch.tanh(model.attn_proj(out))).squeeze(-1), dim=0)  # (L,)
        pooled = weights @ out
    score = SCORE_MAX * torch.sigmoid(model.head(pooled)).squeeze(-1)
    return out, pooled, score


def keep_input(store: dict[str, torch.Tensor], key: str):
    """A forward hook that stores its module's (first) input under ``store[key]``."""

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        store[key] = args[0]

    return hook


def test_every_cell_has_a_torch_reference():
    assert set(CELLS) == set(REFERENCE)


@pytest.mark.parametrize("pack", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch_on_each_sequence_alone(cell, bidirectional, layers, pack):
    tokens, lengths = padded_batch(seed=layers + 2 * bidirectional)
    for seed, pooling in enumerate(POOLINGS):
        torch.manual_seed(seed)
        model = RNNRegressor(
            VOCAB, EMBED, cell, bidirectional, HIDDEN, layers, dropout=0.3, pooling=pooling
        ).eval()
        seen: dict[str, torch.Tensor] = {}
        # The head's input is the pooled features (dropout is off in eval mode); with attention pooling,
        # attn_proj's input is the last layer's outputs at every position. The hooks are removed before
        # the reference runs, which call the same head and attention layers.
        hooks = [model.head.register_forward_hook(keep_input(seen, "pooled"))]
        if pooling == "attention":
            hooks.append(model.attn_proj.register_forward_hook(keep_input(seen, "out")))
        with torch.no_grad():
            scores = model(tokens, lengths, pack=pack)  # (B,)
            for hook in hooks:
                hook.remove()
            for row, n in enumerate(lengths.tolist()):
                where = f"{cell} bi={bidirectional} layers={layers} pooling={pooling} row {row} (length {n})"
                out, pooled, score = reference_run(model, tokens[row, :n])
                if pooling == "attention":
                    torch.testing.assert_close(seen["out"][row, :n], out, atol=ATOL, rtol=RTOL, msg=where)
                torch.testing.assert_close(seen["pooled"][row], pooled, atol=ATOL, rtol=RTOL, msg=where)
                torch.testing.assert_close(scores[row], score, atol=ATOL, rtol=RTOL, msg=where)
