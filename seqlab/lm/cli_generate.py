"""``seqlab generate --model DIR --prompt TEXT [decoding options]``: generated text to stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Defaults from the seed's table (temperature 0.7-1.0, top-k 40-100, top-p 0.9-0.95, penalty 1.1-1.3);
# they equal seqlab.lm.generate.DecodingOptions' defaults (not imported here: it would pull in torch).
DEFAULTS = {
    "strategy": "sample",
    "temperature": 0.8,
    "top_k": 50,
    "top_p": 0.92,
    "repetition_penalty": 1.2,
    "max_new_tokens": 64,
    "num_candidates": 1,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("--model", required=True, help="model/ directory written by 'seqlab finetune'")
    parser.add_argument("--prompt", default="", help="text to continue ('-' reads stdin; empty: start fresh)")
    parser.add_argument("--strategy", choices=["greedy", "sample"], default=d["strategy"], help="decoding")
    parser.add_argument("--temperature", type=float, default=d["temperature"], help="sampling temperature")
    parser.add_argument("--top-k", type=int, default=d["top_k"], help="sample among the k best (0: off)")
    parser.add_argument("--top-p", type=float, default=d["top_p"], help="nucleus mass (1.0: off)")
    parser.add_argument("--repetition-penalty", type=float, default=d["repetition_penalty"], help="1.0: off")
    parser.add_argument("--max-new-tokens", type=int, default=d["max_new_tokens"], help="tokens to add")
    parser.add_argument("--num-candidates", type=int, default=d["num_candidates"], help="continuations")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (same seed, same text)")
    parser.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    parser.add_argument("--no-prompt", action="store_true", help="print only the continuation")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")


def run(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"seqlab generate: {message}", file=sys.stderr)
        return 2

    if not Path(args.model).expanduser().is_dir():
        return fail(f"model directory {args.model} does not exist")
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt

    from seqlab.lm.generate import DecodingOptions, generate, load_generator, stream

    try:
        opts = DecodingOptions(
            strategy=args.strategy,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            repetition_penalty=args.repetition_penalty,
            max_new_tokens=args.max_new_tokens,
            num_candidates=args.num_candidates,
            seed=args.seed,
        )
        if args.stream and opts.num_candidates != 1:
            return fail("--stream prints one candidate; use --num-candidates 1")
        model, tokenizer = load_generator(args.model, device=args.device)
    except (ValueError, FileNotFoundError, OSError) as exc:
        return fail(str(exc))
    head = "" if args.no_prompt else prompt
    try:
        if args.stream:
            sys.stdout.write(head)
            sys.stdout.flush()
            for piece in stream(model, tokenizer, prompt, opts):
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            return 0
        for i, text in enumerate(generate(model, tokenizer, prompt, opts)):
            if i:
                print()
            print(head + text)
    except ValueError as exc:
        return fail(str(exc))
    return 0
