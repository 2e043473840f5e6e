"""normalize_batch on pandas, Arrow and Ray's numpy batches, nulls included."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seqlab.text import normalize, normalize_batch

TEXTS = ["ذَهَبَ إلى المدرسةِ", None, "عام ٢٠٢٤ www.mithal.org", "", "مكتبة"]


def _expected(**switches):
    return [None if t is None else normalize(t, **switches) for t in TEXTS]


def test_pandas_object_column_with_none_and_nan():
    df = pd.DataFrame({"text": pd.Series([*TEXTS, math.nan], dtype=object), "id": range(6)})
    out = normalize_batch(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["text", "id", "text_norm"]
    assert [None if pd.isna(v) else v for v in out["text_norm"]] == [*_expected(), None]
    assert out["text_norm"].isna().tolist() == [False, True, False, False, False, True]
    assert out["text_norm"][0] == "ذهب الي المدرسة"
    assert "text_norm" not in df.columns  # the input is left alone
    assert out["text"].tolist()[0] == TEXTS[0]


def test_pandas_string_dtype_keeps_its_dtype_and_switches_apply():
    df = pd.DataFrame({"body": pd.array(TEXTS, dtype="string")})
    out = normalize_batch(df, column="body", out_column="body", teh_marbuta=True)
    assert out["body"].dtype == df["body"].dtype
    got = [None if pd.isna(v) else v for v in out["body"]]
    assert got == _expected(teh_marbuta=True)
    assert got[-1] == "مكتبه"


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_arrow_table_with_nulls(kind):
    table = pa.table({"text": pa.array(TEXTS, type=kind), "n": pa.array(range(5))})
    out = normalize_batch(table)
    assert isinstance(out, pa.Table)
    assert out.column_names == ["text", "n", "text_norm"]
    assert out.schema.field("text_norm").type == kind
    assert out.column("text_norm").to_pylist() == _expected()
    assert out.column("text_norm").null_count == 1


def test_arrow_chunked_column_and_in_place_output():
    chunked = pa.chunked_array([TEXTS[:2], TEXTS[2:]], type=pa.string())
    table = pa.table({"text": chunked})
    out = normalize_batch(table, out_column="text")
    assert out.column_names == ["text"]
    assert out.column("text").to_pylist() == _expected()


def test_numpy_dict_batch():
    batch = {"text": np.array(TEXTS, dtype=object), "id": np.arange(5)}
    out = normalize_batch(batch)
    assert set(out) == {"text", "id", "text_norm"}
    assert list(out["text_norm"]) == _expected()
    # Ray hands an all-null string block over as float32 NaN.
    nulls = normalize_batch({"text": np.array([np.nan], dtype=np.float32)})
    assert list(nulls["text_norm"]) == [None]


def test_missing_column_is_named():
    with pytest.raises(KeyError, match="body"):
        normalize_batch(pd.DataFrame({"text": ["نص"]}), column="body")
    with pytest.raises(KeyError, match="body"):
        normalize_batch(pa.table({"text": ["نص"]}), column="body")


def test_non_string_value_raises():
    with pytest.raises(TypeError, match="int"):
        normalize_batch(pd.DataFrame({"text": pd.Series(["نص", 3], dtype=object)}))


def test_unsupported_batch_kind():
    with pytest.raises(TypeError, match="DataFrame"):
        normalize_batch(["نص"])


def _arrow_rows(rows, **switches):
    return normalize_batch(pa.table({"text": pa.array(rows, type=pa.string())}), **switches)[
        "text_norm"
    ].to_pylist()


def test_arrow_urls_and_spaces_where_the_byte_route_decides_them():
    rows = [
        "اقرأ https://mithal.org/a?b=1 الآن",  # a URL token: removed with one of its spaces
        "رابط:https://mithal.org",  # a URL at the tail of a token, at the end of the row
        "x" * 32 + "://a " + "y" * 33 + "://b",  # the scheme may hold 32 characters, not 33
        "9http://a ا:http://b wWw.c ww.d",  # a digit is no scheme start; "ww." is no URL
        "   مسافات   في\u00a0\u2003البداية والنهاية \t ",  # NBSP and em space are spaces too
        "ht\u200btp://x.org نص",  # a zero-width space cannot hide a URL
        "٣٤ ٥ كتاب",  # deleted digits leave no double space
        "",
        " ",
    ]
    assert _arrow_rows(rows) == [normalize(r) for r in rows]
    assert _arrow_rows(rows, remove_urls=False) == [normalize(r, remove_urls=False) for r in rows]


@pytest.mark.parametrize(
    "switches",
    [{}, {"teh_marbuta": True, "fold_hamza": True}, {"collapse_whitespace": False}, {"remove_digits": False}],
)
def test_arrow_block_maps_that_change_the_lead_byte(switches):
    # ٱ -> ا (lead 0xD9 -> 0xD8), and with the switches ة -> ه, ؤ -> و, ئ -> ي (0xD8 -> 0xD9)
    rows = ["ٱلكتاب مدرسة مؤتمر رئيس ٱ", "ة ؤ ئ ٱ", "إٱأآ"]
    assert _arrow_rows(rows, **switches) == [normalize(r, **switches) for r in rows]


def test_arrow_only_rows_with_a_ligature_take_the_per_row_route(monkeypatch):
    module = importlib.import_module("seqlab.text.normalize")
    seen = []
    per_row = module._per_row
    monkeypatch.setattr(
        module, "_per_row", lambda array, plan: seen.append(array.to_pylist()) or per_row(array, plan)
    )
    # ﷺ and ﻻ fold to several characters (longer UTF-8); NBSP (to a space) and ZWNJ (deleted) get shorter
    rows = ["كتاب \ufdfa", "مدرسة\u00a0جديدة \u200c", "\ufefb", "عربي", "\ufe8d\ufe91"]  # ﺍ ﺑ: one each
    assert _arrow_rows(rows) == [normalize(r) for r in rows]
    assert seen == [["كتاب \ufdfa", "\ufefb"]]


def test_arrow_rows_longer_than_a_group_and_than_16_bits():
    # a row of ~190 KB (its deleted-byte count needs more than 16 bits) between short ones; groups of ~256 KB
    long_row = " ".join(["ذَهَبَ الطّالِبُ إلى https://mithal.org/x المَكْتَبَةِ ٨ مَرّاتٍ"] * 2500)
    rows = ["قصير", long_row, "", long_row[:70_000], "ٱخر"]
    assert _arrow_rows(rows) == [normalize(r) for r in rows]
