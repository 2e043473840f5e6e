"""Bytes -> text for web pages (:func:`decode_html`), and the Arabic share that judges a decoding
(:func:`arabic_share`). Pure: no network, no Ray.

seqlab's Arabic rescue lives here: a page whose declared charset gives almost no Arabic although most of its
bytes are non-ASCII (windows-1256 served as iso-8859-1, the classic) is read again as UTF-8, windows-1256
and iso-8859-6. Extraction libraries take the text this module decodes, never the raw bytes.
"""

from __future__ import annotations

import codecs
import re

from seqlab.text.normalize import arabic_letter_count

__all__ = ["arabic_share", "decode_html"]


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
# Both <meta charset="x"> and <meta http-equiv="Content-Type" content="text/html; charset=x">.
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
_META_SCAN_BYTES = 2048
# Browsers (WHATWG Encoding) read these labels as windows-1252, which, unlike latin-1, leaves a few
# bytes undefined, so a strict decode can reject some mislabelled pages.
_WHATWG_ALIASES = {"latin1": "cp1252", "iso8859-1": "cp1252", "ascii": "cp1252"}
# Tried, in order, when a page decodes into almost no Arabic although it has many non-ASCII bytes.
_ARABIC_CANDIDATES = ("utf-8", "cp1256", "iso8859-6")


def _codec(label: str | None) -> str | None:
    """Python's codec name for a charset label, or None when unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'").lower()).name
    except LookupError:
        return None
    name = _WHATWG_ALIASES.get(name, name)
    if name.startswith("utf-16") or name.startswith("utf-32"):
        return "utf-8"  # a charset label we could read in ASCII cannot be UTF-16/32 (WHATWG does the same)
    return name


def _pretty(codec: str) -> str:
    """``cp1256`` -> ``windows-1256``, ``iso8859-6`` -> ``iso-8859-6``; others unchanged."""
    if codec.startswith("cp125"):
        return "windows-" + codec[2:]
    if codec.startswith("iso8859-"):
        return "iso-8859-" + codec[len("iso8859-") :]
    return codec


def _strict(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


_ASCII = bytes(range(128))
# A strict UTF-8 decode is self-validating, and the Arabic codecs are already what the rescue looks for.
_NO_RESCUE = frozenset({"utf-8", "cp1256", "iso8859-6"})


def _looks_misdecoded(text: str, body: bytes) -> bool:
    """Mostly non-ASCII bytes yet almost no Arabic letters: the classic windows-1256-read-as-latin-1."""
    high = len(body.translate(None, _ASCII))
    return high >= 0.1 * len(body) and high >= 32 and arabic_share(text) < 0.1


def _arabic_rescue(text: str, codec: str, body: bytes) -> tuple[str, str]:
    if codec in _NO_RESCUE or not _looks_misdecoded(text, body):
        return text, codec
    for candidate in _ARABIC_CANDIDATES:
        alt = _strict(body, candidate)
        if alt is not None and arabic_share(alt) >= 0.5:
            return alt, candidate
    return text, codec


def decode_html(body: bytes, content_type_header: str | None) -> tuple[str, str]:
    """Decode an HTML body, returning ``(text, encoding)``; never raises.

    Order: 1) a byte-order mark; 2) the ``Content-Type`` charset, if it decodes strictly and no
    ``<meta>`` charset in the first 2 KB disagrees and decodes strictly too (sites lie in headers more
    than in their markup; a strict UTF-8 header is self-validating and kept); 3) the ``<meta>``
    charset; 4) charset_normalizer's guess; 5) UTF-8 with replacement characters. A result with many
    non-ASCII bytes but almost no Arabic (windows-1256 served as iso-8859-1) is retried as UTF-8,
    windows-1256 and iso-8859-6, and the first that reads as mostly Arabic wins.

    Args:
        body: the raw (already decompressed) response body.
        content_type_header: the ``Content-Type`` header value, if any.

    Returns:
        The text and a charset name such as ``utf-8`` or ``windows-1256``.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, errors="replace"), codec

    header_match = _HEADER_CHARSET.search(content_type_header or "")
    header = _codec(header_match.group(1)) if header_match else None
    meta_match = _META_CHARSET.search(body[:_META_SCAN_BYTES])
    meta = _codec(meta_match.group(1).decode("ascii", "replace")) if meta_match else None

    chosen: tuple[str, str] | None = None
    header_text = _strict(body, header) if header else None
    if header_text is not None:
        chosen = (header_text, header)
        if header != "utf-8" and meta and meta != header:
            meta_text = _strict(body, meta)
            if meta_text is not None:
                chosen = (meta_text, meta)
    elif meta:
        meta_text = _strict(body, meta)
        if meta_text is not None:
            chosen = (meta_text, meta)
    if chosen is None:
        chosen = _detect(body)
    text, codec = _arabic_rescue(chosen[0], chosen[1], body)
    return text, _pretty(codec)


def _detect(body: bytes) -> tuple[str, str]:
    if _strict(body, "utf-8") is not None:
        return body.decode("utf-8"), "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(body).best()
    codec = _codec(best.encoding) if best is not None else None
    if codec:
        text = _strict(body, codec)
        if text is not None:
            return text, codec
    return body.decode("utf-8", errors="replace"), "utf-8"


def arabic_share(text: str) -> float:
    """Arabic letters / all letters of ``text`` (0.0 when it has no letters). Diacritics, digits and
    punctuation are not letters and do not count."""
    letters = sum(map(str.isalpha, text))
    if not letters:
        return 0.0
    arabic = arabic_letter_count(text)
    return arabic / letters
