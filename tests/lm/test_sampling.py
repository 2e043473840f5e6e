"""The next-token rules on hand-made scores (no model): repetition penalty, top-k/top-p, a degenerate row."""

from __future__ import annotations

import torch

from seqlab.lm.sampling import apply_repetition_penalty, choose_tokens, filter_top_k, filter_top_p


def test_repetition_penalty_rule():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    history = torch.tensor([[0, 1, 1]])
    out = apply_repetition_penalty(logits, history, 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0, 0.5]]  # seen: positive halved, negative doubled
    assert apply_repetition_penalty(logits, history, 1.0) is logits


def test_filters_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_top_k(logits, 2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_top_p(logits, 0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_top_p(logits, 0.81)).tolist() == [[False, False, False, True]]
    assert torch.isinf(filter_top_p(logits, 0.1)).tolist() == [[False, True, True, True]]
    assert torch.equal(filter_top_p(logits, 1.0), logits)


def test_a_degenerate_row_falls_back_to_its_argmax_and_the_others_still_sample():
    scores = torch.tensor([[float("nan"), 1.0, 3.0], [float("-inf")] * 3, [0.0, 0.0, 50.0]])
    picked = choose_tokens(scores, greedy=False, generator=torch.Generator().manual_seed(0))
    assert picked[2].item() == 2 and picked.shape == (3,)
    assert 0 <= picked[0].item() < 3 and 0 <= picked[1].item() < 3
    assert filter_top_p(torch.tensor([[2.0, 1.0, 0.0]]), 0.0).isfinite().sum() == 1  # p=0 keeps the top one
