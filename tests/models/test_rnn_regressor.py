import pytest
import torch
import torch.nn.functional as F

from seqlab.models import RNNConfig, RNNRegressor, architecture_name

torch.set_num_threads(1)

VOCAB = 12


def toy_batch(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Variable-length sequences whose score is 10 x the share of token 2 (a learnable signal)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 15, (n,), generator=g)
    tokens = torch.zeros(n, int(lengths.max()), dtype=torch.long)
    for i, n_tok in enumerate(lengths.tolist()):
        tokens[i, :n_tok] = torch.randint(2, VOCAB, (n_tok,), generator=g)
    share = torch.stack([(tokens[i, :n] == 2).float().mean() for i, n in enumerate(lengths.tolist())])
    return tokens, lengths, 10 * share


# The seed table's six architectures, each with a different pooling, then the remaining poolings.
ARCHS = [
    ("rnn", False, "last", 1),
    ("rnn", True, "mean", 2),
    ("gru", False, "max", 1),
    ("gru", True, "attention", 1),
    ("lstm", False, "attention", 2),
    ("lstm", True, "last", 1),
    ("gru", False, "last", 1),
    ("gru", False, "mean", 1),
    ("lstm", True, "max", 1),
]


@pytest.mark.parametrize(("cell", "bidirectional", "pooling", "layers"), ARCHS)
def test_each_architecture_learns(cell, bidirectional, pooling, layers):
    torch.manual_seed(0)
    model = RNNRegressor(
        VOCAB,
        embed_dim=16,
        cell=cell,
        bidirectional=bidirectional,
        hidden=16,
        layers=layers,
        dropout=0.0,
        pooling=pooling,
    )
    tokens, lengths, target = toy_batch()
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(25):
        loss = F.mse_loss(model(tokens, lengths), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (cell, bidirectional, pooling, losses[0], losses[-1])


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_and_batch_mates_do_not_change_a_score(pooling, bidirectional):
    torch.manual_seed(1)
    model = RNNRegressor(
        VOCAB, embed_dim=8, cell="lstm", bidirectional=bidirectional, hidden=8, layers=2, pooling=pooling
    ).eval()
    tokens, lengths, _ = toy_batch(6, seed=3)
    with torch.no_grad():
        batched = model(tokens, lengths)
        extra_pad = model(torch.cat([tokens, torch.zeros(6, 7, dtype=torch.long)], 1), lengths)
        alone = torch.stack([model(tokens[i : i + 1, : lengths[i]], lengths[i : i + 1])[0] for i in range(6)])
    torch.testing.assert_close(batched, extra_pad)
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)


def test_output_is_bounded_and_shaped():
    model = RNNRegressor(VOCAB, embed_dim=8, hidden=8)
    model.set_output_mean(9.99)
    with torch.no_grad():
        model.head.weight.fill_(5.0)
        out = model(*toy_batch(5)[:2])
    assert out.shape == (5,)
    assert torch.all((out >= 0) & (out <= 10))


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_packed_and_padded_runs_agree(pooling):
    # The default padded path is exact (causal forward, length-wise reversed backward), like packing.
    torch.manual_seed(2)
    model = RNNRegressor(
        VOCAB, embed_dim=8, cell="gru", bidirectional=True, hidden=8, layers=2, pooling=pooling
    )
    model.eval()
    tokens, lengths, _ = toy_batch(8)
    with torch.no_grad():
        torch.testing.assert_close(
            model(tokens, lengths), model(tokens, lengths, pack=True), rtol=1e-5, atol=1e-5
        )


def test_reverse_index_reverses_within_length_and_is_an_involution():
    from seqlab.models.rnn import _gather_time, _reverse_index

    idx = _reverse_index(torch.tensor([3, 1, 4]), 4)
    assert idx.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]
    x = torch.randn(3, 4, 2)
    torch.testing.assert_close(_gather_time(_gather_time(x, idx), idx), x)


def test_config_round_trip_and_names():
    cfg = RNNConfig(vocab_size=50, cell="lstm", bidirectional=True, layers=3, pooling="max")
    model = RNNRegressor.from_config(cfg)
    assert model.config == cfg
    assert len(model.fwd) == len(model.bwd) == 3 and all(isinstance(m, torch.nn.LSTM) for m in model.fwd)
    assert model.fwd[1].input_size == 2 * cfg.hidden  # layer 2 reads both directions of layer 1
    uni = RNNRegressor(vocab_size=50, cell="rnn", layers=2)
    assert isinstance(uni.rnn, torch.nn.RNN) and uni.rnn.num_layers == 2 and not uni.rnn.bidirectional
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    assert [architecture_name(c, b) for c in ("rnn", "gru", "lstm") for b in (False, True)] == [
        "RNN",
        "BiRNN",
        "GRU",
        "BiGRU",
        "LSTM",
        "BiLSTM",
    ]
    with pytest.raises(ValueError, match="cell"):
        RNNRegressor(10, cell="transformer")
