"""The corpus contract (seqlab.corpus): the metadata columns are optional for writers and for old corpora."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqlab.corpus import (
    CORPUS_COLUMNS,
    CORPUS_SCHEMA,
    METADATA_COLUMNS,
    corpus_table,
    read_corpus,
    write_corpus,
)

ROW = {
    "url": ["http://a.example/1"],
    "title": ["عنوان"],
    "text": ["نص الخبر"],
    "text_norm": ["نص الخبر"],
    "score": [5.0],
    "split": ["train"],
    "fetched_at": [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)],
    "status": ["ok"],
}


def test_a_corpus_written_before_the_metadata_columns_still_reads(tmp_path):
    old_schema = pa.schema([f for f in CORPUS_SCHEMA if f.name not in METADATA_COLUMNS])
    (tmp_path / "corpus").mkdir()
    pq.write_table(pa.table(ROW, schema=old_schema), tmp_path / "corpus" / "part-0.parquet")
    table = read_corpus(tmp_path, ["text_norm", "score", "split"], optional=METADATA_COLUMNS)
    assert table.column_names == ["text_norm", "score", "split"]  # nothing invented
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['published'\]"):
        read_corpus(tmp_path, ["published"])


def test_writers_may_leave_the_metadata_out_and_get_nulls(tmp_path):
    table = corpus_table(ROW)
    assert table.schema == CORPUS_SCHEMA and table.column_names == CORPUS_COLUMNS
    assert all(table.column(c).null_count == 1 for c in METADATA_COLUMNS)
    write_corpus(tmp_path, corpus_table({**ROW, "published": [dt.date(2024, 3, 5)], "language": ["ar"]}))
    back = read_corpus(tmp_path, ["published", "language", "author"]).to_pylist()
    assert back == [{"published": dt.date(2024, 3, 5), "language": "ar", "author": None}]
