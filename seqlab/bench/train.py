"""``seqlab bench train``: samples/s of the trial training loop vs two baselines, in one process.

1. **seqlab** — :func:`seqlab.train.regressor.train_one_epoch` over length-bucketed batches, exactly what
   every Tune trial runs (collation, transfer, packed RNN, MSE, clipping, optimizer step).
2. **bare** — a bare PyTorch loop over the *same* batches already collated into tensors, same model and
   optimizer: the floor the trial loop's overhead is measured against (goal: overhead <= 5%).
3. **naive** — shuffled batches padded to their longest document (no length grouping), as a first PyTorch
   port of the seed's Keras code would do (goal: seqlab >= 1.5x faster).
4. **packed** — the trial loop's batches run through ``PackedSequence`` instead (why the default is not:
   on CPU packing costs more than the little padding bucketing leaves).

Each round runs one epoch of every variant (interleaved, so machine noise hits all alike); the median
epoch's samples/s is reported. Example::

    seqlab bench train --max-docs 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="corpus directory (default: the bundled corpus)")
    parser.add_argument("--max-docs", type=int, default=1000, help="labeled documents to use (default 1000)")
    parser.add_argument("--cell", default="gru", choices=["rnn", "gru", "lstm"])
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--pooling", default="mean", choices=["last", "mean", "max", "attention"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=256, help="tokens kept per document")
    parser.add_argument("--rounds", type=int, default=5, help="epochs per variant (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a trial uses its CPU count)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--skip-naive", action="store_true", help="only compare against the bare loop")
    parser.add_argument("--seed", type=int, default=0, help="weights seed")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from seqlab.models import RNNConfig, RNNRegressor, TokenizerConfig
    from seqlab.train.data import bucketed_batches, collate, random_batches
    from seqlab.train.regressor import TrainConfig, make_optimizer, resolve_device, train_one_epoch
    from seqlab.tune.data import prepare_data

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    corpus = prepare_data(args.data, TokenizerConfig(max_len=args.max_len), max_docs=args.max_docs)
    split = corpus.encoded.train
    model_cfg = RNNConfig(
        vocab_size=corpus.encoded.vocab_size,
        embed_dim=args.embed_dim,
        cell=args.cell,
        bidirectional=args.bidirectional,
        hidden=args.hidden,
        layers=args.layers,
        pooling=args.pooling,
    )
    train_cfg = TrainConfig(batch_size=args.batch_size)
    print(
        f"data: {len(split)} train docs, lengths median {int(np.median(split.lengths))} / max "
        f"{int(split.lengths.max())} tokens; model: {model_cfg.model_dump()}; device {device}, "
        f"{args.threads} thread(s)"
    )

    def fresh():
        torch.manual_seed(args.seed)
        model = RNNRegressor.from_config(model_cfg).to(device)
        return model, make_optimizer(model, train_cfg)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def bare_epoch(model, optimizer, tensors) -> None:
        model.train()
        for tokens, lengths, target in tensors:
            loss = F.mse_loss(model(tokens, lengths), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            optimizer.step()
        loss.item()

    variants = ["seqlab", "bare"] + ([] if args.skip_naive else ["naive", "packed"])
    state = {name: fresh() for name in variants}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for epoch in range(args.rounds + 1):  # round 0 warms up allocators and kernels; not counted
        rng = np.random.default_rng([0, epoch])
        batches = bucketed_batches(split.lengths, args.batch_size, rng)
        # The bare loop gets the same batches, collated and on the device before its clock starts.
        tensors = [(t.to(device), n, y.to(device)) for t, n, y in (collate(split, b) for b in batches)]
        naive_batches = random_batches(len(split), args.batch_size, np.random.default_rng([1, epoch]))
        runs = {
            "seqlab": lambda m, o, b=batches: train_one_epoch(m, split, b, o, device, train_cfg.grad_clip),
            "bare": lambda m, o, t=tensors: bare_epoch(m, o, t),
            "naive": lambda m, o, b=naive_batches: train_one_epoch(
                m, split, b, o, device, train_cfg.grad_clip
            ),
            "packed": lambda m, o, b=batches: train_one_epoch(
                m, split, b, o, device, train_cfg.grad_clip, pack=True
            ),
        }
        for name in variants:
            sync()
            start = time.perf_counter()
            runs[name](*state[name])
            sync()
            if epoch > 0:
                rates[name].append(len(split) / (time.perf_counter() - start))
        if epoch > 0:
            print(f"round {epoch}: samples/s " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()))

    med = {k: statistics.median(v) for k, v in rates.items()}
    labels = {
        "seqlab": "seqlab trial loop (bucketed, padded)",
        "bare": "bare PyTorch loop (same batches)",
        "naive": "naive (random batches, pad to longest)",
        "packed": "bucketed + PackedSequence",
    }
    print(f"\n{'variant':42s} samples/s   seqlab is")
    for name in variants:
        print(f"{labels[name]:42s} {med[name]:9.1f}   {med['seqlab'] / med[name]:.2f}x")
    overhead = 1 - med["seqlab"] / med["bare"]
    print(f"\noverhead of the trial loop vs bare: {overhead * 100:+.1f}% (goal <= 5%)")
    if "naive" in med:
        print(f"speedup vs naive pad-to-longest: {med['seqlab'] / med['naive']:.2f}x (goal >= 1.5x)")
    return 0
