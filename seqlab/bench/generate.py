"""``seqlab bench generate``: new tokens/s and time to first token, KV cache on vs off.

The same model, prompt and greedy decoding run three ways in one process: our loop with the KV cache,
our loop re-running the whole prefix every step (no cache; the baseline), and ``transformers``'
``generate`` with its cache (a reference for our loop's overhead). Time to first token = prompt forward
pass + first pick; new tokens/s = new tokens / total time. Each figure is the median of ``--repeats``.
Without ``--model`` the model is the offline default shape (``FinetuneJobConfig`` defaults: 4 layers,
256 wide, 8000-token vocabulary) with random weights — speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import statistics
import time

from seqlab.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="model/ dir from 'seqlab finetune' (default: see above)"
    )
    parser.add_argument("--prompt-tokens", type=int, default=32, help="prompt length in tokens")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens generated per run")
    parser.add_argument("--batch", type=int, default=1, help="candidates decoded together")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")


def _default_model():
    from transformers import GPT2LMHeadModel

    from seqlab.lm.config import FinetuneJobConfig
    from seqlab.lm.model import ModelSpec, init_model, small_gpt2_config

    cfg = FinetuneJobConfig()
    gpt2 = small_gpt2_config(cfg.model, vocab_size=cfg.model.vocab_size, eos_token_id=0)
    model: GPT2LMHeadModel = init_model(ModelSpec(gpt2_config=gpt2.to_dict()))
    return model


def run(args: argparse.Namespace) -> int:
    import torch

    from seqlab.lm.config import DecodingConfig
    from seqlab.lm.generate import iter_token_ids
    from seqlab.lm.model import count_parameters

    torch.set_num_threads(args.threads)
    if args.model:
        from seqlab.lm.generator import load_model_and_tokenizer

        try:
            model, _ = load_model_and_tokenizer(args.model, device=args.device)
        except (FileNotFoundError, ValueError) as exc:  # a scorer dir, a missing or broken model
            raise ConfigError(f"--model: {exc}") from None
    else:
        model = _default_model().to(args.device).eval()
    context = model.config.n_positions
    if args.prompt_tokens + args.new_tokens > context:
        raise ConfigError(
            f"--prompt-tokens {args.prompt_tokens} + --new-tokens {args.new_tokens} must fit the model's "
            f"context of {context}"
        )
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(1, model.config.vocab_size, (args.batch, args.prompt_tokens), generator=gen)
    prompt = prompt.to(args.device)
    opts = DecodingConfig(strategy="greedy", max_new_tokens=args.new_tokens, stop_at_eos=False)

    def ours(use_cache: bool) -> tuple[float, float]:
        o = opts.replace(use_cache=use_cache, num_candidates=args.batch)
        start = time.perf_counter()
        first = None
        for _ in iter_token_ids(model, prompt, o):
            if first is None:
                first = time.perf_counter() - start
        return first or 0.0, time.perf_counter() - start

    def reference() -> tuple[float, float]:
        mask = torch.ones_like(prompt)
        kw = {"do_sample": False, "pad_token_id": 0, "attention_mask": mask}
        start = time.perf_counter()
        model.generate(prompt, max_new_tokens=1, min_new_tokens=1, **kw)
        first = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(prompt, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, **kw)
        return first, time.perf_counter() - start

    variants = {
        "seqlab, KV cache": lambda: ours(True),
        "seqlab, no cache (baseline)": lambda: ours(False),
        "transformers.generate, cache": reference,
    }
    with torch.inference_mode():
        ours(True)  # warm-up: first-call allocations and lazy init
        results = {}
        for name, fn in variants.items():
            runs = [fn() for _ in range(args.repeats)]
            ttft = statistics.median(r[0] for r in runs)
            total = statistics.median(r[1] for r in runs)
            results[name] = (ttft, args.batch * args.new_tokens / total)

    n = count_parameters(model)
    print(
        f"model: {n / 1e6:.2f}M parameters, {model.config.n_layer} layers, context {context}; "
        f"prompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens x batch {args.batch}, "
        f"greedy, {args.threads} thread(s) on {args.device}, median of {args.repeats}"
    )
    print(f"{'variant':32} {'time to first token':>20} {'new tokens/s':>14}")
    for name, (ttft, tps) in results.items():
        print(f"{name:32} {ttft * 1000:17.1f} ms {tps:14.1f}")
    cached, base = results["seqlab, KV cache"][1], results["seqlab, no cache (baseline)"][1]
    ref = results["transformers.generate, cache"][1]
    print(
        f"KV cache speed-up: {cached / base:.2f}x new tokens/s; seqlab loop vs transformers: {cached / ref:.2f}x"
    )
    return 0
