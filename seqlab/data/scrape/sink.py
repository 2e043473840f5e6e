"""Where crawl records go, and reading back what a :class:`ParquetSink` wrote (for resuming). No network.

A page record follows :data:`PAGE_SCHEMA` and a failure record :data:`FAILURE_SCHEMA`. :func:`load_progress`
and :func:`load_content_hashes` turn a sink's directory back into :func:`~seqlab.data.scrape.crawl`'s
``done_urls``/``frontier``/``content_hashes`` (and :func:`load_ranks` into a focused crawl's ``ranks``);
:func:`latest_failures` gives each URL's newest failure.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from typing import Any, Protocol

import pyarrow as pa

from seqlab.artifacts import join, list_files, read_parquet, write_bytes
from seqlab.data.scrape.failures import failure_reason, is_transient

__all__ = [
    "FAILURE_SCHEMA",
    "PAGE_SCHEMA",
    "MemorySink",
    "ParquetSink",
    "Sink",
    "latest_failures",
    "load_content_hashes",
    "load_progress",
    "load_ranks",
]

PAGE_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("final_url", pa.string()),
        ("depth", pa.int32()),
        ("status_code", pa.int32()),
        ("content_type", pa.string()),
        ("encoding", pa.string()),
        ("html", pa.large_string()),
        ("outlinks", pa.list_(pa.string())),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        ("attempts", pa.int32()),
        ("elapsed_s", pa.float64()),
        ("content_hash", pa.string()),
        ("focus_score", pa.float64()),  # focused crawl only: the scorer's score of the page
        ("outlink_ranks", pa.list_(pa.float64())),  # focused crawl only: each outlink's rank (null: unscored)
    ]
)
FAILURE_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("attempts", pa.int32()),
        ("status_code", pa.int32()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        ("depth", pa.int32()),
    ]
)


class Sink(Protocol):
    """Where the crawler puts its records (see :class:`ParquetSink`, :class:`MemorySink`)."""

    def write_page(self, record: dict[str, Any]) -> None: ...

    def write_failure(self, record: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...


class MemorySink:
    """Keeps records in two lists (tests, small runs)."""

    def __init__(self) -> None:
        self.pages: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    def write_page(self, record: dict[str, Any]) -> None:
        self.pages.append(record)

    def write_failure(self, record: dict[str, Any]) -> None:
        self.failures.append(record)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def outcome_by_url(self) -> dict[str, str]:
        """url -> ``"ok"`` or the failure reason (a URL seen twice would raise: that is a crawler bug)."""
        outcomes: dict[str, str] = {}
        for rec in self.pages:
            if rec["url"] in outcomes:
                raise AssertionError(f"{rec['url']} recorded twice")
            outcomes[rec["url"]] = "ok"
        for rec in self.failures:
            if rec["url"] in outcomes:
                raise AssertionError(f"{rec['url']} recorded twice")
            outcomes[rec["url"]] = failure_reason(rec["error"])
        return outcomes


class ParquetSink:
    """Appends records as small Parquet parts: ``raw/part-<uuid>.parquet`` and
    ``failures/part-<uuid>.parquet`` under ``directory`` (local path or ``pyarrow.fs`` URI).

    A part is written every ``flush_rows`` records or ``flush_s`` seconds (checked on each write), on
    :meth:`flush` and on :meth:`close`. Local parts are written to a hidden temp file and renamed, and
    object-store puts are atomic, so readers (and a resumed run) never see half a part; a crash loses at
    most the unflushed buffer. Several sinks (e.g. one per Ray task) may share one directory.
    """

    def __init__(self, directory: str | os.PathLike[str], flush_rows: int = 200, flush_s: float = 10.0):
        self.directory = str(directory)
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self._pages: list[dict[str, Any]] = []
        self._failures: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self.parts_written = 0

    def write_page(self, record: dict[str, Any]) -> None:
        self._pages.append(record)
        self._maybe_flush()

    def write_failure(self, record: dict[str, Any]) -> None:
        self._failures.append(record)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        pending = len(self._pages) + len(self._failures)
        if pending >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Write whatever is buffered as new parts."""
        if self._pages:
            self._write("raw", self._pages, PAGE_SCHEMA)
            self._pages = []
        if self._failures:
            self._write("failures", self._failures, FAILURE_SCHEMA)
            self._failures = []
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, kind: str, rows: list[dict[str, Any]], schema: Any) -> None:
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        # local: a hidden temp file renamed into place (readers skip hidden names); URI: one atomic PUT
        write_bytes(
            join(self.directory, kind, f"part-{uuid.uuid4().hex}.parquet"), buffer.getvalue().to_pybytes()
        )
        self.parts_written += 1


def _read_parts(directory: str, kind: str, columns: list[str]) -> list[dict[str, list[Any]]]:
    """Column dicts of each finished part of ``directory/kind`` (none when the folder is missing)."""
    return [
        read_parquet(path, columns=columns).to_pydict()
        for path in list_files(join(directory, kind), prefix="part-", suffix=".parquet")
    ]


def load_progress(directory: str | os.PathLike[str]) -> tuple[set[str], list[tuple[str, int]]]:
    """What a crawl into ``ParquetSink(directory)`` already did, for resuming it.

    Returns:
        ``(done_urls, frontier)``: every URL with a page (and the target its redirects reached) or a
        permanent failure record, and
        ``(url, depth)`` for each outlink of a done page that is not done itself (at its smallest depth),
        sorted by depth. Pass both to :func:`crawl` (and :func:`load_content_hashes` as ``content_hashes``).
        A URL whose last failure was transient (:func:`is_transient`) is not done: the next run fetches it
        again, so a site that was down for a while is crawled once it is back.
    """
    directory = str(directory)
    done: set[str] = set()
    pages = _read_parts(directory, "raw", ["url", "final_url", "depth", "outlinks"])
    for part in pages:
        done.update(part["url"])
        # A redirect's target was stored under the URL that led to it; a later link to the target itself
        # must not fetch it again (it would be recorded a second time, as a duplicate of the first).
        done.update(url for url in part["final_url"] if url)
    done.update(url for url, error in latest_failures(directory).items() if not is_transient(error))
    frontier: dict[str, int] = {}
    for part in pages:
        for depth, outlinks in zip(part["depth"], part["outlinks"], strict=True):
            for link in outlinks or ():
                if link not in done and frontier.get(link, math.inf) > depth + 1:
                    frontier[link] = depth + 1
    return done, sorted(frontier.items(), key=lambda item: (item[1], item[0]))


def load_ranks(directory: str | os.PathLike[str]) -> dict[str, float]:
    """``url -> rank`` of every outlink a focused crawl into ``directory`` scored: its best (lowest) rank
    over all pages that link to it, which is the rank it waited with in that crawl's frontier.

    Parts written without focus (or before ranks were recorded) contribute nothing.
    """
    best: dict[str, float] = {}
    for path in list_files(join(str(directory), "raw"), prefix="part-", suffix=".parquet"):
        try:
            part = read_parquet(path, columns=["outlinks", "outlink_ranks"]).to_pydict()
        except (KeyError, pa.ArrowInvalid):  # a part from before outlink_ranks existed
            continue
        for outlinks, ranks in zip(part["outlinks"], part["outlink_ranks"], strict=True):
            for link, rank in zip(outlinks or (), ranks or (), strict=False):
                if rank is not None and rank < best.get(link, math.inf):
                    best[link] = rank
    return best


def latest_failures(directory: str | os.PathLike[str]) -> dict[str, str]:
    """``url -> error`` of each URL's most recent crawl failure record in ``directory/failures``.

    A URL retried after a transient failure may have several records (one per run); the newest, by
    ``fetched_at``, is its outcome. Records of URLs that later got a page are still returned here.
    """
    newest: dict[str, tuple[Any, str]] = {}
    for part in _read_parts(str(directory), "failures", ["url", "error", "fetched_at"]):
        for url, error, at in zip(part["url"], part["error"], part["fetched_at"], strict=True):
            if url not in newest or (at is not None and (newest[url][0] is None or at >= newest[url][0])):
                newest[url] = (at, str(error))
    return {url: error for url, (_, error) in newest.items()}


def load_content_hashes(directory: str | os.PathLike[str]) -> dict[str, str]:
    """``content_hash -> url`` of the pages already in ``directory`` (so a resumed crawl still dedups)."""
    hashes: dict[str, str] = {}
    for part in _read_parts(str(directory), "raw", ["url", "content_hash"]):
        for url, digest in zip(part["url"], part["content_hash"], strict=True):
            hashes.setdefault(digest, url)
    return hashes
