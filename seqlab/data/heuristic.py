"""seqlab's own main-text rules (BeautifulSoup): the second opinion :mod:`seqlab.data.extract` asks for
when the maintained extractor finds no story. Pure: no network, no Ray.

They read what a general extractor may skip on Arabic pages: prose laid out with ``<br>`` instead of
``<p>``, and a block picked by its Arabic letters rather than by markup conventions. Index and listing
pages (short link titles) come out empty.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Tag

from seqlab.text.normalize import arabic_letter_count

__all__ = ["MIN_FALLBACK_WORDS", "heuristic_text"]

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


def heuristic_text(html: str) -> str:
    """The main text of a page by seqlab's own rules, one paragraph per line ("" when none).

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
    """
    soup = BeautifulSoup(html, "html.parser")
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
    return "\n".join(p for p in paragraphs if p)
