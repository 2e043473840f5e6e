"""Hypothesis properties of normalize() over arbitrary Unicode, weighted towards the characters it maps."""

from __future__ import annotations

import importlib
import unicodedata
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.bench.normalize import seed_chain
from seqlab.text import normalize
from seqlab.text.config import CHAR_SWITCHES
from seqlab.text.normalize import (
    _URL_RE,
    ALEF_FORMS,
    ALPHABET,
    DIACRITICS,
    DIGITS,
    INVISIBLE,
    PRESENTATION_FORMS,
    TATWEEL,
    WHITESPACE,
    _normalize_general,
    _translate_numpy,
    apply_plan,
    compile_plan,
)

kernel_module = importlib.import_module(
    "seqlab.text.normalize_kernel"
)  # the batch kernel, where groups are cut

# Characters and fragments the normalizer treats specially, so that examples hit them often.
SPECIAL = sorted(
    set(DIGITS + ALEF_FORMS + DIACRITICS + TATWEEL + INVISIBLE + WHITESPACE)
    | set("\u0649\u0629\u0624\u0626\u0627\u064a\u0644ابتwW.:/h")
    | {
        "\ufefb",
        "\ufe8d",
        "\ufef7",
        "\ufdfa",
        "\ufdf2",
        "\ufe70",
        "\ufe71",
        "\ufc5e",
        "\ufdfd",
        "\ufffe",
        "\uffff",
    }
)
FRAGMENTS = [
    *("://", "http://", "www.", "WWW.", "ht\u200btp://", "w\u064bww.", "  ", "\ufeff", "😀", "\udc00"),
    # URL starts the batch route checks without the regex, and near misses it must leave to the regex
    *(
        "https://a.b/c?d=1",
        "a+b-c.d://",
        "x" * 31 + "://",
        "y" * 32 + "://",
        "9http://",
        ":http://",
        "ww.",
        "wWw.",
    ),
]

any_char = st.characters(exclude_categories=())  # every code point, lone surrogates included
text_strategy = st.lists(
    st.one_of(any_char, st.sampled_from(SPECIAL), st.sampled_from(FRAGMENTS)), max_size=40
).map("".join)
switches_strategy = st.fixed_dictionaries({name: st.booleans() for name in CHAR_SWITCHES})

# Arabic letters that no default map touches; normalize must leave them exactly as they are.
MAPPED = set(ALEF_FORMS + "\u0649")
KEPT_LETTERS = [
    chr(c)
    for c in [*range(0x0600, 0x0700), *range(0x0750, 0x0780), *range(0x08A0, 0x0900)]
    if unicodedata.category(chr(c)) == "Lo" and chr(c) not in MAPPED
]
# ... and that no map produces either (ا and ي are map outputs).
UNTOUCHED = set(KEPT_LETTERS) - {"\u0627", "\u064a"}

SETTINGS = settings(max_examples=200, deadline=None)


@SETTINGS
@given(text_strategy, switches_strategy)
def test_never_raises_and_is_idempotent(text, switches):
    once = normalize(text, **switches)
    assert isinstance(once, str)
    assert normalize(once, **switches) == once


@SETTINGS
@given(text_strategy)
def test_output_has_no_removed_character(text):
    out = normalize(text)
    removed = set(DIGITS + ALEF_FORMS + DIACRITICS + TATWEEL + INVISIBLE + "\u0649")
    removed |= set(WHITESPACE) - {" "}
    assert not removed & set(out)
    assert "  " not in out and out == out.strip()
    assert _URL_RE.search(out) is None
    folded = {c for c in PRESENTATION_FORMS if unicodedata.normalize("NFKC", c) != c}
    assert not folded & set(out)


@SETTINGS
@given(text_strategy)
def test_unmapped_arabic_letters_never_change(text):
    # With URL removal and folding off, nothing can delete or create such a letter.
    out = normalize(text, remove_urls=False, fold_presentation_forms=False)
    assert [c for c in out if c in UNTOUCHED] == [c for c in text if c in UNTOUCHED]


def test_each_unmapped_arabic_letter_is_a_fixed_point():
    assert len(KEPT_LETTERS) > 100
    for letter in KEPT_LETTERS:
        assert normalize(letter) == letter, hex(ord(letter))


@SETTINGS
@given(text_strategy, switches_strategy)
def test_numpy_path_equals_str_translate(text, switches):
    plan = compile_plan(tuple(switches[name] for name in CHAR_SWITCHES))
    long_text = text * 20  # the numpy path is only taken for long strings; call it directly anyway
    fast = _translate_numpy(long_text, plan)
    assert fast is None or fast == long_text.translate(plan.table)


@SETTINGS
@given(text_strategy)
def test_whitespace_fast_path_equals_split_join(text):
    loose = normalize(text, collapse_whitespace=False)
    assert normalize(text) == " ".join(loose.split())


ARABIC_NO_LATIN = st.lists(
    st.one_of(
        st.characters(min_codepoint=0x0600, max_codepoint=0x06FF).filter(lambda c: c not in INVISIBLE),
        st.sampled_from(DIGITS + " \t\n\u00a0.,،؟!"),
    ),
    max_size=60,
).map("".join)


@SETTINGS
@given(ARABIC_NO_LATIN)
def test_matches_the_seed_chain_on_arabic_text(text):
    # Without Latin letters there is no URL, so the seed's order and ours must agree exactly.
    assert normalize(text) == seed_chain()(text)


# Text the one-byte alphabet route takes (every character in ALPHABET), with a few characters outside it
# mixed in so that the fallback and the batch's per-row markers are exercised too.
alphabet_text = st.lists(
    st.one_of(
        st.sampled_from(ALPHABET),
        st.sampled_from(ALPHABET),
        st.sampled_from(SPECIAL),
        st.sampled_from(FRAGMENTS),
    ),
    max_size=60,
).map("".join)


@SETTINGS
@given(alphabet_text, switches_strategy)
def test_alphabet_route_equals_the_general_route(text, switches):
    plan = compile_plan(tuple(switches[name] for name in CHAR_SWITCHES))
    assert apply_plan(text, plan) == _normalize_general(text, plan)


@SETTINGS
@given(
    st.lists(st.one_of(st.none(), alphabet_text, text_strategy), max_size=12),
    switches_strategy,
    st.sampled_from(["string", "large_string"]),
    st.integers(0, 3),
)
def test_arrow_batch_equals_normalize_per_row(rows, switches, kind, cut):
    import pyarrow as pa

    from seqlab.text import normalize_batch

    rows = [r.encode("utf-8", "replace").decode("utf-8") if r else r for r in rows]  # Arrow holds UTF-8
    array = pa.array(["skipped"] * cut + rows, type=getattr(pa, kind)())[cut:]  # a sliced array, offset > 0
    table = pa.table({"text": pa.chunked_array([array[: len(rows) // 2], array[len(rows) // 2 :]])})
    expected = [None if r is None else normalize(r, **switches) for r in rows]
    for chunk_bytes in (kernel_module._CHUNK_BYTES, 24):  # 24: groups of a row or two, rows split apart
        with mock.patch.object(kernel_module, "_CHUNK_BYTES", chunk_bytes):
            got = normalize_batch(table, **switches)["text_norm"]
        assert got.type == table["text"].type
        assert got.to_pylist() == expected
