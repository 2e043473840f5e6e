"""Arabic character-level normalization: ``str -> str`` and a batch form for pandas / Arrow / Ray Data.

The seed's pipeline was one ``re.sub`` per step: URLs, digits, alef forms, alef maksura, diacritics,
tatweel. Here every 1:1 map and every deletion (plus presentation-form folding, invisible characters
and the optional teh-marbuta / hamza folds) is one per-character function, applied in a single pass,
by the fastest of three equivalent routes:

* **a one-byte alphabet** (:data:`ALPHABET`: ASCII plus the 128 characters Arabic text is made of —
  the Arabic block's letters, harakat and digits, Persian letters, the invisible and typographic marks
  of web text). A text made only of those is encoded with a C charmap codec, mapped and stripped by one
  ``bytes.translate``, its URLs removed and its spaces collapsed on bytes, and decoded. No Python runs per
  character and almost none per document: this is what makes short documents fast, and it is the path
  of nearly all real Arabic text;
* otherwise a NumPy lookup table over the UTF-16 code units (long strings), or
* ``str.translate`` with a list indexed by code point (short strings, and the few multi-character
  folds of presentation forms).

Tests check that the three give the same result on arbitrary Unicode. :func:`normalize_batch` on an
Arrow column never builds a ``str``: it works on the column's UTF-8 buffer with NumPy, in groups of rows
that fit the CPU's L2 cache (:func:`seqlab.text.normalize_kernel.normalize_arrow`): ASCII and the Arabic block through two
``bytes.translate`` tables, the rare other characters at their positions only, deletions marked with a
byte UTF-8 never holds and dropped by one more translate, which carries the row offsets along. Only the
rows holding a character whose normalized form is longer (a ligature) go through :func:`normalize`.

Then URLs are removed (a regex, skipped when the text has no ``://`` and no ``w.``) and whitespace is
collapsed (the table already turned every whitespace character into a space, so this is only runs of
spaces). ``seqlab bench normalize`` measures it against the seed's ``re.sub`` chain and PyArabic.

Order, and why it is idempotent: presentation forms are folded *first* — the table entry of a
presentation form is its NFKC folding pushed through the other maps, so a folded ligature comes out
without diacritics and with a bare alef. Every map's output is a fixed point of the table (ا ي و ه,
a space, or nothing). URLs are removed *after* the character maps, unlike the seed: otherwise a
zero-width or diacritic character inside ``ht\\u200btp://`` would hide a URL on the first pass and
reveal it to the second. Removing a URL only deletes characters, so it cannot create new table
inputs, and the regex cannot match across the whitespace it stops at. Hypothesis tests check
``normalize(normalize(s)) == normalize(s)`` for arbitrary Unicode.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np

from seqlab.text.config import CHAR_SWITCHES, NormalizeConfig, resolve_switches
from seqlab.text.normalize_kernel import (
    LUT_DELETE,
    LUT_SLOW,
    Utf8Maps,
    may_hold_url,
    normalize_arrow,
    utf8_maps,
)

__all__ = [
    "ALEF_FORMS",
    "ALPHABET",
    "ARABIC_BLOCK",
    "DIACRITICS",
    "DIGITS",
    "INVISIBLE",
    "PRESENTATION_FORMS",
    "TATWEEL",
    "URL_PATTERN",
    "WHITESPACE",
    "Plan",
    "apply_plan",
    "arabic_letter_count",
    "compile_plan",
    "has_arabic",
    "normalize",
    "normalize_batch",
]


def _chars(*ranges: tuple[int, int]) -> str:
    return "".join(chr(c) for lo, hi in ranges for c in range(lo, hi + 1))


DIGITS = _chars((0x30, 0x39), (0x660, 0x669), (0x6F0, 0x6F9))
ALEF = "\u0627"
ALEF_FORMS = "\u0625\u0623\u0622\u0671"  # إ أ آ ٱ
ALEF_MAKSURA, YAA = "\u0649", "\u064a"  # ى ي
DIACRITICS = _chars((0x64B, 0x652), (0x670, 0x670), (0x6D6, 0x6ED))
TATWEEL = "\u0640"
TEH_MARBUTA, HEH = "\u0629", "\u0647"  # ة ه
HAMZA_FOLDS = {"\u0624": "\u0648", "\u0626": YAA}  # ؤ -> و, ئ -> ي
INVISIBLE = _chars(
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x180E, 0x180E),  # Mongolian vowel separator
    (0x200B, 0x200F),  # ZWSP, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),  # LRE, RLE, PDF, LRO, RLO
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x206F),  # LRI, RLI, FSI, PDI, deprecated format controls
    (0xFEFF, 0xFEFF),  # BOM / zero-width no-break space
)
# Exactly what str.split() and the regex \s treat as whitespace.
WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
PRESENTATION_FORMS = _chars((0xFB50, 0xFDFF), (0xFE70, 0xFEFF))

# A URL: any scheme (bounded, so a long run of letters cannot make the search quadratic) + "://", or
# "www.", then everything up to the next whitespace. A bare "http://" is removed too. Written as
# (?:[A-Za-z][A-Za-z0-9+.-]{0,31}://|[Ww]{3}\.)\S* but starting with one character class, which lets
# the regex engine skip ahead to the next Latin letter: 3x faster on Arabic text (measured).
URL_PATTERN = r"[A-Za-z](?:(?<=[Ww])[Ww]{2}\.|[A-Za-z0-9+.\-]{0,31}://)\S*"
_URL_RE = re.compile(URL_PATTERN)

# The one-byte alphabet of the fast path: byte b < 128 is ASCII, byte 128 + i is _ARABIC_TEXT[i]. What it
# holds decides only speed (a text with any other character takes the NumPy / translate path), never output.
_ARABIC_TEXT = (
    "\u060c\u060d\u060e\u060f"  # Arabic comma, date separator, poetic verse sign, misra sign
    + _chars((0x061B, 0x066F))  # ؛ ؟, hamza, letters, tatweel, harakat, Arabic-Indic digits, ٪ ٫ ٬
    + _chars((0x06F0, 0x06F9))  # extended Arabic-Indic (Persian, Urdu) digits
    + "\u06be"  # heh doachashmee
    + "\u0670\u0671"  # superscript alef, alef wasla
    + "\u067e\u0686\u0698\u06a4\u06a9\u06af\u06cc"  # Persian letters seen in Arabic text: پ چ ژ ڤ ک گ ی
    + "\u00a0\u00ad\u200b\u200c\u200d\u200e\u200f\ufeff"  # NBSP, soft hyphen, zero-width and bidi marks
    + "\u00ab\u00bb\u201c\u201d\u2018\u2019\u2013\u2014\u2026\u2022\u00b0"  # « » quotes, dashes, … • °
)
ALPHABET = _chars((0, 0x7F)) + _ARABIC_TEXT
if len(ALPHABET) != 256 or len(set(ALPHABET)) != 256:  # pragma: no cover - a guard on the literal above
    raise AssertionError(f"the fast-path alphabet must be 256 distinct characters, not {len(set(ALPHABET))}")
_ENCODING_MAP = codecs.charmap_build(ALPHABET)
_WHITESPACE_BYTES = bytes(b for b, c in enumerate(ALPHABET) if c.isspace())


def _url_bytes_re(stops: bytes) -> re.Pattern[bytes]:
    """URL_PATTERN over the alphabet's bytes: ASCII as is, ``\\S`` as "none of ``stops``"."""
    return re.compile(URL_PATTERN.replace("\\S", "[^" + "".join(f"\\x{b:02x}" for b in stops) + "]").encode())


_URL_BYTES_RE = _url_bytes_re(_WHITESPACE_BYTES)
_URL_UTF8_RE = _url_bytes_re(b" ")  # over a batch's UTF-8, where the space is the only whitespace left

_BMP = 0x10000
_IDENTITY: list[int] = list(range(_BMP))  # shared int objects for every table
_LUT_SLOW_FROM = 0xFB50  # every input mapped to LUT_SLOW is at or above this code unit
_NUMPY_MIN_CHARS = 256  # below this, NumPy's per-call overhead loses to str.translate (measured)
_U16 = np.dtype("<u2")


@dataclass(frozen=True)
class Plan:
    """Everything ``normalize`` needs for one combination of character-level switches."""

    table: list[Any]  # str.translate table: code point -> code point | str | None
    lut: np.ndarray  # (65536,) uint16: UTF-16 code unit -> code unit | LUT_DELETE | LUT_SLOW
    translate: bool  # False when the table maps nothing (skip the pass)
    remove_urls: bool
    collapse_whitespace: bool
    byte_table: bytes | None  # the alphabet route's bytes.translate table (None: a map leaves the alphabet)
    byte_delete: bytes  # the alphabet bytes the switches delete
    utf8: Utf8Maps | None  # the batch route's tables over UTF-8 (None: a map it cannot express)


def _char_map(sw: dict[str, bool]) -> dict[str, str]:
    """The per-character map (``""`` = delete) for one switch combination, folding included."""
    m: dict[str, str] = {}
    if sw["remove_invisible"]:
        m.update(dict.fromkeys(INVISIBLE, ""))
    if sw["collapse_whitespace"]:
        m.update(dict.fromkeys(WHITESPACE.replace(" ", ""), " "))
    if sw["remove_digits"]:
        m.update(dict.fromkeys(DIGITS, ""))
    if sw["normalize_alef"]:
        m.update(dict.fromkeys(ALEF_FORMS, ALEF))
    if sw["normalize_yaa"]:
        m[ALEF_MAKSURA] = YAA
    if sw["remove_diacritics"]:
        m.update(dict.fromkeys(DIACRITICS, ""))
    if sw["remove_tatweel"]:
        m[TATWEEL] = ""
    if sw["teh_marbuta"]:
        m[TEH_MARBUTA] = HEH
    if sw["fold_hamza"]:
        m.update(HAMZA_FOLDS)
    if sw["fold_presentation_forms"]:
        # Fold first, then push the folded letters through the maps above. Every value of `m` is a
        # fixed point of `m`, so one application is enough and the result is idempotent.
        folds = {}
        for ch in PRESENTATION_FORMS:
            folded = unicodedata.normalize("NFKC", ch)
            if folded != ch:
                folds[ch] = "".join(m.get(c, c) for c in folded)
        m.update(folds)
    return m


@lru_cache(maxsize=64)
def compile_plan(char_key: tuple[bool, ...]) -> Plan:
    sw = dict(zip(CHAR_SWITCHES, char_key, strict=True))
    m = _char_map(sw)
    table: list[Any] = list(_IDENTITY)
    lut = np.arange(_BMP, dtype=_U16)
    lut[LUT_SLOW] = lut[LUT_DELETE] = LUT_SLOW  # keep U+FFFE/U+FFFF away from the sentinels
    for src, dst in m.items():
        code = ord(src)  # every mapped character is in the BMP
        if dst == "":
            table[code], lut[code] = None, LUT_DELETE
        elif len(dst) == 1:
            table[code] = lut[code] = ord(dst)
        else:
            table[code], lut[code] = dst, LUT_SLOW
    lut.setflags(write=False)
    byte_table, byte_delete = _byte_maps(m)
    return Plan(
        table=table,
        lut=lut,
        translate=bool(m),
        remove_urls=sw["remove_urls"],
        collapse_whitespace=sw["collapse_whitespace"],
        byte_table=byte_table,
        byte_delete=byte_delete,
        utf8=utf8_maps(m, sw, _URL_UTF8_RE),
    )


def _byte_maps(m: dict[str, str]) -> tuple[bytes | None, bytes]:
    """``m`` as a ``bytes.translate`` table and deletion set over :data:`ALPHABET`, or ``(None, b"")``
    when some alphabet character maps outside it (then only the other routes can apply ``m``)."""
    table, delete = bytearray(range(256)), bytearray()
    for byte, char in enumerate(ALPHABET):
        out = m.get(char, char)
        if out == "":
            delete.append(byte)
        elif len(out) == 1 and out in ALPHABET:
            table[byte] = ALPHABET.index(out)
        else:
            return None, b""
    return bytes(table), bytes(delete)


def _translate(text: str, plan: Plan) -> str:
    if len(text) >= _NUMPY_MIN_CHARS:
        done = _translate_numpy(text, plan)
        if done is not None:
            return done
    return text.translate(plan.table)


def _translate_numpy(text: str, plan: Plan) -> str | None:
    """``text.translate(plan.table)`` via the UTF-16 lookup table, or None where only translate can."""
    try:
        raw = text.encode("utf-16-le")
    except UnicodeEncodeError:  # lone surrogates: legal in a str, not encodable
        return None
    if not raw:
        return text
    units = np.frombuffer(raw, dtype=_U16)  # (n_code_units,)
    mapped = plan.lut.take(units)  # (n_code_units,)
    if units.max() >= _LUT_SLOW_FROM and (mapped == LUT_SLOW).any():
        return None  # a ligature folds to several characters
    # Astral characters are surrogate pairs that the table leaves alone and never splits.
    return mapped[mapped != LUT_DELETE].tobytes().decode("utf-16-le")


_URL_TOKEN_BYTES = 400  # a token's Python overhead ~ the regex's scan of this many bytes (measured)


def _remove_urls_bytes(data: bytes, regex: re.Pattern[bytes], stops: bytes) -> bytes:
    """``regex.sub(b"", data)`` run only on the tokens that can hold a URL.

    Valid when every whitespace byte of ``data`` is in ``stops`` (after the table, with whitespace collapse
    on, that is the space, and a batch's separator): a match never spans whitespace and needs ``://`` or
    ``ww.`` inside its token, so the tokens around those needles are the only places it can be. On Arabic
    text that skips the regex's scan of every byte (it was half of ``normalize``'s time on text with URLs).
    """
    needles = data.count(b"://") + data.count(b"w.") + data.count(b"W.")
    if needles * _URL_TOKEN_BYTES > len(data):  # URLs everywhere: one regex scan is cheaper than many tokens
        return regex.sub(b"", data)
    singles = [stops[i : i + 1] for i in range(len(stops))]
    spans = set()  # (start, end) of each token holding a needle
    for needle in (b"://", b"w.", b"W."):
        pos = data.find(needle)
        while pos != -1:
            start = max(data.rfind(c, 0, pos) for c in singles) + 1  # -1 + 1: the start of data
            ends = [e for e in (data.find(c, pos) for c in singles) if e != -1]
            end = min(ends, default=len(data))
            spans.add((start, end))
            pos = data.find(needle, end)
    if not spans:
        return data
    out, last = [], 0
    for start, end in sorted(spans):  # a token found through two needles is the same span
        out += [data[last:start], regex.sub(b"", data[start:end])]
        last = end
    out.append(data[last:])
    return b"".join(out)


def _finish_bytes(data: bytes, plan: Plan) -> bytes:
    """URL removal and whitespace collapse on alphabet bytes: ``apply_plan``'s last two steps."""
    if plan.remove_urls and may_hold_url(data) and (b"://" in data or b"w." in data or b"W." in data):
        if plan.collapse_whitespace:  # every whitespace character is a space by now
            data = _remove_urls_bytes(data, _URL_BYTES_RE, b" ")
        else:
            data = _URL_BYTES_RE.sub(b"", data)
    if plan.collapse_whitespace:
        while b"  " in data:
            data = data.replace(b"  ", b" ")
        data = data.strip(b" ")
    return data


def apply_plan(text: str, plan: Plan) -> str:
    if plan.byte_table is not None:
        try:
            data = codecs.charmap_encode(text, "strict", _ENCODING_MAP)[0]
        except UnicodeEncodeError:  # a character outside the alphabet: the general routes below
            pass
        else:
            data = _finish_bytes(data.translate(plan.byte_table, plan.byte_delete), plan)
            return codecs.charmap_decode(data, "strict", ALPHABET)[0]
    return _normalize_general(text, plan)


def _normalize_general(text: str, plan: Plan) -> str:
    if plan.translate:
        text = _translate(text, plan)
    if plan.remove_urls and ("://" in text or "w." in text or "W." in text):
        text = _URL_RE.sub("", text)
    if plan.collapse_whitespace:  # the table already turned all whitespace into " "
        while "  " in text:  # log2(longest run) passes of a C-speed replace; 4x faster than a regex
            text = text.replace("  ", " ")
        text = text.strip(" ")
    return text


def _plan_for(config: NormalizeConfig | None, switches: dict[str, Any]) -> Plan:
    return compile_plan(resolve_switches(config, switches)[: len(CHAR_SWITCHES)])


def normalize(text: str, config: NormalizeConfig | None = None, **switches: bool) -> str:
    """Normalize Arabic text at the character level.

    Steps (each a field of :class:`~seqlab.text.config.NormalizeConfig`): fold presentation forms,
    drop invisible characters, digits, diacritics and tatweel, map alef forms and alef maksura (and,
    when switched on, teh marbuta and hamza seats), remove URLs, collapse whitespace.

    Args:
        text: any ``str``; never raises on one, and ``normalize(normalize(t)) == normalize(t)``.
        config: switches as a config object (defaults when None).
        **switches: per-call overrides, e.g. ``teh_marbuta=True``. Token-level fields
            (``remove_stopwords``, ``stem``, ``lowercase_latin``) are accepted and ignored, so
            ``normalize(text, **cfg.model_dump())`` works.

    Raises:
        TypeError: ``text`` is not a str, a switch is unknown or not a bool.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize() expects a str, got {type(text).__name__}")
    return apply_plan(text, _plan_for(config, switches))


def normalize_batch(
    batch: Any,
    column: str = "text",
    out_column: str = "text_norm",
    config: NormalizeConfig | None = None,
    **switches: bool,
) -> Any:
    """Normalize one string column of a batch, for ``ray.data.Dataset.map_batches`` and friends.

    Args:
        batch: a ``pandas.DataFrame``, a ``pyarrow.Table`` or a dict of NumPy arrays (Ray's
            ``"numpy"`` batch format); the same kind is returned, with ``out_column`` added or replaced.
            The input is not modified.
        column: the text column. Nulls (None / NaN / NA) stay null.
        out_column: where the normalized text goes (may equal ``column``).
        config: switches as a config object (defaults when None).
        **switches: per-call overrides, as in :func:`normalize`.

    Raises:
        KeyError: ``column`` is missing (the message lists the columns present).
        TypeError: a non-null value is not a str, or ``batch`` is of an unsupported kind.
    """
    plan = _plan_for(config, switches)

    def norm_all(values: Any, is_null: Any) -> list[str | None]:
        out: list[str | None] = []
        for value in values:
            if isinstance(value, str):
                out.append(apply_plan(value, plan))
            elif is_null(value):
                out.append(None)
            else:
                raise TypeError(f"column {column!r} holds a {type(value).__name__}, expected str or null")
        return out

    import pyarrow as pa

    if isinstance(batch, pa.Table):
        _check_column(column, batch.column_names)
        source = batch.column(column)
        if pa.types.is_string(source.type) or pa.types.is_large_string(source.type):
            parts = [
                part
                for chunk in source.chunks
                for part in normalize_arrow(chunk, plan, partial(_per_row, plan=plan))
            ]
            result = pa.chunked_array(parts, type=source.type)
        else:
            kind = pa.large_string() if pa.types.is_large_string(source.type) else pa.string()
            result = pa.array(norm_all(source.to_pylist(), _is_none), type=kind)
        if out_column in batch.column_names:
            return batch.set_column(batch.column_names.index(out_column), out_column, result)
        return batch.append_column(out_column, result)
    if isinstance(batch, dict):
        _check_column(column, list(batch))
        return {**batch, out_column: np.array(norm_all(batch[column], _is_none_or_nan), dtype=object)}
    import pandas as pd

    if isinstance(batch, pd.DataFrame):
        _check_column(column, list(batch.columns))
        source = batch[column]
        dtype = source.dtype if isinstance(source.dtype, pd.StringDtype) else object
        values = norm_all(source.tolist(), pd.isna)
        return batch.assign(**{out_column: pd.Series(values, index=batch.index, dtype=dtype)})
    raise TypeError(f"normalize_batch() takes a pandas DataFrame, pyarrow Table or dict, got {type(batch)}")


def _per_row(array: Any, plan: Plan) -> Any:
    """``normalize`` on each row of an Arrow string array, one by one (nulls stay null)."""
    import pyarrow as pa

    return pa.array([None if v is None else apply_plan(v, plan) for v in array.to_pylist()], type=array.type)


def _check_column(column: str, present: list[Any]) -> None:
    if column not in present:
        raise KeyError(f"column {column!r} not in batch; columns: {present}")


def _is_none(value: Any) -> bool:
    return value is None


def _is_none_or_nan(value: Any) -> bool:
    # Ray's numpy batches hold an all-null string block as float32 NaN.
    return value is None or (isinstance(value, float | np.floating) and value != value)


# Arabic, Arabic Supplement, Arabic Extended-A and the two presentation-form blocks.
ARABIC_BLOCK = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]")


def arabic_letter_count(text: str) -> int:
    """Arabic letters in ``text``; diacritics, tatweel, Arabic digits and punctuation are not letters."""
    return sum(1 for c in ARABIC_BLOCK.findall(text) if c.isalpha() and c != TATWEEL)  # tatweel is "Lm"


def has_arabic(text: str) -> bool:
    """Whether ``text`` has an Arabic letter. Normalization never adds or removes letters, so raw and
    normalized text agree. A scorer's score of a text without one (empty, emoji, Latin only) is made of unknown
    tokens and says nothing of its content: ``Scorer.no_arabic`` and ``/v1/score`` flag it (``no_arabic``)."""
    return arabic_letter_count(text) > 0
