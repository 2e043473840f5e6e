"""Pure page processing: bytes -> text (:func:`decode_html`) and HTML -> article (:func:`extract_article`).

No network and no Ray here; :func:`extract_batch` is the pandas form Ray Data calls with ``map_batches``.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, Tag

from seqlab.text.normalize import arabic_letter_count

__all__ = ["Article", "arabic_share", "decode_html", "extract_article", "extract_batch"]

# ---------------------------------------------------------------------------------------------------------
# Decoding

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


# ---------------------------------------------------------------------------------------------------------
# Arabic share


def arabic_share(text: str) -> float:
    """Arabic letters / all letters of ``text`` (0.0 when it has no letters). Diacritics, digits and
    punctuation are not letters and do not count."""
    letters = sum(map(str.isalpha, text))
    if not letters:
        return 0.0
    arabic = arabic_letter_count(text)
    return arabic / letters


# ---------------------------------------------------------------------------------------------------------
# Extraction


@dataclass(frozen=True)
class Article:
    """The readable part of a page.

    Attributes:
        title: page title without the site-name suffix ("" when none).
        text: the main content's paragraphs, one per line.
        arabic_share: Arabic letters / all letters of ``text``.
        n_chars: ``len(text)``.
    """

    title: str
    text: str
    arabic_share: float
    n_chars: int


_DROP_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "template")
_DROP_TAGS += ("svg", "button", "select")
# Words that mark boilerplate when they appear as a whole token of a class or id ("share-box", "ad_top").
_BOILERPLATE_WORDS = frozenset(
    "ad ads advert adverts advertisement banner cookie cookies share sharing social related comment "
    "comments menu sidebar footer breadcrumb breadcrumbs newsletter promo popup subscribe".split()
)
MIN_FALLBACK_WORDS = 10  # a line of a <p>-less page counts as prose from this many words
_NEVER_DROP = frozenset({"html", "body", "main", "article"})
_TOKEN_SPLIT = re.compile(r"[-_\s]+")
_TITLE_SEPARATORS = re.compile(r"\s+(?:\||-|–|—|::|»|·)\s+")


def _is_boilerplate(tag: Tag) -> bool:
    attrs = tag.attrs or {}
    names = list(attrs.get("class") or [])
    if attrs.get("id"):
        names.append(str(attrs["id"]))
    for name in names:
        for token in _TOKEN_SPLIT.split(str(name).lower()):
            if token in _BOILERPLATE_WORDS:
                return True
    return False


def _holds_the_story(tag: Tag, total_arabic: int) -> bool:
    """At least two paragraphs holding half of the page's Arabic paragraph text: not boilerplate."""
    paragraphs = tag.find_all("p")
    if len(paragraphs) < 2 or not total_arabic:
        return False
    return sum(arabic_letter_count(p.get_text(" ")) for p in paragraphs) >= 0.5 * total_arabic


def _clean_title(raw: str) -> str:
    """Drop a " | Site name" part: split on the usual separators and keep the longest piece."""
    title = " ".join(raw.split())
    parts = [p for p in _TITLE_SEPARATORS.split(title) if p.strip()]
    return max(parts, key=len) if len(parts) > 1 else title


def _title(soup: BeautifulSoup) -> str:
    og = soup.find("meta", attrs={"property": "og:title"})
    if og is not None and str(og.get("content") or "").strip():
        return _clean_title(str(og["content"]))
    h1 = soup.find("h1")
    if h1 is not None and h1.get_text(strip=True):
        return " ".join(h1.get_text(" ").split())
    if soup.title is not None and soup.title.string:
        return _clean_title(soup.title.string)
    return ""


def _paragraph_text(tag: Tag) -> str:
    return " ".join(tag.get_text(" ").split())


def _main_content(soup: BeautifulSoup) -> Tag | None:
    """``<article>`` (the most Arabic one) if any, else the element whose paragraphs hold the most Arabic:
    each ``<p>`` credits its parent with its Arabic letters and its grandparent with half of them."""
    articles = soup.find_all("article")
    if articles:
        return max(articles, key=lambda a: arabic_letter_count(a.get_text(" ")))
    scores: dict[int, tuple[float, Tag]] = {}
    for p in soup.find_all("p"):
        n = arabic_letter_count(p.get_text(" "))
        if not n:
            continue
        for weight, node in ((1.0, p.parent), (0.5, p.parent.parent if p.parent else None)):
            if isinstance(node, Tag):
                old = scores.get(id(node), (0.0, node))[0]
                scores[id(node)] = (old + weight * n, node)
    if not scores:
        return soup.body or soup
    return max(scores.values(), key=lambda item: item[0])[1]


def extract_article(html: str, url: str = "") -> Article:
    """Pull the title and main text out of a page.

    Boilerplate goes first (script/style/nav/header/footer/aside/form/iframe... and elements whose
    class or id has a token like ``ad``, ``cookie``, ``share``, ``related``, ``comment``, ``menu``,
    ``sidebar``, ``breadcrumb``, ``newsletter``, unless they hold the story: two or more paragraphs with
    half of the page's Arabic paragraph text, or an ``<article>``/``<main>``); then the main content is ``<article>`` if present,
    else the block with the most Arabic text in its paragraphs. The text is those paragraphs, one per
    line. A container without ``<p>`` gives its text lines of at least ``MIN_FALLBACK_WORDS`` words
    (prose laid out with ``<br>``), so index and listing pages, made of short link titles, come out
    empty.

    Args:
        html: the decoded page.
        url: where it came from (kept for error messages and future per-site rules).
    """
    soup = BeautifulSoup(html, "html.parser")
    title = _title(soup)
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    total = sum(arabic_letter_count(p.get_text(" ")) for p in soup.find_all("p"))
    for tag in soup.find_all(True):
        if tag.decomposed or tag.name in _NEVER_DROP or not _is_boilerplate(tag):
            continue
        if tag.find(["article", "main"]) is not None or _holds_the_story(tag, total):
            continue  # e.g. <div class="wrapper has-sidebar"> around the story
        tag.decompose()
    main = _main_content(soup)
    paragraphs = [_paragraph_text(p) for p in main.find_all("p")] if main is not None else []
    if not any(paragraphs) and main is not None:  # prose in <div>/<br>, but not menus or link lists
        lines = (" ".join(line.split()) for line in main.get_text("\n").splitlines())
        paragraphs = [line for line in lines if len(line.split()) >= MIN_FALLBACK_WORDS]
    text = "\n".join(p for p in paragraphs if p)
    return Article(title=title, text=text, arabic_share=arabic_share(text), n_chars=len(text))


def extract_batch(batch, min_arabic_share: float = 0.0):
    """Ray Data ``map_batches`` step (``batch_format="pandas"``): raw page rows -> rows with the article.

    Adds ``title``, ``text``, ``arabic_share``, ``n_chars`` and ``extract_error``: null for a kept page,
    else ``"low_arabic: ..."`` (share below ``min_arabic_share``), ``"empty_text"`` or
    ``"extract_failed: ..."``. Rows are never dropped here, so the caller can route the ones with an
    ``extract_error`` to the failures table (stage ``extract``).

    Args:
        batch: a pandas DataFrame with at least ``html`` and ``url`` columns.
        min_arabic_share: pages whose text is less Arabic than this get ``extract_error``.
    """
    out = batch.copy()
    titles, texts, shares, sizes, errors = [], [], [], [], []
    for html, url in zip(out["html"], out["url"], strict=True):
        try:
            article = extract_article(html or "", url or "")
        except Exception as exc:  # one odd page must not fail the batch
            article, error = Article("", "", 0.0, 0), f"extract_failed: {type(exc).__name__}: {exc}"
        else:
            error = None
            if not article.text:
                error = "empty_text"
            elif article.arabic_share < min_arabic_share:
                error = f"low_arabic: share {article.arabic_share:.2f} < {min_arabic_share:.2f}"
        titles.append(article.title)
        texts.append(article.text)
        shares.append(article.arabic_share)
        sizes.append(article.n_chars)
        errors.append(error)
    out["title"] = titles
    out["text"] = texts
    out["arabic_share"] = shares
    out["n_chars"] = sizes
    out["extract_error"] = errors
    return out
