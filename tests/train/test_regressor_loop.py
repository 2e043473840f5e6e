import math

import numpy as np
import pytest
import torch

from seqlab.models import RNNConfig
from seqlab.train import (
    TrainConfig,
    TrainState,
    bucketed_batches,
    collate,
    random_batches,
    regression_metrics,
    resolve_device,
    train_regressor,
)

SMALL = dict(embed_dim=8, hidden=8, cell="gru")


def test_metrics_match_hand_computed_values():
    y = [1.0, 2.0, 3.0, 4.0]
    p = [1.5, 2.0, 2.0, 5.0]
    m = regression_metrics(y, p, prefix="test_")
    # errors 0.5, 0, -1, 1 -> MAE 2.5/4, MSE 2.25/4; SS_tot = 5 -> R² = 1 - 2.25/5
    assert m["test_mae"] == pytest.approx(0.625)
    assert m["test_rmse"] == pytest.approx(math.sqrt(0.5625))
    assert m["test_r2"] == pytest.approx(0.55)
    assert math.isnan(regression_metrics([2.0, 2.0], [1.0, 3.0])["r2"])
    with pytest.raises(ValueError):
        regression_metrics([1.0], [1.0, 2.0])


def test_bucketed_batches_cover_every_document_once_with_less_padding(tiny_data):
    lengths = tiny_data.train.lengths
    rng = np.random.default_rng(0)
    buckets = bucketed_batches(lengths, 8, rng, chunk_batches=4)
    assert sorted(np.concatenate(buckets).tolist()) == list(range(len(lengths)))
    plain = random_batches(len(lengths), 8, np.random.default_rng(0))

    def padded(batches):
        return sum(len(b) * lengths[b].max() for b in batches)

    assert padded(buckets) < 0.8 * padded(plain)
    again = bucketed_batches(lengths, 8, np.random.default_rng(0), chunk_batches=4)
    assert all(np.array_equal(a, b) for a, b in zip(buckets, again, strict=True))


def test_collate_pads_right_with_zeros(tiny_data):
    split = tiny_data.train
    idx = np.array([3, 0, 5])
    tokens, lengths, target = collate(split, idx)
    assert tokens.shape == (3, int(split.lengths[idx].max())) and tokens.dtype == torch.long
    for row, i in enumerate(idx):
        n = split.lengths[i]
        assert lengths[row] == n
        assert tokens[row, :n].tolist() == split.ids[split.offsets[i] : split.offsets[i + 1]].tolist()
        assert not tokens[row, n:].any()
    assert target.tolist() == pytest.approx(split.scores[idx].tolist())
    assert collate(split, idx, pad_to=40)[0].shape == (3, 40)


def test_training_improves_and_is_reproducible(tiny_data):
    cfg = RNNConfig(vocab_size=20, **SMALL)
    train = TrainConfig(max_epochs=4, lr=1e-2, batch_size=16, patience=0)
    seen = []
    a = train_regressor(cfg, train, tiny_data, on_epoch=lambda m, s: seen.append((m, s.epoch)))
    b = train_regressor(cfg, train, tiny_data)
    assert [e for _, e in seen] == [1, 2, 3, 4]
    assert {"train_loss", "val_rmse", "val_r2", "best_val_rmse", "samples_per_s"} <= set(seen[0][0])
    assert a.history[-1]["val_rmse"] < a.history[0]["val_rmse"]
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert a.metrics["test_rmse"] == b.metrics["test_rmse"] and "val_r2" in a.metrics
    # The returned model carries the best epoch's weights: its val RMSE is the best one seen.
    assert a.metrics["val_rmse"] == pytest.approx(min(h["val_rmse"] for h in a.history), rel=1e-5)


def test_resume_from_saved_state_matches_an_uninterrupted_run(tiny_data, tmp_path):
    cfg = RNNConfig(vocab_size=20, dropout=0.3, **SMALL)
    train = TrainConfig(
        max_epochs=4, lr=1e-2, batch_size=16, patience=0, optimizer="adamw", weight_decay=0.01
    )
    full = train_regressor(cfg, train, tiny_data, final_eval=False)

    def save_at_2(metrics, state):
        if state.epoch == 2:
            state.save(tmp_path)

    train_regressor(cfg, train.model_copy(update={"max_epochs": 2}), tiny_data, on_epoch=save_at_2)
    resumed = train_regressor(cfg, train, tiny_data, resume=TrainState.load(tmp_path), final_eval=False)
    assert [h["val_loss"] for h in resumed.history] == pytest.approx([h["val_loss"] for h in full.history])
    assert len(resumed.history) == 4


def test_early_stopping_stops_after_patience(tiny_data):
    cfg = RNNConfig(vocab_size=20, **SMALL)
    train = TrainConfig(max_epochs=20, lr=1e-7, patience=2, min_delta=0.5)  # no epoch can improve by 0.5
    result = train_regressor(cfg, train, tiny_data)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1
    # The lr halves after every epoch without improvement (ReduceLROnPlateau, lr_decay=0.5).
    assert [h["current_lr"] for h in result.history] == pytest.approx([1e-7, 5e-8, 2.5e-8])


def test_device_selection():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def test_vocab_mismatch_is_an_error(tiny_data):
    with pytest.raises(ValueError, match="vocab_size"):
        train_regressor(RNNConfig(vocab_size=99), TrainConfig(max_epochs=1), tiny_data)


@pytest.mark.gpu
def test_gpu_training_matches_cpu_closely(tiny_data):
    cfg = RNNConfig(
        vocab_size=20, cell="lstm", bidirectional=True, pooling="attention", embed_dim=8, hidden=8
    )
    train = TrainConfig(max_epochs=2, lr=1e-2, batch_size=16, patience=0)
    cpu = train_regressor(cfg, train.model_copy(update={"device": "cpu"}), tiny_data)
    gpu = train_regressor(cfg, train.model_copy(update={"device": "cuda"}), tiny_data)
    assert next(gpu.model.parameters()).is_cuda
    assert gpu.metrics["val_rmse"] == pytest.approx(cpu.metrics["val_rmse"], rel=5e-2)
