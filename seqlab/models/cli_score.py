"""``seqlab score --model DIR TEXT...`` / ``--input FILE``: relevance scores from a scorer artifact.

The texts are raw: the scorer applies the normalization it was trained with (recorded in its artifact),
so a text scores the same here, in training and over HTTP. Inputs: texts on the command line, or a file
(plain text: one document per line; JSONL: the ``--field`` of each object; Parquet: the ``--column``),
``-`` for stdin. Output: ``score<TAB>text`` lines for texts, the input with a ``score`` field/column added
for JSONL and Parquet (``--out-field``), to stdout or ``--out FILE``.

Examples::

    seqlab score --model runs/demo/tune/best "يعتمد الذكاء الاصطناعي على البيانات" "وصفة سهلة للكعك"
    seqlab score --model runs/demo/tune/best --input docs.jsonl --field body --out scored.jsonl
    cat docs.txt | seqlab score --model runs/demo/tune/best --input - --scores-only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seqlab.text.cli_normalize import (
    FORMATS,
    InputError,
    check_input_file,
    check_text,
    detect_format,
    output_path,
    read_lines,
    text_output,
)

BATCH = 256  # texts per predict() call


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to score (or use --input)")
    parser.add_argument("--model", required=True, help="scorer artifact: seqlab tune's OUT/best directory")
    parser.add_argument("--input", help="file of texts (text/JSONL/Parquet by extension); '-' reads stdin")
    parser.add_argument("--format", choices=["auto", *FORMATS], default="auto", help="input format")
    parser.add_argument("--field", default="text", help="JSONL field holding the text (default: text)")
    parser.add_argument("--column", default="text", help="Parquet column holding the text (default: text)")
    parser.add_argument(
        "--out-field", default="score", help="field/column the score goes to (default: score)"
    )
    parser.add_argument("-o", "--out", help="output file (default, or '-': stdout)")
    parser.add_argument("--scores-only", action="store_true", help="print only the scores, one per line")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default: cpu)")


def _fail(message: str) -> int:
    print(f"seqlab score: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if bool(args.texts) == bool(args.input):
        return _fail("give texts on the command line or --input FILE (one of the two)")
    args.out = output_path(args.out)
    if args.input and args.input != "-":
        try:
            check_input_file(args.input)
        except InputError as exc:
            return _fail(str(exc))
    model_dir = Path(args.model)
    if not model_dir.is_dir():
        return _fail(f"model directory {args.model} does not exist")
    from seqlab.artifacts import artifact_stage

    stage = artifact_stage(model_dir)
    if stage not in (None, "scorer"):
        return _fail(f"{args.model} holds a {stage!r} artifact, not a scorer (use seqlab tune's OUT/best)")
    try:
        from seqlab.models import load_scorer

        scorer = load_scorer(str(model_dir), device=args.device)
    except (FileNotFoundError, ValueError, OSError, RuntimeError) as exc:
        return _fail(str(exc))
    try:
        if args.texts:
            for i, text in enumerate(args.texts, 1):
                check_text(text, f"TEXT {i}")
            _write_texts(args, args.texts, _predict(scorer, args.texts))
        else:
            _score_file(args, scorer)
    except InputError as exc:
        return _fail(str(exc))
    except OSError as exc:  # -o is a directory, under a file, or on a read-only place
        return _fail(f"cannot write {args.out}: {exc.strerror or exc}" if args.out else str(exc))
    return 0


def _predict(scorer, texts: list[str]) -> list[float]:
    scores: list[float] = []
    for start in range(0, len(texts), BATCH):
        scores.extend(scorer.predict(texts[start : start + BATCH]))
    flagged = [i for i, no in enumerate(scorer.no_arabic(texts)) if no]
    if flagged:
        shown = ", ".join(str(i + 1) for i in flagged[:5]) + (" ..." if len(flagged) > 5 else "")
        print(
            f"seqlab score: warning: {len(flagged)} text(s) have no Arabic letters (input {shown}); "
            "their scores say nothing about their content",
            file=sys.stderr,
        )
    return scores


def _write_texts(args: argparse.Namespace, texts: list[str], scores: list[float]) -> None:
    with text_output(args.out) as out:
        for text, score in zip(texts, scores, strict=True):
            out.write(f"{score:.3f}\n" if args.scores_only else f"{score:.3f}\t{text}\n")


def _score_file(args: argparse.Namespace, scorer) -> None:
    use_stdin = args.input == "-"
    sources = [] if use_stdin else [args.input]
    fmt = detect_format(args.format, sources)
    if fmt == "parquet":
        _score_parquet(args, scorer, use_stdin)
        return
    rows = list(read_lines(sources, use_stdin))
    if fmt == "text":
        texts = [line for _, _, line in rows]
        _write_texts(args, texts, _predict(scorer, texts))
        return
    records = []
    for source, line_no, line in rows:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}:{line_no}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get(args.field), str):
            raise InputError(
                f"{source}:{line_no}: expected an object with a string field {args.field!r} (see --field)"
            )
        check_text(record[args.field], f"{source}:{line_no}: field {args.field!r}")
        records.append(record)
    scores = _predict(scorer, [r[args.field] for r in records])
    with text_output(args.out) as out:
        for record, score in zip(records, scores, strict=True):
            if args.scores_only:
                out.write(f"{score:.3f}\n")
            else:
                out.write(json.dumps({**record, args.out_field: score}, ensure_ascii=False) + "\n")


def _score_parquet(args: argparse.Namespace, scorer, use_stdin: bool) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(sys.stdin.buffer.read()) if use_stdin else args.input)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read Parquet: {exc}") from None
    if args.column not in table.column_names:
        raise InputError(f"no column {args.column!r} in the Parquet input (columns: {table.column_names})")
    texts = ["" if v is None else str(v) for v in table.column(args.column).to_pylist()]
    scores = _predict(scorer, texts)
    if args.scores_only:
        _write_texts(args, texts, scores)
        return
    table = table.append_column(args.out_field, pa.array(scores, pa.float64()))
    if args.out is None:
        if sys.stdout.isatty():
            raise InputError("refusing to write Parquet to a terminal; pass --out FILE or redirect stdout")
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        sys.stdout.buffer.write(sink.getvalue().to_pybytes())
        sys.stdout.buffer.flush()
        return
    from seqlab.artifacts import atomic_write_bytes

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(args.out, sink.getvalue().to_pybytes())
