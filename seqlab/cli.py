"""``seqlab <verb>``: one verb, one function.

Each verb lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; this file
only routes. Verb modules are imported only when their verb is used, so ``seqlab --help`` stays fast and
``seqlab normalize`` never imports torch or Ray.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from pydantic import ValidationError

from seqlab import interrupts, logs
from seqlab.config import ConfigError, format_validation_error
from seqlab.ray_utils import RayUnavailable

# verb -> (module, one-line help). The module provides add_arguments(parser) and run(args) -> int.
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("seqlab.demo", "run the whole pipeline on the bundled data on a local Ray"),
    "normalize": (
        "seqlab.text.cli_normalize",
        "normalize Arabic text from text/JSONL/Parquet files or stdin",
    ),
    "corpus": ("seqlab.synth.cli_corpus", "generate the bundled labeled corpus (any size, any seed)"),
    "site": ("seqlab.synth.cli_site", "serve the generated corpus as a local website on loopback"),
    "scrape": ("seqlab.data.cli_scrape", "scrape Arabic sites into a Parquet corpus (Ray Data)"),
    "tune": ("seqlab.tune.cli_tune", "search RNN scorers with Ray Tune + Optuna + ASHA"),
    "finetune": ("seqlab.lm.cli_finetune", "fine-tune or train GPT-2 with Ray Train"),
    "score": ("seqlab.models.cli_score", "score texts with a scorer artifact (its own normalization)"),
    "generate": ("seqlab.lm.cli_generate", "generate Arabic text from a trained GPT-2 directory"),
    "serve": ("seqlab.serve.cli_serve", "serve the scorer and the generator over HTTP (Ray Serve)"),
    "pipeline": (
        "seqlab.pipeline",
        "scrape -> tune -> finetune -> deploy, skipping stages that are up to date",
    ),
    "deploy": (
        "seqlab.serve.cli_deploy",
        "start or update the Serve app on a running Ray cluster, then return",
    ),
    "bench": ("seqlab.bench.cli_bench", "benchmarks that print ratios against a same-run baseline"),
}


# Options that name a file or directory: an empty value is always a mistake (`--out=` would otherwise write
# into the working directory), and "-" means stdout only where the output is a stream (STREAM_OUT_VERBS).
PATH_OPTIONS = (
    "out",
    "data",
    "model",
    "resume",
    "sources",
    "labels",
    "input",
    "scorer",
    "generator",
    "config",
)
STREAM_OUT_VERBS = frozenset({"normalize", "score"})


def check_paths(verb: str, args: argparse.Namespace) -> str | None:
    """The one-line error for a path option that cannot be meant, or None."""
    for dest in PATH_OPTIONS:
        value = getattr(args, dest, None)
        flag = "--" + dest.replace("_", "-")
        if isinstance(value, str) and not value.strip():
            return f"{flag} is empty: give a path"
        if dest == "out" and value == "-" and verb not in STREAM_OUT_VERBS:
            return f"--out - means stdout, but seqlab {verb} writes a directory: give a directory path"
    return None


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqlab",
        description="Arabic web text -> normalized Parquet corpus -> RNN scorer and GPT-2 generator, on Ray.",
        epilog="Run 'seqlab <verb> --help' for a verb's options.",
    )
    parser.add_argument("--version", action="version", version=f"seqlab {_version()}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    for verb, (_, help_text) in VERBS.items():
        sub.add_parser(verb, help=help_text, add_help=False)
    return parser


def _version() -> str:
    from seqlab import __version__

    return __version__


def build_verb_parser(verb: str) -> tuple[argparse.ArgumentParser, object]:
    """The full parser of one verb and its module."""
    module_name, help_text = VERBS[verb]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"seqlab {verb}", description=help_text)
    module.add_arguments(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logs.configure()
    if not argv or argv[0] not in VERBS:
        parser = _top_parser()
        if not argv:
            parser.print_help(sys.stderr)  # a usage error: help goes where errors go
            return 2
        parser.parse_args(argv)  # handles --help/--version, errors on an unknown verb
        return 2
    verb_parser, module = build_verb_parser(argv[0])
    args, unknown = verb_parser.parse_known_args(argv[1:])
    overrides = [u for u in unknown if u.startswith("--") and "=" in u]
    rest = [u for u in unknown if u not in overrides]
    if rest:
        verb_parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if overrides and not hasattr(args, "overrides"):
        verb_parser.error(
            f"'seqlab {argv[0]}' takes no --section.field=value overrides: {' '.join(overrides)}"
        )
    if hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *overrides]
    if (bad_path := check_paths(argv[0], args)) is not None:
        print(f"seqlab {argv[0]}: {bad_path}", file=sys.stderr)
        return 2
    interrupts.reset()
    interrupts.sigterm_as_interrupt()  # `kill PID` stops a command as cleanly as Ctrl+C
    try:
        return int(module.run(args) or 0)
    except ConfigError as exc:
        print(f"seqlab {argv[0]}: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a flag assigned onto a validated config (validate_assignment)
        print(f"seqlab {argv[0]}: {format_validation_error(exc, 'flags')}", file=sys.stderr)
        return 2
    except RayUnavailable as exc:
        print(f"seqlab {argv[0]}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        message = str(exc) if isinstance(exc, interrupts.Interrupted) else "interrupted"
        if isinstance(exc, interrupts.Interrupted) and not exc.resume:
            message += f"; run the same command again to resume: {shlex.join(['seqlab', *argv])}"
        print(f"seqlab {argv[0]}: {message}", file=sys.stderr)
        return interrupts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
