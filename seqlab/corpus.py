"""The corpus contract: what a corpus directory holds, and the one way to write and read it.

A corpus directory is what ``seqlab scrape`` and ``seqlab corpus`` write and what ``seqlab tune`` and
``seqlab finetune`` read (local path or any ``pyarrow.fs`` URI)::

    DIR/corpus/          a Parquet dataset, one row per document, columns CORPUS_SCHEMA
    DIR/manifest.json    which stage made it, with which config (seqlab.artifacts)

Columns: ``url`` (after redirects; the label join key), ``title``, ``text`` (extracted), ``text_norm``
(``seqlab.text.normalize`` of it, with the switches the manifest records under ``normalize``), ``score``
(0–10, null when unlabeled), ``split`` (``train``/``val``/``test``, from :mod:`seqlab.data.splits`),
``fetched_at`` (UTC) and ``status`` (``ok``); then what the page states about itself: ``published`` (a
date), ``author``, ``canonical_url`` and ``language`` (``ar``, ``fa``...), each null when unknown. Corpora
written before those four columns existed still read: ask for them through ``optional``.

Pure: pyarrow only (no Ray, no torch). Ray Data readers use :func:`parquet_path`; everything else
reads through :func:`read_corpus`.

Example::

    table = read_corpus("runs/scrape", ["text_norm", "score", "split"])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from seqlab import artifacts

__all__ = [
    "CORPUS_COLUMNS",
    "CORPUS_SCHEMA",
    "METADATA_COLUMNS",
    "SPLITS",
    "check_corpus_dir",
    "corpus_table",
    "open_corpus",
    "parquet_path",
    "read_corpus",
    "write_corpus",
]

CORPUS_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("text_norm", pa.string()),
        ("score", pa.float64()),
        ("split", pa.string()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),
        # What the page says about itself (null when it does not say, and in corpora written before these
        # columns existed): see seqlab.data.extract.
        ("published", pa.date32()),
        ("author", pa.string()),
        ("canonical_url", pa.string()),
        ("language", pa.string()),
    ]
)
CORPUS_COLUMNS = list(CORPUS_SCHEMA.names)
# Columns a corpus may lack: older corpora, and corpora not made from web pages (seqlab corpus).
METADATA_COLUMNS = ("published", "author", "canonical_url", "language")
SPLITS = ("train", "val", "test")  # the values of ``split`` (the rule that assigns them: seqlab.data.splits)
DATASET_DIR = "corpus"


def parquet_path(corpus_dir: str | os.PathLike[str]) -> str:
    """The Parquet dataset inside a corpus directory (for ``ray.data.read_parquet``)."""
    return artifacts.join(corpus_dir, DATASET_DIR)


def corpus_table(columns: Mapping[str, Sequence[Any]] | Any) -> pa.Table:
    """Rows as a table of exactly :data:`CORPUS_SCHEMA` (a dict of columns or a pandas DataFrame); the
    :data:`METADATA_COLUMNS` may be left out (all null).

    Raises:
        ValueError: a column is missing, or a value does not fit its type.
    """
    import pandas as pd

    frame = columns if isinstance(columns, pd.DataFrame) else pd.DataFrame(dict(columns))
    frame = frame.assign(**{c: None for c in METADATA_COLUMNS if c not in frame.columns})
    missing = [c for c in CORPUS_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"corpus rows lack column(s) {missing}; a corpus has {CORPUS_COLUMNS}")
    try:
        return pa.Table.from_pandas(frame[CORPUS_COLUMNS], schema=CORPUS_SCHEMA, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"corpus rows do not fit the corpus schema: {exc}") from None


def write_corpus(corpus_dir: str | os.PathLike[str], table: pa.Table) -> str:
    """Write ``table`` (see :func:`corpus_table`) as ``corpus_dir/corpus/``, replacing it whole.

    The manifest is the caller's (it knows the config); write it after this returns.
    """
    import pyarrow.parquet as pq

    if table.schema != CORPUS_SCHEMA:
        table = table.select(CORPUS_COLUMNS).cast(CORPUS_SCHEMA)
    with artifacts.staged_dir(parquet_path(corpus_dir)) as stage:
        pq.write_table(table, stage / "part-00000.parquet")
    return parquet_path(corpus_dir)


def open_corpus(corpus_dir: str | os.PathLike[str]):
    """The corpus' ``pyarrow.dataset.Dataset`` (local or URI).

    Raises:
        FileNotFoundError: ``corpus_dir`` holds no ``corpus/`` Parquet dataset; the message says what does.
    """
    import pyarrow.dataset as pads
    import pyarrow.fs as pafs

    root = parquet_path(corpus_dir)
    if artifacts.is_uri(root):
        fs, inner = pafs.FileSystem.from_uri(root)
    else:
        fs, inner = None, artifacts.local_path(root)
    try:
        return pads.dataset(inner, filesystem=fs, format="parquet", partitioning="hive")
    except FileNotFoundError:
        raise _not_a_corpus(corpus_dir) from None


def _not_a_corpus(path: str | os.PathLike[str]) -> FileNotFoundError:
    return FileNotFoundError(
        f"no corpus at {path}: it is not a corpus directory (no {DATASET_DIR}/ Parquet dataset in it; "
        "make one with 'seqlab scrape' or 'seqlab corpus')"
    )


def read_corpus(
    corpus_dir: str | os.PathLike[str],
    columns: Sequence[str],
    *,
    optional: Sequence[str] = (),
    max_rows: int | None = None,
) -> pa.Table:
    """``columns`` (and those of ``optional`` it has) of the corpus at ``corpus_dir``.

    Args:
        max_rows: only the dataset's first rows (all splits together), as Ray Data's ``limit`` does.

    Raises:
        FileNotFoundError: no corpus there.
        ValueError: a required column is missing; the message lists the columns the corpus has.
    """
    dataset = open_corpus(corpus_dir)
    names = dataset.schema.names
    missing = [c for c in columns if c not in names]
    if missing:
        # a column the contract does not define (or one of its texts) is a text column someone picked
        picked_text = any(c not in CORPUS_COLUMNS or c in ("text", "text_norm") for c in missing)
        hint = " (pick the text with --data.text_column=...)" if picked_text else ""
        raise ValueError(f"corpus at {corpus_dir} lacks column(s) {missing}; it has {sorted(names)}{hint}")
    wanted = [*columns, *(c for c in optional if c in names and c not in columns)]
    if max_rows is not None:
        return dataset.head(max_rows, columns=wanted)
    return dataset.to_table(columns=wanted)


def check_corpus_dir(path: str) -> str:
    """``path`` as the corpus directory to read: a URI as it is, a local path (``file://`` or not) made
    absolute. Which corpus to read when none is given is not this module's rule: see
    :func:`seqlab.corpus_source.resolve_corpus_dir`.

    Raises:
        FileNotFoundError: ``path`` is a local directory without ``corpus/`` in it.
    """
    if artifacts.is_uri(path):
        return path
    local = Path(artifacts.local_path(path)).expanduser()
    if not (local / DATASET_DIR).exists():
        raise _not_a_corpus(path)
    return str(local.resolve())
