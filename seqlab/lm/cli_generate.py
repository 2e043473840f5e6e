"""``seqlab generate --model DIR --prompt TEXT [decoding options]``: generated text to stdout.

The decoding flags are made from :class:`seqlab.lm.config.DecodingParams` (``--top-k`` for ``top_k``...),
so their defaults, help and validation are the ones the report and the HTTP API use.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from seqlab.config import ConfigError, validate_config
from seqlab.lm.config import DecodingParams
from seqlab.text.cli_normalize import InputError, check_text


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model/ directory written by 'seqlab finetune'")
    parser.add_argument("--prompt", default="", help="text to continue ('-' reads stdin; empty: start fresh)")
    decoding = parser.add_argument_group("decoding (seqlab.lm.config.DecodingParams)")
    for name, field in DecodingParams.model_fields.items():
        annotation = field.annotation
        choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else None
        kind = {int: int, float: float}.get(annotation, int if name == "seed" else str)
        decoding.add_argument(
            _flag(name),
            dest=name,
            type=kind,
            choices=choices,
            default=None,
            help=f"{field.description} (default: {field.default})",
        )
    parser.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    parser.add_argument("--no-prompt", action="store_true", help="print only the continuation")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")


def decoding_from_args(args: argparse.Namespace) -> DecodingParams:
    """The flags given, validated as :class:`DecodingParams` (the error names the field)."""
    given = {k: getattr(args, k) for k in DecodingParams.model_fields if getattr(args, k, None) is not None}
    return validate_config(DecodingParams, given, "flags")


def run(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"seqlab generate: {message}", file=sys.stderr)
        return 2

    if not Path(args.model).expanduser().is_dir():
        return fail(f"model directory {args.model} does not exist")
    if args.prompt == "-":
        try:
            prompt = (
                sys.stdin.buffer.read().decode("utf-8") if hasattr(sys.stdin, "buffer") else sys.stdin.read()
            )
        except UnicodeDecodeError as exc:
            return fail(f"the prompt on stdin is not valid UTF-8 (byte {exc.start + 1})")
    else:
        prompt = args.prompt
    try:
        check_text(prompt, "--prompt")
    except InputError as exc:
        return fail(str(exc))
    try:
        params = decoding_from_args(args)
    except ConfigError as exc:
        return fail(str(exc))
    if args.stream and params.num_candidates != 1:
        return fail("--stream prints one candidate; use --num-candidates 1")

    from seqlab.lm.generator import load_generator

    try:
        generator = load_generator(args.model, device=args.device)
        _, truncated = generator.encode(prompt, params.max_new_tokens)
        if truncated:
            print(
                f"seqlab generate: the prompt is longer than the model's context allows "
                f"({generator.context_length} tokens incl. {params.max_new_tokens} new); its start was cut",
                file=sys.stderr,
            )
        head = "" if args.no_prompt else prompt
        if args.stream:
            sys.stdout.write(head)
            sys.stdout.flush()
            for piece in generator.stream(prompt, params):
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            return 0
        for i, candidate in enumerate(generator.generate(prompt, params)):
            if i:
                print()
            print(head + candidate.text)
    except (ValueError, FileNotFoundError, OSError) as exc:
        return fail(str(exc))
    return 0
