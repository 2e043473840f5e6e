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
that fit the CPU's L2 cache (:func:`_normalize_arrow`): ASCII and the Arabic block through two
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
from functools import lru_cache
from typing import Any

import numpy as np

from seqlab.text.config import CHAR_SWITCHES, NormalizeConfig, resolve_switches

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
_LETTER_BYTE = np.zeros(256, dtype=bool)  # [A-Za-z] and [A-Za-z0-9+.-], URL_PATTERN's scheme, by byte
_LETTER_BYTE[[*range(0x41, 0x5B), *range(0x61, 0x7B)]] = True
_SCHEME_BYTE = _LETTER_BYTE.copy()
_SCHEME_BYTE[[*range(0x30, 0x3A), *b"+.-"]] = True

_BMP = 0x10000
_IDENTITY: list[int] = list(range(_BMP))  # shared int objects for every table
_LUT_DELETE = 0xFFFF  # code unit meaning "drop this character"
_LUT_SLOW = 0xFFFE  # "needs the str.translate path" (multi-character output, or U+FFFE/U+FFFF input)
_LUT_SLOW_FROM = 0xFB50  # every input mapped to _LUT_SLOW is at or above this code unit
_NUMPY_MIN_CHARS = 256  # below this, NumPy's per-call overhead loses to str.translate (measured)
_U16 = np.dtype("<u2")


@dataclass(frozen=True)
class Plan:
    """Everything ``normalize`` needs for one combination of character-level switches."""

    table: list[Any]  # str.translate table: code point -> code point | str | None
    lut: np.ndarray  # (65536,) uint16: UTF-16 code unit -> code unit | _LUT_DELETE | _LUT_SLOW
    translate: bool  # False when the table maps nothing (skip the pass)
    remove_urls: bool
    collapse_whitespace: bool
    byte_table: bytes | None  # the alphabet route's bytes.translate table (None: a map leaves the alphabet)
    byte_delete: bytes  # the alphabet bytes the switches delete
    utf8: _Utf8Maps | None  # the batch route's tables over UTF-8 (None: a map it cannot express)


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
    lut[_LUT_SLOW] = lut[_LUT_DELETE] = _LUT_SLOW  # keep U+FFFE/U+FFFF away from the sentinels
    for src, dst in m.items():
        code = ord(src)  # every mapped character is in the BMP
        if dst == "":
            table[code], lut[code] = None, _LUT_DELETE
        elif len(dst) == 1:
            table[code] = lut[code] = ord(dst)
        else:
            table[code], lut[code] = dst, _LUT_SLOW
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
        utf8=_utf8_maps(m, sw),
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


_GONE = 0xFF  # never a byte of UTF-8: the batch route marks a byte it deletes with it
_MOVED = 0xFE  # never one either: a block character mapped to one with another lead byte (rare: ٱ ة ؤ ئ)


@dataclass(frozen=True)
class _Utf8Maps:
    """A switch combination's char map as tables over UTF-8 bytes, for :func:`_normalize_arrow`.

    ASCII and the Arabic block (U+0600..U+06FF: a lead byte 0xD8..0xDB and one continuation byte) are
    mapped densely with ``bytes.translate``; every other character the map touches is rare in Arabic text
    and is looked up in the plan's UTF-16 table at its positions only. A deleted byte is overwritten with
    ``_GONE`` and dropped by the translate that compacts the column.

    A block character is keyed by one byte, ``(lead << 6) + continuation`` wrapped to 8 bits, which is its
    offset in the block + 0x80 (mod 256): two NumPy operations, where the offset itself takes four.
    """

    ascii_table: bytes | None  # byte < 0x80 -> its map, bytes >= 0x80 unchanged (None: ASCII untouched)
    ascii_deleted: tuple[tuple[int, int], ...]  # the ASCII bytes the map deletes, as inclusive ranges
    cont_table: bytes | None  # block key -> new continuation byte, _GONE if deleted, _MOVED (None: untouched)
    block_deletes: bool  # some block character is deleted
    moved: np.ndarray | None  # (256, 2) uint8: block key -> new lead and continuation, for the _MOVED ones
    others: bool  # the map touches a character outside ASCII and the block

    @property
    def deleted_bytes(self) -> bytes:
        """What the compacting translate deletes: the mark and the deleted ASCII bytes."""
        return bytes([_GONE, *(b for lo, hi in self.ascii_deleted for b in range(lo, hi + 1))])


def _utf8_maps(m: dict[str, str], sw: dict[str, bool]) -> _Utf8Maps | None:
    """The batch route's tables for char map ``m``, or None where they cannot express it: an ASCII or block
    character mapped out of its range, or URL removal without whitespace collapse (then a URL also ends at
    non-ASCII whitespace, which the batch's byte-level token search does not look for)."""
    if sw["remove_urls"] and not sw["collapse_whitespace"]:
        return None
    ascii_table, ascii_gone = bytearray(range(256)), []
    for c in range(0x80):
        out = m.get(chr(c), chr(c))
        if out == "":
            ascii_gone.append(c)
        elif len(out) == 1 and ord(out) < 0x80:
            ascii_table[c] = ord(out)
        else:
            return None
    unmapped = bytes(0x80 | (k & 0x3F) for k in range(256))  # a block key's own continuation byte
    cont_table, moved = bytearray(unmapped), np.zeros((256, 2), dtype=np.uint8)
    for offset in range(0x100):
        out = m.get(chr(0x600 + offset), chr(0x600 + offset))
        key = (offset + 0x80) & 0xFF
        if out == "":
            cont_table[key] = _GONE
        elif len(out) == 1 and 0x600 <= ord(out) < 0x700:
            cont_table[key] = 0x80 | (ord(out) & 0x3F)
            if ord(out) >> 6 != (0x600 + offset) >> 6:
                cont_table[key] = _MOVED
                moved[key] = list(out.encode("utf-8"))
        else:
            return None
    ranges: list[tuple[int, int]] = []
    for b in ascii_gone:
        if ranges and ranges[-1][1] == b - 1:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((b, b))
    return _Utf8Maps(
        ascii_table=None if ascii_table == bytes(range(256)) else bytes(ascii_table),
        ascii_deleted=tuple(ranges),
        cont_table=None if cont_table == unmapped else bytes(cont_table),
        block_deletes=_GONE in cont_table,
        moved=moved if _MOVED in cont_table else None,
        others=any(not (ord(c) < 0x80 or 0x600 <= ord(c) < 0x700) for c in m),
    )


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
    if units.max() >= _LUT_SLOW_FROM and (mapped == _LUT_SLOW).any():
        return None  # a ligature folds to several characters
    # Astral characters are surrogate pairs that the table leaves alone and never splits.
    return mapped[mapped != _LUT_DELETE].tobytes().decode("utf-16-le")


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


def _may_hold_url(data: bytes) -> bool:
    """False when ``data`` has no ``/`` and no ``w``/``W``, so neither ``://`` nor ``ww.``: three memchr
    scans, where ``b"://" in data`` is a byte-by-byte one (4x slower on a 2000-character Arabic text)."""
    return b"/" in data or b"w" in data or b"W" in data


def _finish_bytes(data: bytes, plan: Plan) -> bytes:
    """URL removal and whitespace collapse on alphabet bytes: ``apply_plan``'s last two steps."""
    if plan.remove_urls and _may_hold_url(data) and (b"://" in data or b"w." in data or b"W." in data):
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
            parts = [part for chunk in source.chunks for part in _normalize_arrow(chunk, plan)]
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


_CHUNK_BYTES = 1 << 18  # rows are normalized in groups of about this much UTF-8, so a group stays in cache


def _normalize_arrow(array: Any, plan: Plan) -> list[Any]:
    """One Arrow string array normalized on its UTF-8 buffer, as arrays of consecutive rows (the chunks of
    the result: no copy joins them); rows it cannot take go one by one.

    The rows are taken in groups of about ``_CHUNK_BYTES``, each through three vectorized steps over its
    bytes (:func:`_normalize_utf8`). No ``str`` is built for the column. A row holding a character whose
    normalized form is longer in UTF-8 (a ligature) is redone by :func:`normalize`, as is the whole array
    when :class:`_Utf8Maps` cannot express the switches.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(array)
    large = pa.types.is_large_string(array.type)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64 if large else np.int32)
    offsets = offsets[array.offset : array.offset + n + 1].astype(np.int64)
    data = array.buffers()[2]
    if plan.utf8 is None or data is None or not n or offsets[-1] == offsets[0]:
        return [_per_row(array, plan)]
    raw = np.frombuffer(data, dtype=np.uint8)
    cuts = np.unique(np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], _CHUNK_BYTES)))
    cuts = cuts[cuts < n].tolist()
    parts = []
    for first, last in zip(cuts, [*cuts[1:], n], strict=True):
        rows = offsets[first : last + 1]
        body, rows_after, slow = _normalize_utf8(raw[rows[0] : rows[-1]], rows - rows[0], plan)
        index = pa.py_buffer(rows_after.astype(np.int64 if large else np.int32))
        part = pa.Array.from_buffers(array.type, last - first, [None, index, pa.py_buffer(body)])
        if len(slow):  # rows whose normalized form is longer than they are: the general route
            mask = np.zeros(last - first, dtype=bool)
            mask[slow] = True
            redone = _per_row(array.slice(first, last - first).take(pa.array(slow)), plan)
            part = pc.replace_with_mask(part, pa.array(mask), redone)
        if array.null_count:
            part = pc.if_else(array.slice(first, last - first).is_valid(), part, pa.scalar(None, array.type))
        parts.append(part)
    return parts


def _normalize_utf8(raw: np.ndarray, offsets: np.ndarray, plan: Plan) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Rows of UTF-8 (``raw``, rows at ``offsets`` from 0) normalized: (bytes, their offsets, rows to redo).

    The character maps (:func:`_map_utf8`), then URL removal (:func:`_url_spans`) and whitespace collapse
    with each row's ends stripped (:func:`_finish_utf8`); each of the two compacts the bytes and carries the
    row offsets along (a per-row count of the deleted bytes).
    """
    assert plan.utf8 is not None
    body, offsets, slow = _map_utf8(raw, offsets, plan.utf8, plan.lut)
    body, offsets = _finish_utf8(body, offsets, plan)
    return body, offsets, slow


def _offsets_after(dropped: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Row offsets once the bytes flagged in ``dropped`` (bool, one per byte) are gone."""
    lengths = np.diff(offsets)
    full = np.flatnonzero(lengths)  # reduceat gives an empty row its next byte, not 0: sum full rows only
    if len(full):  # a 16-bit sum where no row can overflow it: 2x faster than 32 bits
        longest = lengths.max()
        wide = np.uint16 if longest < 1 << 16 else np.int32 if longest < 1 << 31 else np.int64
        lengths[full] -= np.add.reduceat(dropped.view(np.uint8), offsets[full], dtype=wide)
    new = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(lengths, out=new[1:])
    return new


def _map_utf8(
    raw: np.ndarray, offsets: np.ndarray, maps: _Utf8Maps, lut: np.ndarray
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The character maps over UTF-8 ``raw`` (rows at ``offsets``): (bytes, new offsets, rows to redo)."""
    buffer = bytearray(raw)  # written in place below through `out`, translated without another copy
    out = np.frombuffer(buffer, dtype=np.uint8)  # (size,)
    lead = (raw & 0xFC) == 0xD8  # U+0600..U+06FF: lead 0xD8..0xDB, then one continuation byte
    if maps.cont_table is not None and lead.any():
        keys = bytearray(len(raw))  # the block key of the character led at each byte (see _Utf8Maps)
        key = np.frombuffer(keys, dtype=np.uint8)
        np.multiply(raw, np.uint8(64), out=key)  # (a shift is 20x slower than this multiply in NumPy)
        key[:-1] += raw[1:]
        cont_bytes = keys.translate(maps.cont_table)
        cont = np.frombuffer(cont_bytes, dtype=np.uint8)
        flag = lead.view(np.uint8)
        # The new continuation byte after each lead (uint8 arithmetic wraps, so this is exact; 10x faster
        # than np.copyto(..., where=)). A deleted character's continuation becomes _GONE here ...
        out[1:] += flag[:-1] * (cont[:-1] - out[1:])
        if maps.moved is not None and _MOVED in cont_bytes:  # (one memchr: ٱ is rare)
            moves = lead & (cont == _MOVED)
            if moves.any():
                at = np.flatnonzero(moves)
                out[at], out[at + 1] = maps.moved[key[at]].T
        if maps.block_deletes:  # ... and its lead here
            out |= np.negative((lead & (cont == _GONE)).view(np.uint8))
    slow_at = np.empty(0, dtype=np.int64)
    if maps.others:  # 2- and 3-byte leads outside the block (no map touches an astral character)
        multi = (raw - 0xC2) < 0x2E  # 0xC2 <= raw < 0xF0 (uint8 wrapping): every block lead, and the others
        # (counting them beats flatnonzero over a mask that is nearly all False)
        if np.count_nonzero(multi) > np.count_nonzero(lead):
            slow_at = _map_sparse(np.flatnonzero(multi & ~lead), raw, out, lut)
    dropped = out == _GONE
    for lo, hi in maps.ascii_deleted:
        dropped |= (out - lo) <= hi - lo  # lo <= out <= hi, with uint8 wrapping
    body = bytes(buffer.translate(maps.ascii_table, maps.deleted_bytes))
    slow = np.unique(np.searchsorted(offsets, slow_at, side="right") - 1) if len(slow_at) else slow_at
    return body, _offsets_after(dropped, offsets), slow


def _map_sparse(at: np.ndarray, raw: np.ndarray, out: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map the 2- and 3-byte characters led at ``at`` through the UTF-16 table, in place in ``out``;
    returns the positions of the characters whose output is longer (their rows are redone)."""
    b0, b1, b2 = (raw.take(at + i, mode="clip").astype(np.int64) for i in range(3))  # clip: a truncated end
    two = b0 < 0xE0
    code = np.where(
        two, ((b0 & 0x1F) << 6) | (b1 & 0x3F), ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F)
    )
    new = lut[code].astype(np.int64)
    hit = new != code
    at, new, width = at[hit], new[hit], np.where(two[hit], 2, 3)
    new_width = np.where(new == _LUT_DELETE, 0, np.where(new < 0x80, 1, np.where(new < 0x800, 2, 3)))
    slow = (new == _LUT_SLOW) | (new_width > width)
    slow_at = at[slow]
    at, new, width, new_width = at[~slow], new[~slow], width[~slow], new_width[~slow]
    encoded = (  # byte i of new's UTF-8 (meaningful for i < new_width), then _GONE up to the old width
        np.where(new_width == 1, new, np.where(new_width == 2, 0xC0 | (new >> 6), 0xE0 | (new >> 12))),
        np.where(new_width == 2, 0x80 | (new & 0x3F), 0x80 | ((new >> 6) & 0x3F)),
        0x80 | (new & 0x3F),
    )
    for i, value in enumerate(encoded):
        inside = i < width  # the character has a byte i
        out[at[inside] + i] = np.where(i < new_width, value, _GONE)[inside]
    return slow_at


def _finish_utf8(body: bytes, offsets: np.ndarray, plan: Plan) -> tuple[bytes, np.ndarray]:
    """URL removal and whitespace collapse on a batch's mapped UTF-8 (where the space is the only whitespace
    left when collapse is on, which URL removal on this route requires: see :func:`_utf8_maps`).

    A URL's bytes count as spaces: the collapse drops them with the spaces around them, which is what
    deleting them and then collapsing gives, since a URL runs to the next space or the end of its row.
    A space goes when a space or its row's start comes right before it, and so does the one that a row's
    trailing run leaves.
    """
    if not plan.collapse_whitespace:
        return body, offsets
    data = np.frombuffer(body, dtype=np.uint8)
    space = data == 0x20
    if plan.remove_urls:
        urls = _url_spans(body, data, space, offsets)
        if urls is not None:
            cut, width = urls
            space[np.repeat(cut - (np.cumsum(width) - width), width) + np.arange(width.sum())] = True
            data = data.copy()
            data[cut] = 0x20  # a URL's first byte is kept where it is the first space of its run
            body = data.tobytes()
    if not space.any():
        return body, offsets
    after_space = np.empty(len(data), dtype=bool)
    after_space[0] = True
    after_space[1:] = space[:-1]
    full = offsets[1:] > offsets[:-1]
    after_space[offsets[:-1][full]] = True  # a row's start counts as a space before it
    drop = space & after_space
    ends = offsets[1:][full]
    starts = offsets[:-1][full]
    for s, e in zip(starts[space[ends - 1]].tolist(), ends[space[ends - 1]].tolist(), strict=True):
        text = np.flatnonzero(~space[s:e])  # a row ending in spaces: drop the first of them too
        drop[s + (text[-1] + 1 if len(text) else 0)] = True
    return _without(body, drop), _offsets_after(drop, offsets)


def _url_spans(
    body: bytes, data: np.ndarray, space: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the URLs of the rows are: (first byte, length) of each, or None if there is none.

    Only the tokens around a ``://`` or ``w.`` can hold one, and a URL takes a token's tail. Where the
    regex would match at the token's first byte NumPy says so; the other tokens are joined by spaces into
    one string for a single regex pass, and what it leaves of each says where its URL starts.
    """
    if not _may_hold_url(body):
        return None
    size = len(data)
    colon = np.flatnonzero(data[: size - 2] == 0x3A)  # ":" is rare in Arabic text, "." is not: look for
    colon = colon[(data[colon + 1] == 0x2F) & (data[colon + 2] == 0x2F)]  # "://" from ":" and "w." whole
    www = np.flatnonzero(((data[:-1] | 0x20) == 0x77) & (data[1:] == 0x2E))
    at = np.sort(np.concatenate([colon, www]))  # (n_needles,): each ":" of "://", each "w" of "w."
    if not len(at):  # (``b"://" in body`` would be a byte-by-byte scan: 20x slower than this)
        return None
    stops = np.concatenate([[-1], np.flatnonzero(space), [size]])
    after = np.searchsorted(stops, at)  # stops[after - 1] < at < stops[after]
    row = np.searchsorted(offsets, at, side="right") - 1
    start = np.maximum(stops[after - 1] + 1, offsets[row])
    end = np.minimum(stops[after], offsets[row + 1])
    first = np.ones(len(at), dtype=bool)
    first[1:] = start[1:] != start[:-1]  # one token per start, however many needles it holds
    at, start, end = at[first], start[first], end[first]
    cut = start.copy()  # (n_tokens,): where the token's URL starts (end: none)
    # Nearly every URL token starts with its URL ("https://…", "www.…"): the regex matches at the token's
    # first byte, which NumPy can check. The other tokens go through the regex, joined into one string.
    into = at - start  # the needle's place in the token
    reach = min(int(into.max()), 32) + 1  # the bytes that decide: up to the needle, at most a 32-byte scheme
    head = data.take(np.minimum(start[:, None] + np.arange(max(reach, 2)), size - 1))  # (n_tokens, reach)
    scheme_end = np.where(~_SCHEME_BYTE[head[:, 1:reach]], np.arange(1, reach), reach).min(
        axis=1, initial=reach
    )
    at_start = np.where(
        data[at] == 0x3A,
        (into >= 1) & (into <= np.minimum(scheme_end, 32)) & _LETTER_BYTE[head[:, 0]],  # [A-Za-z]...{0,31}://
        (into == 2) & ((head[:, 0] | 0x20) == 0x77) & ((head[:, 1] | 0x20) == 0x77),  # [Ww]{3}\.
    )
    other = np.flatnonzero(~at_start)
    if len(other):
        tokens = [body[s:e] for s, e in zip(start[other].tolist(), end[other].tolist(), strict=True)]
        left = _URL_UTF8_RE.sub(b"", b" ".join(tokens)).split(b" ")
        cut[other] += np.fromiter(map(len, left), dtype=np.int64, count=len(tokens))
    width = end - cut  # (n_tokens,): the URL's bytes, 0 for a token without one
    if not width.any():
        return None
    return cut[width > 0], width[width > 0]


def _without(body: bytes, drop: np.ndarray) -> bytes:
    """``body`` less the bytes flagged in ``drop``: the slices between the dropped runs joined where there
    are few runs (a collapse usually drops a few spaces and the blanked URLs), else one translate."""
    dropped = np.count_nonzero(drop)
    if not dropped:
        return body
    if dropped > len(body) >> 8:  # a slice costs about what translating 200 bytes does
        marked = bytearray(body)  # marked in place through a view: 2x faster than a new array + tobytes
        view = np.frombuffer(marked, dtype=np.uint8)
        view |= np.negative(drop.view(np.uint8))
        return bytes(marked.translate(None, bytes([_GONE])))
    edges = (np.flatnonzero(drop[1:] != drop[:-1]) + 1).tolist()  # where a run of dropped bytes starts/ends
    edges = [0] * bool(drop[0]) + edges + [len(body)] * bool(drop[-1])  # (2 * n_runs,): start, end, ...
    starts, ends = [0, *edges[1::2]], [*edges[0::2], len(body)]
    return b"".join([body[a:b] for a, b in zip(starts, ends, strict=True)])


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
