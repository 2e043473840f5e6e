"""Article extraction: decoded HTML -> :class:`Article` (the story's text and the page's metadata).

No network and no Ray here; :func:`extract_batch` is the pandas form Ray Data calls with ``map_batches``.

The text comes from trafilatura (a maintained main-text extractor, measured best of the open-source ones on
real Arabic news pages: see the README's table), with seqlab's Arabic rules around it:

1. **Joiners survive.** trafilatura drops every non-printable character, and the zero-width non-joiner
   (U+200C, written between the parts of one Persian or Urdu word: "اصلاح‌طلبان") is one: words ran
   together. ZWNJ and ZWJ (and their entities) are swapped for two printable placeholders before
   extraction and swapped back after it.
2. **A story, not a list of links.** Lines that are the text of a link on the page do not count as story
   text, and an extraction without one line of at least :data:`STORY_LINE_WORDS` story words "found no
   story" (headings and link titles are shorter). Index, tag and listing pages therefore come out empty
   (the pipeline records them as ``empty_text`` failures).
3. **The merge rule.** When trafilatura found no story, seqlab's own rules (:mod:`seqlab.data.heuristic`:
   ``<br>``-laid-out prose, the block with the most Arabic letters) are asked too, and their story is
   taken when they find one. trafilatura is not second-guessed when it found a story: taking the longer
   candidate every time was measured, and lost 0.33 F1 on a page whose related stories are plain text.
4. **The lead.** A news lead kept outside the article body (``class="article__lead"``, ``introtext``,
   ``standfirst``...) is put back in front of the text when there is exactly one such element, it is
   mostly Arabic-script prose (not a link, not a heading), it sits next to the extracted story and before
   it, and the text does not already hold it.

Metadata comes from the page itself: publication date (htmldate, through trafilatura), author (with Arabic
byline words such as "بقلم" removed), ``<link rel="canonical">`` and the language: the declared one (``<html
lang>``, ``Content-Language``, ``og:locale``) unless the text's script contradicts it (a page marked
``lang="en"`` whose article is Arabic is ``ar``; Persian letters make it ``fa``).

Bad pages never raise out of :func:`extract_batch`: a page too large to extract, a binary body served as
``text/html``, tags nested thousands deep with no story above libxml2's 256 levels, an extraction that
takes longer than :data:`EXTRACT_TIMEOUT_S`, or any exception of an extractor is one failure row with its
reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import re
import signal
import threading
from collections.abc import Iterator

from seqlab.data.decode import arabic_share, decode_html
from seqlab.data.heuristic import heuristic_text
from seqlab.data.scrape.links import canonical_url
from seqlab.text.normalize import arabic_letter_count

__all__ = [
    "EXTRACTOR",
    "Article",
    "ExtractError",
    "arabic_share",
    "decode_html",
    "extract_article",
    "extract_batch",
    "extractor_versions",
]

log = logging.getLogger(__name__)

EXTRACTOR = "trafilatura+seqlab"  # what the manifest records (with :func:`extractor_versions`)
STORY_LINE_WORDS = 8  # a story has a line (paragraph) of at least this many words that is no link's text
MIN_EXTRACTED_CHARS = 100  # trafilatura's own floor (MIN_EXTRACTED_SIZE) for a main-text result
MIN_LEAD_WORDS = 8  # a lead element holds at least this many words outside links
MAX_EXTRACT_CHARS = 8_000_000  # larger pages are a failure, not a worker's memory blown up
EXTRACT_TIMEOUT_S = 30.0  # one page's extraction may take this long (main thread only: SIGALRM)
BINARY_SHARE = 0.02  # more control/undecodable characters than this in a page's head: not text
_HEAD_CHARS = 65536
_MIN_BINARY_CHARS = 256  # a shorter page is judged by what it extracts to, not as a binary body

_ZWNJ, _ZWJ = "\u200c", "\u200d"
# Printable characters no Arabic-script page uses (Javanese signs); a page that holds one is left as is.
_ZWNJ_MARK, _ZWJ_MARK = "\ua9c1", "\ua9c2"
_ZWNJ_FORMS = re.compile(r"\u200c|&zwnj;|&#8204;|&#x200c;", re.IGNORECASE)
_ZWJ_FORMS = re.compile(r"\u200d|&zwj;|&#8205;|&#x200d;", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\ufffd]")
_TOKEN_SPLIT = re.compile(r"[-_\s]+")
_TITLE_SEPARATORS = re.compile(r"\s+(?:\||-|–|—|::|»|·)\s+")
_LEAD_WORDS = frozenset({"lead", "intro", "introtext", "standfirst", "summary", "excerpt", "abstract"})
_HEADINGS = "h1 h2 h3 h4 h5 h6".split()
# A byline's own words ("by", "written by"), not the author's name.
_BYLINE_WORDS = re.compile(
    r"^\s*(?:بقلم|كتب|كتبت|كتبه|بواسطة|إعداد|اعداد|تحرير|الكاتب|الكاتبة|المحرر|by)\s*[:：\-–]?\s*",
    re.IGNORECASE,
)
_ARABIC_SCRIPT_LANGS = frozenset({"ar", "fa", "ur", "ps", "ckb", "ku", "sd", "ug", "prs", "pnb", "ks", "bal"})
_PERSIAN_LETTERS = frozenset("پچژگکی")  # letters Persian writes and Arabic does not
_SCRIPT_SHARE = 0.5  # an article at least this Arabic-script is in an Arabic-script language


@dataclasses.dataclass(frozen=True)
class Article:
    """The readable part of a page and what the page says about itself.

    Attributes:
        title: page title without the site-name suffix ("" when none).
        text: the story's paragraphs, one per line ("" when the page holds none: index, listing, tag page).
        arabic_share: Arabic letters / all letters of ``text``.
        n_chars: ``len(text)``.
        published: publication date the page states (htmldate), or None.
        author: the byline's name(s), or None.
        canonical_url: the page's ``<link rel="canonical">`` target, or None.
        language: a BCP 47 primary language subtag (``ar``, ``fa``, ``en``...), or None when unknown.
        source: which candidate gave the text: ``trafilatura``, ``heuristic``, or ``""`` (none).
    """

    title: str
    text: str
    arabic_share: float
    n_chars: int
    published: dt.date | None = None
    author: str | None = None
    canonical_url: str | None = None
    language: str | None = None
    source: str = ""


class ExtractError(Exception):
    """A page that cannot be extracted; ``str()`` is the failure record's ``error`` text."""


def extractor_versions() -> dict[str, str]:
    """The versions of the extraction libraries, for manifests."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("trafilatura", "htmldate", "lxml", "beautifulsoup4"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[name] = "missing"
    return out


# ---------------------------------------------------------------------------------------------------------
# Guards


def _check_extractable(html: str) -> None:
    if len(html) > MAX_EXTRACT_CHARS:
        raise ExtractError(f"too_large_to_extract: {len(html)} characters > {MAX_EXTRACT_CHARS}")
    head = html[:_HEAD_CHARS]
    bad = len(_CONTROL.findall(head))
    if len(head) >= _MIN_BINARY_CHARS and bad > BINARY_SHARE * len(head):
        raise ExtractError(
            f"binary_content: {bad / len(head):.0%} of the page's first {len(head)} characters are control "
            "or undecodable characters (a binary body served as text/html?)"
        )


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`ExtractError` in the body after ``seconds`` (SIGALRM: main thread, no other user)."""
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    )
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise ExtractError(f"extract_timeout: extraction took longer than {seconds:g} s")

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


# ---------------------------------------------------------------------------------------------------------
# The page's own tree (lxml): link texts, title, declared language, lead


def _parse(html: str):
    """The page as an lxml tree (None: lxml refuses an empty document), and whether its tags nest deeper
    than libxml2's limit of 256 levels (lxml then cuts the tree there)."""
    import lxml.etree
    import lxml.html

    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, collect_ids=False)
    try:
        tree = lxml.html.fromstring(html.encode("utf-8", "surrogatepass"), parser=parser)
    except (lxml.etree.ParserError, ValueError):
        tree = None
    too_deep = any("Excessive depth" in entry.message for entry in parser.error_log)
    return tree, too_deep


def _words(text: str) -> str:
    return " ".join(text.split())


def _link_texts(tree) -> set[str]:
    return {t for a in tree.iter("a") if (t := _words(a.text_content()))} if tree is not None else set()


def story_words(text: str, link_texts: set[str]) -> int:
    """Words of ``text`` in lines that are not the text of a link on the page; 0 when no such line has
    :data:`STORY_LINE_WORDS` words (no story: headings, link titles)."""
    counts = [len(line.split()) for line in text.split("\n") if _words(line) not in link_texts]
    return sum(counts) if any(n >= STORY_LINE_WORDS for n in counts) else 0


def clean_title(raw: str) -> str:
    """Drop a " | Site name" part: split on the usual separators and keep the longest piece."""
    title = _words(raw)
    parts = [p for p in _TITLE_SEPARATORS.split(title) if p.strip()]
    return max(parts, key=len) if len(parts) > 1 else title


def _title(tree) -> str:
    """``og:title`` (without the site name), else the first ``<h1>``, else ``<title>`` (without it)."""
    if tree is None:
        return ""
    for meta in tree.iter("meta"):
        if meta.get("property") == "og:title" and (meta.get("content") or "").strip():
            return clean_title(meta.get("content"))
    for h1 in tree.iter("h1"):
        if text := _words(h1.text_content()):
            return text
    for title in tree.iter("title"):
        if text := _words(title.text_content()):
            return clean_title(text)
    return ""


def _declared_language(tree) -> str | None:
    if tree is None:
        return None
    root = tree.getroottree().getroot()
    candidates = [root.get("lang"), root.get("{http://www.w3.org/XML/1998/namespace}lang")]
    for meta in tree.iter("meta"):
        if (meta.get("http-equiv") or "").lower() == "content-language" or meta.get(
            "property"
        ) == "og:locale":
            candidates.append(meta.get("content"))
    for value in candidates:
        tag = re.split(r"[-_,;\s]", (value or "").strip().lower())[0]
        if tag.isalpha() and 2 <= len(tag) <= 3:
            return tag
    return None


def page_language(declared: str | None, text: str) -> str | None:
    """The language of the article: ``declared`` unless the text's script contradicts it.

    An article mostly in Arabic script keeps a declared Arabic-script language (``ar``, ``fa``, ``ur``...);
    any other declaration is wrong, and the text says ``fa`` when it uses Persian letters (پ چ ژ گ ک ی)
    for at least 2% of its Arabic letters, else ``ar``. Other text keeps the declaration.
    """
    if text and arabic_share(text) >= _SCRIPT_SHARE:
        if declared in _ARABIC_SCRIPT_LANGS:
            return declared
        persian = sum(ch in _PERSIAN_LETTERS for ch in text)
        return "fa" if persian >= 0.02 * max(arabic_letter_count(text), 1) else "ar"
    return declared


def _without_headline(text: str, tree, title: str) -> str:
    """``text`` without a first line that is the page's headline (an ``<h1>``/``<h2>`` inside the article:
    the story starts after it)."""
    first, _, rest = text.partition("\n")
    first = _words(first)
    if tree is None or not rest or not first:
        return text
    headlines = {title, *(_words(h.text_content()) for h in tree.iter("h1", "h2"))}
    return rest if first in headlines else text


def _lead(tree, text: str, link_texts: set[str]) -> str | None:
    """The one news lead the extraction left out (see the module docstring, rule 4), or None."""
    if tree is None or not text:
        return None
    first_line = _words(text.split("\n", 1)[0])[:80]
    flat = _words(text)
    found = []
    for el in tree.xpath("//*[@class or @id]"):
        tokens = set(_TOKEN_SPLIT.split(f"{el.get('class', '')} {el.get('id', '')}".lower()))
        if not tokens & _LEAD_WORDS or el.tag in _HEADINGS:
            continue
        if el.xpath("ancestor-or-self::a|ancestor::nav|ancestor::aside|ancestor::footer|.//h1|.//h2|.//h3"):
            continue
        lead = _words(el.text_content())
        if story_words(lead, link_texts) < MIN_LEAD_WORDS or arabic_share(lead) < _SCRIPT_SHARE:
            continue
        if any(el in other.iterdescendants() for other, _ in found):
            continue
        found.append((el, lead))
    if len(found) != 1:
        return None
    el, lead = found[0]
    if lead in flat:
        return None
    node = el.getparent()
    for _ in range(3):  # the lead and the story share a close ancestor
        if node is None:
            return None
        content = _words(node.text_content())
        at = content.find(first_line)
        if at >= 0:
            return lead if content.find(lead) < at else None  # and the lead comes first
        node = node.getparent()
    return None


# ---------------------------------------------------------------------------------------------------------
# Candidates


@functools.cache
def _trafilatura_config():
    from trafilatura.settings import use_config

    # trafilatura and htmldate log every page they cannot use at ERROR/WARNING; here such a page is a
    # failure row with its reason (extract_batch), so their loggers would only repeat it on stderr.
    for name in ("trafilatura", "htmldate"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    config = use_config()
    # trafilatura throws away a main-text result under 250 characters and falls back to taking the whole
    # <body>; a short Arabic news brief (40 words) is a story, not a failure.
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", str(MIN_EXTRACTED_CHARS))
    return config


def _trafilatura(html: str, url: str):
    """trafilatura's document for the page, with ZWNJ/ZWJ kept (rule 1), or None."""
    import trafilatura

    protect = _ZWNJ_MARK not in html and _ZWJ_MARK not in html
    source = _ZWJ_FORMS.sub(_ZWJ_MARK, _ZWNJ_FORMS.sub(_ZWNJ_MARK, html)) if protect else html
    doc = trafilatura.bare_extraction(
        source,
        url=url or None,
        include_comments=False,
        include_tables=False,
        with_metadata=True,
        deduplicate=False,
        config=_trafilatura_config(),
        # markup only: the extensive search's year-only guesses are vetted in _published
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    if doc is None or not protect:
        return doc
    for field in ("text", "title", "author"):
        value = getattr(doc, field, None)
        if isinstance(value, str):
            setattr(doc, field, value.replace(_ZWNJ_MARK, _ZWNJ).replace(_ZWJ_MARK, _ZWJ))
    return doc


def _published(html: str, doc) -> dt.date | None:
    """The page's publication date by htmldate: its markup-based search first (what trafilatura ran); then
    its extensive search, whose January 1st is a year seen somewhere (a URL, a copyright line) rather than a
    date, and is refused."""
    found = getattr(doc, "date", None)
    if not found:
        from htmldate import find_date

        found = find_date(html, extensive_search=True, original_date=True)
        if found and found.endswith("-01-01"):
            found = None
    try:
        return dt.date.fromisoformat(found) if found else None
    except ValueError:
        return None


def _author(doc) -> str | None:
    """The byline's names without byline words ("بقلم"), the site's own name, or URL debris."""
    value = getattr(doc, "author", None)
    if not value:
        return None
    value = value.split("http", 1)[0]  # an organisation's JSON-LD logo URL glued to its name
    site = " ".join(str(getattr(doc, key, None) or "") for key in ("sitename", "hostname")).lower()
    names = []
    for part in value.split(";"):
        name = _BYLINE_WORDS.sub("", part).strip()
        if len(name) >= 3 and name.lower() not in site and name not in names:
            names.append(name)
    return "; ".join(names) or None


def extract_article(html: str, url: str = "") -> Article:
    """The story and metadata of a decoded page (see the module docstring for the rules).

    Args:
        html: the decoded page (:func:`seqlab.data.decode.decode_html`).
        url: where it came from (relative canonical links resolve against it).

    Raises:
        ExtractError: the page is too large, binary, nested too deep with no story above the depth lxml
            reads, or its extraction ran out of time.
    """
    _check_extractable(html)
    with _time_limit(EXTRACT_TIMEOUT_S):
        tree, too_deep = _parse(html)
        links = _link_texts(tree)
        doc = _trafilatura(html, url) if tree is not None else None
        text, source = (doc.text or "") if doc is not None else "", "trafilatura"
        words = story_words(text, links)
        if not words and too_deep:  # BeautifulSoup's time grows with the square of the nesting depth
            raise ExtractError(
                "too_deeply_nested: tags nest deeper than 256 levels and no story was found above that depth"
            )
        if not words:  # rule 3: no story from trafilatura; ask seqlab's own rules
            other = heuristic_text(html)
            other_words = story_words(other, links)
            if other_words:
                text, words, source = other, other_words, "heuristic"
        title = _title(tree)
        if not words:
            text, source = "", ""
        else:
            text = _without_headline(text, tree, title)
            if source == "trafilatura" and (lead := _lead(tree, text, links)):
                text = f"{lead}\n{text}"
    return Article(
        title=title,
        text=text,
        arabic_share=arabic_share(text),
        n_chars=len(text),
        published=_published(html, doc) if text else None,
        author=_author(doc) if text else None,
        canonical_url=canonical_url(html, url) if url else None,
        language=page_language(_declared_language(tree), text),
        source=source,
    )


_EMPTY = Article("", "", 0.0, 0)


def extract_batch(batch, min_arabic_share: float = 0.0):
    """Ray Data ``map_batches`` step (``batch_format="pandas"``): raw page rows -> rows with the article.

    Adds ``title``, ``text``, ``arabic_share``, ``n_chars``, the metadata (``published``, ``author``,
    ``canonical_url``, ``language``), ``extractor`` (the candidate that gave the text) and
    ``extract_error``: null for a kept page, else ``"low_arabic: ..."`` (share below ``min_arabic_share``),
    ``"empty_text"`` (no story: an index or listing page), or the :class:`ExtractError` text
    (``too_large_to_extract``, ``binary_content``, ``too_deeply_nested``, ``extract_timeout``), or
    ``"extract_failed: ..."`` for
    any other exception. Rows are never dropped here, so the caller can route the ones with an
    ``extract_error`` to the failures table (stage ``extract``).

    Args:
        batch: a pandas DataFrame with at least ``html`` and ``url`` columns.
        min_arabic_share: pages whose text is less Arabic than this get ``extract_error``.
    """
    out = batch.copy()
    fields = [f.name for f in dataclasses.fields(Article)]
    columns: dict[str, list] = {name: [] for name in fields}
    errors = []
    for html, url in zip(out["html"], out["url"], strict=True):
        try:
            article = extract_article(html or "", url or "")
        except ExtractError as exc:
            article, error = _EMPTY, str(exc)
        except Exception as exc:  # one odd page must not fail the batch (RecursionError, MemoryError...)
            article, error = _EMPTY, f"extract_failed: {type(exc).__name__}: {exc}"[:500]
        else:
            error = None
            if not article.text:
                error = "empty_text"
            elif article.arabic_share < min_arabic_share:
                error = f"low_arabic: share {article.arabic_share:.2f} < {min_arabic_share:.2f}"
        if error and error != "empty_text":
            log.info("extracting %s failed: %s", url, error)
        for name in fields:
            columns[name].append(getattr(article, name))
        errors.append(error)
    for name in fields:
        out["extractor" if name == "source" else name] = columns[name]
    out["extract_error"] = errors
    return out
