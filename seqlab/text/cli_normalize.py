"""``seqlab normalize``: normalize Arabic text files (or stdin) into the same format.

Formats: plain text (one document per line), JSONL (the ``--field`` of each object) and Parquet (the
``--column`` of the table), chosen from the file extension or ``--format``. By default the text is
replaced in place; ``--out-field`` writes it to another field/column instead. ``--tokens`` writes
``preprocess()`` tokens joined by spaces.

Switches: ``--config FILE.yaml`` (a :class:`~seqlab.text.config.NormalizeConfig`), dotted overrides
(``--teh_marbuta=true``) and flags (``--teh-marbuta``, ``--no-stem``), applied in that order.

Examples::

    echo "ذَهَبَ الطّالِبُ إلى المَكتبةِ" | seqlab normalize
    seqlab normalize corpus.jsonl --field body --out norm.jsonl --teh-marbuta
    seqlab normalize pages.parquet --column text --out-field text_norm --out pages_norm.parquet
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from seqlab.artifacts import atomic_output
from seqlab.config import add_config_arguments, load_config
from seqlab.text.config import SWITCHES, NormalizeConfig

FORMATS = ("text", "jsonl", "parquet")
_EXTENSIONS = {".txt": "text", ".text": "text", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_EXTENSIONS |= {".parquet": "parquet", ".pq": "parquet"}


class InputError(ValueError):
    """Bad input (missing file, unknown format, missing column...); the message says which."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="FILE", help="input files; none or '-' reads stdin")
    parser.add_argument("-o", "--out", help="output file in the input's format (default, or '-': stdout)")
    parser.add_argument(
        "--format",
        choices=("auto", *FORMATS),
        default="auto",
        help="input format (default: from extension; stdin: text)",
    )
    parser.add_argument("--field", default="text", help="JSONL field holding the text (default: text)")
    parser.add_argument("--column", default="text", help="Parquet column holding the text (default: text)")
    parser.add_argument(
        "--out-field",
        help="JSONL field / Parquet column for the result (default: overwrite --field/--column)",
    )
    parser.add_argument("--tokens", action="store_true", help="write preprocess() tokens joined by spaces")
    add_config_arguments(parser)
    switches = parser.add_argument_group("switches (after --config and overrides)")
    for name in SWITCHES:
        field = NormalizeConfig.model_fields[name]
        flag = name.replace("_", "-")
        if field.default:
            switches.add_argument(
                f"--no-{flag}",
                dest=f"switch_{name}",
                action="store_false",
                default=None,
                help=f"do not {field.description}",
            )
        else:
            switches.add_argument(
                f"--{flag}", dest=f"switch_{name}", action="store_true", default=None, help=field.description
            )


def run(args: argparse.Namespace) -> int:
    args.out = output_path(args.out)  # "-" is stdout, as no --out is
    cfg = load_config(NormalizeConfig, args.config, args.overrides)
    flags = {name: value for name in SWITCHES if (value := getattr(args, f"switch_{name}", None)) is not None}
    if flags:
        cfg = NormalizeConfig.model_validate({**cfg.model_dump(), **flags})
    try:
        convert(args, cfg)
    except InputError as exc:
        print(f"seqlab normalize: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output: a directory, an unwritable place, a full disk...
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"seqlab normalize: cannot write {args.out or 'stdout'}: {where}{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    return 0


def output_path(out: str | None) -> str | None:
    """``--out`` as a path, or None for stdout (no ``--out``, or ``-``)."""
    return None if out in (None, "-") else out


def check_input_file(path: str) -> None:
    """InputError naming what ``path`` is when it is not a readable file."""
    if not Path(path).is_file():
        what = "is a directory; give the files in it" if Path(path).is_dir() else "no such file"
        raise InputError(f"{path}: {what}")


def convert(args: argparse.Namespace, cfg: NormalizeConfig) -> None:
    """Read ``args.inputs`` (or stdin), transform the text, write ``args.out`` (or stdout)."""
    from seqlab.text import normalize, normalize_batch, preprocess

    sources = [s for s in args.inputs if s != "-"]
    use_stdin = not args.inputs or "-" in args.inputs
    if use_stdin and sources:
        raise InputError("read either files or stdin ('-'), not both")
    for path in sources:
        check_input_file(path)
    fmt = detect_format(args.format, sources)

    def fn(text: str) -> str:
        return " ".join(preprocess(text, cfg)) if args.tokens else normalize(text, cfg)

    if fmt == "parquet":
        out_column = args.out_field or args.column

        def normalize_column(table: Any) -> Any:  # the whole column's UTF-8 at once, no str per row
            return normalize_batch(table, column=args.column, out_column=out_column, config=cfg)

        whole = None if args.tokens else normalize_column
        _convert_parquet(sources, use_stdin, args.column, out_column, args.out, fn, whole)
        return
    with text_output(args.out) as out:
        for source, line_no, line in read_lines(sources, use_stdin):
            if fmt == "text":
                out.write(fn(line) + "\n")
            else:
                out.write(_jsonl_line(source, line_no, line, args.field, args.out_field or args.field, fn))


def detect_format(requested: str, sources: list[str]) -> str:
    if requested != "auto":
        return requested
    if not sources:
        return "text"
    found = set()
    for path in sources:
        suffix = Path(path).suffix.lower()
        if suffix not in _EXTENSIONS:
            raise InputError(
                f"{path}: cannot tell the format from {suffix or 'no extension'!r}; "
                f"pass --format {'|'.join(FORMATS)} (known extensions: {', '.join(sorted(_EXTENSIONS))})"
            )
        found.add(_EXTENSIONS[suffix])
    if len(found) > 1:
        raise InputError(f"inputs mix formats {sorted(found)}; convert one format per run")
    return found.pop()


def read_lines(sources: list[str], use_stdin: bool) -> Iterator[tuple[str, int, str]]:
    """(source name, 1-based line number, line without its newline) for every input line."""
    if use_stdin:
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # a text stream (tests, embedding): already decoded
            for line_no, line in enumerate(sys.stdin, 1):
                yield "<stdin>", line_no, line.rstrip("\r\n")
            return
        yield from _numbered("<stdin>", stdin)
        return
    for path in sources:
        with open(path, "rb") as fh:
            yield from _numbered(path, fh)


def _numbered(name: str, lines: Iterable[bytes]) -> Iterator[tuple[str, int, str]]:
    """Decode line by line, so an invalid byte is reported on the line that holds it."""
    for line_no, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{name}:{line_no}: not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
            ) from None
        yield name, line_no, line.rstrip("\n").removesuffix("\r")


def check_text(value: str, where: str) -> None:
    """InputError unless ``value`` encodes as UTF-8: a lone surrogate comes from undecodable argv bytes
    (Python's surrogateescape) or a JSON ``\\ud800`` escape, and would crash a tokenizer or a writer."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{where} holds an unpaired surrogate (\\u{ord(value[exc.start]):04x}), which is not valid UTF-8 text"
        ) from None


def _jsonl_line(
    source: str, line_no: int, line: str, field: str, out_field: str, fn: Callable[[str], str]
) -> str:
    if not line.strip():
        return ""  # blank lines carry no record
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}:{line_no}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise InputError(f"{source}:{line_no}: expected a JSON object, got {type(record).__name__}")
    if field not in record:
        raise InputError(f"{source}:{line_no}: no field {field!r} (fields: {sorted(record)}); see --field")
    value = record[field]
    if value is not None and not isinstance(value, str):
        raise InputError(f"{source}:{line_no}: field {field!r} is {type(value).__name__}, expected a string")
    if value is not None:
        check_text(value, f"{source}:{line_no}: field {field!r}")
    record[out_field] = None if value is None else fn(value)
    return json.dumps(record, ensure_ascii=False) + "\n"


@contextmanager
def text_output(path: str | None) -> Iterator[TextIO]:
    """Stdout, or ``path`` through :func:`seqlab.artifacts.atomic_output` (never a half file)."""
    if path is None:
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(encoding="utf-8")
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_output(path, "w", encoding="utf-8", newline="\n") as fh:
        yield fh


def _convert_parquet(
    sources: list[str],
    use_stdin: bool,
    column: str,
    out_column: str,
    out: str | None,
    fn: Callable[[str], str],
    whole: Callable[[Any], Any] | None = None,
) -> None:
    """Transform ``column`` value by value with ``fn``, or the whole table with ``whole`` when given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if use_stdin:
            tables = [pq.read_table(io.BytesIO(sys.stdin.buffer.read()))]
        else:
            tables = [pq.read_table(path) for path in sources]
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read Parquet: {exc}") from None
    if column not in table.column_names:
        raise InputError(
            f"no column {column!r} in the Parquet input (columns: {table.column_names}); see --column"
        )
    source = table.column(column)
    if not (pa.types.is_string(source.type) or pa.types.is_large_string(source.type)):
        raise InputError(f"column {column!r} is {source.type}, expected a string column")
    if whole is not None:
        table = whole(table)
    else:
        result = pa.array([None if v is None else fn(v) for v in source.to_pylist()], type=source.type)
        if out_column in table.column_names:
            table = table.set_column(table.column_names.index(out_column), out_column, result)
        else:
            table = table.append_column(out_column, result)
    if out is not None:
        with atomic_output(out, "wb") as fh:
            pq.write_table(table, fh)
        return
    if sys.stdout.isatty():
        raise InputError("refusing to write Parquet to a terminal; pass --out FILE or redirect stdout")
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    sys.stdout.flush()
    sys.stdout.buffer.write(sink.getvalue().to_pybytes())
    sys.stdout.buffer.flush()
