"""A local news website built from generated documents, served on loopback (demo, tests, benchmarks).

Pages look like a real Arabic news site: ``<nav>`` menus, header, footer, a cookie banner, ads
(``div.ad``), ``<aside>`` related lists, inline ``<script>``/``<style>``, share buttons, and the story in
one of three layouts (``<article>``, ``div.post-body`` or ``div#content``), so an extractor cannot rely on
one tag. Structure (every path below is prefixed by ``base_path``)::

    /robots.txt                 Disallow: <base_path>/private/ and a Crawl-delay line (always at the root)
    /                           index: sections menu, latest articles, "most read" (redirects),
                                "exclusive" (robots-disallowed), downloads (PDF/JPEG), English edition
    /section/<theme>.html       paginated list (?page=2, ...) of the theme's articles, plus stale links
    /articles/<slug>.html       one document; related links to other articles (absolute URLs)

**Article text contract.** The story's text is the text of the ``<p>`` elements inside the content
container (``article`` / ``div.post-body`` / ``div#content``), leaving out anything inside ``aside``,
``.ad``, ``.share``, ``figure`` and ``nav``, joined by a space: that equals ``Document.text``. The title is
the ``<h1>`` (``Document.title``); ``<link rel="canonical">`` names the canonical URL.

**Encodings** (per canonical article, recorded in :attr:`LocalSite.encodings`): ``utf-8`` (header and
meta), ``windows-1256`` (header only), ``windows-1256-meta`` (header ``text/html`` without charset, charset
in ``<meta>``), ``windows-1256-wrong-header`` (header says ``iso-8859-1``, the ``<meta>`` is right; the
common misconfigured server) and ``utf-8-no-charset`` (no charset anywhere). Characters windows-1256 lacks
(e.g. Arabic-Indic digits) are sent as ``&#NNNN;`` references, as browsers do.

**Expected outcomes** (:attr:`LocalSite.expected`, for every URL reachable from the index except the
navigation pages in :attr:`LocalSite.nav_urls`): see :data:`OUTCOMES`. Faults are on when ``faults=True``;
with ``faults=False`` the site serves only the index, sections and clean UTF-8 articles (benchmarks).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import logging
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

from seqlab.data.corpus import Document, article_url

log = logging.getLogger(__name__)

OUTCOMES = (
    "ok",  # 200 text/html, Arabic article at its canonical URL
    "robots_disallowed",  # under /private/, disallowed by robots.txt (serves an article if fetched anyway)
    "not_found",  # 404
    "server_error",  # 500 on every attempt
    "retry_then_ok",  # 503 + Retry-After / 429 + Retry-After / 500, at most MAX_RETRY_FAILURES times, then 200
    "slow_ok",  # 200 after SLOW_OK_DELAY_S (below a 2 s timeout)
    "timeout",  # hangs TIMEOUT_DELAY_S (or until the site stops)
    "redirect_ok",  # 301/302 to an article's canonical URL
    "non_html",  # application/pdf or image/jpeg
    "low_arabic",  # an English-only article page
    "duplicate_content",  # an article under a second URL (?ref=related or /amp/...), canonical link set
)
ENCODINGS = ("utf-8", "windows-1256", "windows-1256-meta", "windows-1256-wrong-header", "utf-8-no-charset")
SLOW_OK_DELAY_S = 0.6
TIMEOUT_DELAY_S = 30.0
RETRY_AFTER_S = 1  # the Retry-After header of 503/429 answers, in seconds
MAX_RETRY_FAILURES = 2  # a retry_then_ok URL fails 1 or 2 times before it succeeds
PAGE_SIZE = 20  # articles per section page
SITE_NAME = "الشبكة اليومية"
SECTION_NAMES = {
    "technology": "تقنية",
    "sport": "رياضة",
    "cooking": "مطبخ",
    "travel": "سفر",
    "health": "صحة",
    "economy": "اقتصاد",
    "history": "تاريخ",
}
# Share of canonical articles served in each non-UTF-8 encoding case when encodings are on.
NON_UTF8_SHARE = 0.3

# Authored filler for fault pages (titles of stale links, an English edition).
_EXTRA_TITLES = (
    "تقرير خاص عن مستقبل المدن الذكية",
    "حوار مطول مع مدير مركز الأبحاث",
    "ملف العدد: كيف تغيرت عاداتنا اليومية",
    "قراءة في أرقام الربع الأخير",
    "جولة مصورة في معرض الكتاب",
    "رسالة من المحرر إلى القراء",
)
_ENGLISH_SENTENCES = (
    "The city council approved a new budget for public libraries on Tuesday evening.",
    "Engineers say the bridge repairs will be finished before the rainy season begins.",
    "A local bakery has started delivering bread to elderly residents free of charge.",
    "Researchers are collecting old photographs to document how the harbour has changed.",
    "The weekend market will move to the central square while the old hall is renovated.",
    "Volunteers planted more than two thousand trees along the river this spring.",
)
_PDF_BYTES = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
_JPEG_BYTES = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
)
_STYLE = "body{font-family:Tahoma,sans-serif;margin:0}.ad{background:#eee;padding:8px}nav ul{display:flex}"


@dataclass
class Page:
    """One servable URL (internal): what to answer and what a scraper should conclude."""

    kind: str  # index | section | article | amp | english | redirect | not_found | server_error | binary
    outcome: str | None = None  # None for navigation pages
    doc: Document | None = None
    theme: str = ""
    page_no: int = 1
    encoding: str = "utf-8"
    layout: int = 0
    canonical: str = ""  # path of the canonical URL (articles)
    delay_s: float = 0.0
    fail_statuses: tuple[int, ...] = ()
    target: str = ""  # redirect target path
    status: int = 200  # redirect status
    body: bytes = b""
    content_type: str = ""
    title: str = ""


@dataclass
class SitePlan:
    """Every page of the site by ``path_qs``, plus the links the index and sections show."""

    base_path: str
    pages: dict[str, Page] = field(default_factory=dict)
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # theme -> (path, title)
    index_blocks: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # block -> (path, title)
    related: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # article path -> links
    crawl_delay: float = 0.0

    def add(self, path: str, page: Page) -> None:
        if path in self.pages:
            raise ValueError(f"duplicate site path {path}")
        self.pages[path] = page


@dataclass
class SiteState:
    """Mutable per-app state: request counts (for retry faults and for tests) and the stop signal."""

    hits: Counter = field(default_factory=Counter)
    attempts: Counter = field(default_factory=Counter)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    rendered: dict[tuple[str, str], bytes] = field(default_factory=dict)


PLAN_KEY = web.AppKey("seqlab_site_plan", SitePlan)
STATE_KEY = web.AppKey("seqlab_site_state", SiteState)


def plan_site(
    docs: Sequence[Document],
    *,
    base_path: str = "",
    faults: bool = True,
    encodings: bool | None = None,
    seed: int = 0,
    crawl_delay: float = 0.0,
) -> SitePlan:
    """Decide every page of the site (pure; deterministic for ``seed``)."""
    base = base_path.rstrip("/")
    if base and not base.startswith("/"):
        raise ValueError(f"base_path must start with '/', got {base_path!r}")
    encodings = faults if encodings is None else encodings
    rng = random.Random(seed)
    plan = SitePlan(base_path=base, crawl_delay=crawl_delay)
    docs = list(docs)
    paths = [f"{base}/articles/{d.slug}.html" for d in docs]
    if len(set(paths)) != len(paths):
        raise ValueError("documents must have unique slugs")

    plan.add(f"{base}/", Page(kind="index"))
    # Canonical articles: all "ok" first; faults and encodings are assigned below.
    for i, (doc, path) in enumerate(zip(docs, paths, strict=True)):
        plan.add(path, Page(kind="article", outcome="ok", doc=doc, layout=i % 3, canonical=path))

    order = list(range(len(docs)))
    rng.shuffle(order)
    pool = iter(order)  # doc indices not yet given a special role

    def take(k: int) -> list[int]:
        return list(itertools.islice(pool, k))

    n = len(docs)
    if faults:
        for j, i in enumerate(take(max(1, n // 50))):
            page = plan.pages[paths[i]]
            page.outcome = "retry_then_ok"
            statuses = (503, 429, 500)
            page.fail_statuses = tuple(statuses[(j + k) % 3] for k in range(1 + j % MAX_RETRY_FAILURES))
        for i in take(max(1, n // 100)):
            plan.pages[paths[i]].outcome = "slow_ok"
            plan.pages[paths[i]].delay_s = SLOW_OK_DELAY_S
    clean = take(n)  # the remaining docs keep outcome "ok"
    if encodings:
        special = ENCODINGS[1:]
        for j, i in enumerate(clean):
            if j < len(special):  # every case appears at least once
                case = special[j]
            else:
                case = rng.choice(special) if rng.random() < NON_UTF8_SHARE else "utf-8"
            plan.pages[paths[i]].encoding = case

    # Sections: each theme's articles in document order.
    for doc, path in zip(docs, paths, strict=True):
        plan.sections.setdefault(doc.theme, []).append((path, doc.title))
    plan.index_blocks["latest"] = [(paths[i], docs[i].title) for i in range(min(8, n))]

    # Related links: the next three articles of the same theme.
    for links in plan.sections.values():
        for k, (path, _) in enumerate(links):
            plan.related[path] = [links[(k + d) % len(links)] for d in (1, 2, 3) if len(links) > 1][:3]

    if faults and n:
        _add_fault_pages(plan, docs, paths, clean, rng)
    return plan


def _add_fault_pages(plan: SitePlan, docs, paths, clean: list[int], rng: random.Random) -> None:
    base = plan.base_path
    n = len(docs)
    extra = 2 + n // 300
    lenders = clean or list(range(n))
    cycle = itertools.cycle(lenders)  # clean docs lend their content to redirects, duplicates, private pages

    plan.index_blocks["most_read"] = []
    for j in range(max(1, n // 50)):
        i = next(cycle)
        path = f"{base}/go/{docs[i].doc_id}"
        if path in plan.pages:  # tiny sites: fewer lenders than fault pages
            continue
        plan.add(
            path, Page(kind="redirect", outcome="redirect_ok", target=paths[i], status=(301, 302)[j % 2])
        )
        plan.index_blocks["most_read"].append((path, docs[i].title))

    for j in range(max(1, n // 50)):
        i = next(cycle)
        doc, canonical = docs[i], paths[i]
        encoding = plan.pages[canonical].encoding
        if j % 2 == 0:  # linked from another article's related list, as "?ref=related"
            path = f"{canonical}?ref=related"
            if path in plan.pages:
                continue
            plan.add(
                path,
                Page(
                    kind="article",
                    outcome="duplicate_content",
                    doc=doc,
                    encoding=encoding,
                    layout=plan.pages[canonical].layout,
                    canonical=canonical,
                ),
            )
            host = paths[lenders[(lenders.index(i) + 1) % len(lenders)]]
            plan.related.setdefault(host, []).append((path, doc.title))
        else:  # the light "AMP" edition, linked from the article's own toolbar
            path = f"{base}/amp/articles/{doc.slug}.html"
            if path in plan.pages:
                continue
            plan.add(path, Page(kind="amp", outcome="duplicate_content", doc=doc, canonical=canonical))
            plan.related.setdefault(canonical, []).append((path, "نسخة مخففة"))

    plan.index_blocks["exclusive"] = []
    for j in range(extra):
        i = next(cycle)
        path = f"{base}/private/{docs[i].slug}.html"
        if path in plan.pages:
            continue
        plan.add(
            path, Page(kind="article", outcome="robots_disallowed", doc=docs[i], layout=j % 3, canonical=path)
        )
        plan.index_blocks["exclusive"].append((path, "حصري: " + docs[i].title))

    plan.index_blocks["downloads"] = []
    for j in range(extra):
        if j % 2 == 0:
            path, page = (
                f"{base}/files/report-{j}.pdf",
                Page(kind="binary", outcome="non_html", body=_PDF_BYTES, content_type="application/pdf"),
            )
        else:
            path, page = (
                f"{base}/images/photo-{j}.jpg",
                Page(kind="binary", outcome="non_html", body=_JPEG_BYTES, content_type="image/jpeg"),
            )
        plan.add(path, page)
        plan.index_blocks["downloads"].append((path, f"تحميل الملف {j + 1}"))

    plan.index_blocks["english"] = []
    for j in range(extra):
        path = f"{base}/articles/english-{j}.html"
        plan.add(
            path,
            Page(
                kind="english",
                outcome="low_arabic",
                layout=j % 3,
                canonical=path,
                title=f"City news, part {j + 1}",
            ),
        )
        plan.index_blocks["english"].append((path, f"City news, part {j + 1}"))

    # Stale and broken links hide among the section listings.
    themes = sorted(plan.sections)
    stale = [
        ("removed", "not_found", extra),
        ("broken", "server_error", extra),
        ("stalled", "timeout", 1 + n // 1000),
    ]
    k = 0
    for stem, outcome, count in stale:
        for j in range(count):
            path = f"{base}/articles/{stem}-{j}.html"
            kind = {"not_found": "not_found", "server_error": "server_error", "timeout": "article"}[outcome]
            page = Page(kind=kind, outcome=outcome, title=_EXTRA_TITLES[k % len(_EXTRA_TITLES)])
            if outcome == "timeout":
                page.doc, page.canonical, page.delay_s = docs[lenders[0]], path, TIMEOUT_DELAY_S
            plan.add(path, page)
            listing = plan.sections[themes[k % len(themes)]]
            listing.insert(rng.randrange(len(listing) + 1), (path, page.title))
            k += 1


# --- rendering ------------------------------------------------------------------------------------


def _a(href: str, text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<a href="{html.escape(href)}"{attr}>{html.escape(text)}</a>'


def _head(title: str, charset_meta: str, canonical_url: str = "") -> str:
    canonical = f'<link rel="canonical" href="{html.escape(canonical_url)}">' if canonical_url else ""
    return (
        f'<!DOCTYPE html>\n<html lang="ar" dir="rtl">\n<head>{charset_meta}'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} | {SITE_NAME}</title>{canonical}"
        f"<style>{_STYLE}</style>"
        "<script>window.dataLayer = window.dataLayer || []; dataLayer.push({'page': 'view'});</script>"
        "</head>\n"
    )


def _header(plan: SitePlan) -> str:
    base = plan.base_path
    items = "".join(
        f"<li>{_a(f'{base}/section/{t}.html', SECTION_NAMES.get(t, t))}</li>" for t in sorted(plan.sections)
    )
    return (
        f'<body>\n<div class="cookie-banner" id="cookie"><p>نستخدم ملفات تعريف الارتباط لتحسين تجربتك '
        f'في التصفح.</p><button type="button">موافق</button></div>\n'
        f'<header class="site-header"><div class="logo">{_a(f"{base}/", SITE_NAME)}</div>'
        f'<nav class="main-nav"><ul><li>{_a(f"{base}/", "الرئيسية")}</li>{items}</ul></nav></header>\n'
        '<div class="ad ad-top"><a href="https://ads.example.net/click?slot=top" rel="nofollow">'
        '<img src="https://ads.example.net/banner.png" alt="إعلان"></a></div>\n'
    )


def _footer(plan: SitePlan) -> str:
    return (
        f'<footer class="site-footer"><p>© 2024 {SITE_NAME}. جميع الحقوق محفوظة.</p>'
        f'<ul><li><a href="#about">من نحن</a></li><li><a href="#contact">اتصل بنا</a></li>'
        f"<li>{_a(f'{plan.base_path}/', 'الصفحة الرئيسية')}</li></ul></footer>\n"
        "<script>document.querySelector('#cookie button').onclick = function () "
        "{ document.getElementById('cookie').remove(); };</script>\n</body>\n</html>\n"
    )


def _share(url: str) -> str:
    return (
        '<div class="share"><span>شارك:</span>'
        f"{_a('https://twitter.com/intent/tweet?url=' + url, 'تويتر')}"
        f"{_a('https://www.facebook.com/sharer/sharer.php?u=' + url, 'فيسبوك')}"
        f"{_a('whatsapp://send?text=' + url, 'واتساب')}</div>"
    )


def _paragraphs(sentences: Sequence[str], key: str) -> list[str]:
    rng = random.Random(key)
    out, k = [], 0
    while k < len(sentences):
        step = rng.randint(1, 3)
        out.append(" ".join(sentences[k : k + step]))
        k += step
    return out


def render_index(plan: SitePlan) -> str:
    """The home page."""
    titles = {
        "latest": "آخر الأخبار",
        "most_read": "الأكثر قراءة",
        "exclusive": "حصري للمشتركين",
        "downloads": "ملفات للتحميل",
        "english": "English edition",
    }
    blocks = "".join(
        f'<section class="block block-{name}"><h2>{titles[name]}</h2><ul>'
        + "".join(f"<li>{_a(path, title)}</li>" for path, title in links)
        + "</ul></section>\n"
        for name, links in plan.index_blocks.items()
        if links
    )
    sections = "".join(
        f"<li>{_a(f'{plan.base_path}/section/{t}.html', SECTION_NAMES.get(t, t))}</li>"
        for t in sorted(plan.sections)
    )
    return (
        _head("الرئيسية", '<meta charset="utf-8">')
        + _header(plan)
        + f'<main class="home"><h1>{SITE_NAME}</h1>{blocks}'
        + f'<aside class="sections"><h2>الأقسام</h2><ul>{sections}</ul></aside></main>\n'
        + _footer(plan)
    )


def render_section(plan: SitePlan, theme: str, page_no: int) -> str:
    """One page of a section listing (relative links to the articles)."""
    links = plan.sections[theme]
    pages = max(1, -(-len(links) // PAGE_SIZE))
    chunk = links[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]
    # Relative hrefs ("../articles/x.html") so a crawler must resolve them against the page URL.
    items = "".join(f"<li>{_a('..' + path[len(plan.base_path) :], title)}</li>" for path, title in chunk)
    here = f"{plan.base_path}/section/{theme}.html"
    pager = []
    for k in range(1, pages + 1):
        href = here if k == 1 else f"{here}?page={k}"
        pager.append(f"<span>{k}</span>" if k == page_no else _a(href, str(k)))
    if page_no < pages:
        pager.append(_a(f"{here}?page={page_no + 1}", "التالي", cls="next"))
    name = SECTION_NAMES.get(theme, theme)
    return (
        _head(f"{name} - صفحة {page_no}", '<meta charset="utf-8">')
        + _header(plan)
        + f'<main class="section"><h1>{html.escape(name)}</h1><ul class="list">{items}</ul>'
        + f'<nav class="pager">{"".join(pager)}</nav></main>\n'
        + _footer(plan)
    )


def _charset(encoding: str) -> tuple[str, str, str]:
    """(codec, Content-Type header, meta tag) of an encoding case."""
    return {
        "utf-8": ("utf-8", "text/html; charset=utf-8", '<meta charset="utf-8">'),
        "windows-1256": ("cp1256", "text/html; charset=windows-1256", ""),
        "windows-1256-meta": ("cp1256", "text/html", '<meta charset="windows-1256">'),
        "windows-1256-wrong-header": (
            "cp1256",
            "text/html; charset=iso-8859-1",
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1256">',
        ),
        "utf-8-no-charset": ("utf-8", "text/html", ""),
    }[encoding]


def render_article(plan: SitePlan, page: Page, root: str) -> str:
    """An article page in one of three layouts (``root`` = scheme://host for absolute links)."""
    if page.kind == "english":
        title, sentences = page.title, _ENGLISH_SENTENCES
    else:
        assert page.doc is not None
        title, sentences = page.doc.title, page.doc.sentences
        if page.outcome == "robots_disallowed":
            title = "حصري: " + title
    canonical_url = root + page.canonical
    paragraphs = _paragraphs(sentences, page.canonical)
    body = []
    for k, para in enumerate(paragraphs):
        body.append(f"<p>{html.escape(para)}</p>")
        if k == 0 and len(paragraphs) > 2:
            body.append(
                '<div class="ad ad-inline"><span>إعلان</span><a href="https://ads.example.net/'
                'click?slot=inline" rel="nofollow">اشترك الآن بنصف السعر</a></div>'
            )
        if k == 1 and page.layout == 0:
            body.append(
                '<figure><img src="https://cdn.example.net/img/cover.jpg" alt="">'
                "<figcaption>صورة توضيحية من الأرشيف</figcaption></figure>"
            )
    related_links = plan.related.get(page.canonical, [])
    related = (
        '<aside class="related"><h3>اقرأ أيضا</h3><ul>'
        + "".join(
            f"<li>{_a(root + path if path.startswith('/') else path, t)}</li>" for path, t in related_links
        )
        + "</ul></aside>"
    )
    byline = '<div class="byline"><span>بقلم: فريق التحرير</span> <time datetime="2024-01-01">١ يناير ٢٠٢٤</time></div>'
    paras = "".join(body)
    escaped_title = html.escape(title)
    if page.layout == 0:
        main = (
            f'<main><article class="story"><h1>{escaped_title}</h1>{byline}{paras}</article>'
            f"{_share(canonical_url)}{related}</main>"
        )
    elif page.layout == 1:
        main = (
            f'<main><h1 class="headline">{escaped_title}</h1>{byline}<div class="post-body">{paras}'
            f"</div>{_share(canonical_url)}{related}</main>"
        )
    else:
        main = (
            f'<div id="content"><h1>{escaped_title}</h1>{byline}{paras}{_share(canonical_url)}{related}</div>'
        )
    _, _, meta = _charset(page.encoding)
    return _head(title, meta, canonical_url) + _header(plan) + main + "\n" + _footer(plan)


def render_amp(plan: SitePlan, page: Page, root: str) -> str:
    """The light edition of an article: a different template, the same story, canonical link set."""
    assert page.doc is not None
    paras = "".join(f"<p>{html.escape(p)}</p>" for p in _paragraphs(page.doc.sentences, page.canonical))
    return (
        '<!DOCTYPE html>\n<html amp lang="ar" dir="rtl"><head><meta charset="utf-8">'
        f'<title>{html.escape(page.doc.title)}</title><link rel="canonical" href="{root}{page.canonical}">'
        "<style amp-custom>body{margin:0}</style></head>\n<body>"
        f"<header>{_a(f'{plan.base_path}/', SITE_NAME)}</header>"
        f"<article><h1>{html.escape(page.doc.title)}</h1>{paras}</article></body></html>\n"
    )


def _error_page(plan: SitePlan, status: int, message: str) -> web.Response:
    text = (
        _head(message, '<meta charset="utf-8">')
        + _header(plan)
        + f"<main><h1>{message}</h1></main>"
        + _footer(plan)
    )
    return web.Response(status=status, body=text.encode("utf-8"), content_type="text/html", charset="utf-8")


def render_robots(plan: SitePlan) -> str:
    """robots.txt: everyone may crawl except ``/private/``; a bad bot is shut out entirely."""
    delay = int(plan.crawl_delay) if float(plan.crawl_delay).is_integer() else plan.crawl_delay
    return (
        "# robots.txt of the seqlab local site\n"
        "User-agent: BadBot\nDisallow: /\n\n"
        f"User-agent: *\nDisallow: {plan.base_path}/private/\nCrawl-delay: {delay}\n"
    )


# --- the aiohttp application ---------------------------------------------------------------------


async def _wait_or_stop(state: SiteState, seconds: float) -> bool:
    """Sleep ``seconds`` unless the site is stopping; True when it slept the whole time."""
    try:
        await asyncio.wait_for(state.stopping.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        return True
    return False


async def _handle(request: web.Request) -> web.StreamResponse:
    plan, state = request.app[PLAN_KEY], request.app[STATE_KEY]
    state.hits[request.path_qs] += 1
    if request.path == "/robots.txt":
        return web.Response(text=render_robots(plan), content_type="text/plain")
    page = plan.pages.get(request.path_qs) or plan.pages.get(request.path)
    if page is None:
        page = _section_page(plan, request)
    if page is None:
        return _error_page(plan, 404, "الصفحة غير موجودة")

    if page.kind == "not_found":
        return _error_page(plan, 404, "الصفحة غير موجودة")
    if page.kind == "server_error":
        return _error_page(plan, 500, "خطأ داخلي في الخادم")
    if page.kind == "redirect":
        raise (web.HTTPMovedPermanently if page.status == 301 else web.HTTPFound)(location=page.target)
    if page.kind == "binary":
        return web.Response(body=page.body, content_type=page.content_type)
    if page.fail_statuses:
        attempt = state.attempts[request.path]
        state.attempts[request.path] += 1
        if attempt < len(page.fail_statuses):
            status = page.fail_statuses[attempt]
            resp = _error_page(plan, status, "الخدمة غير متاحة مؤقتا")
            if status in (429, 503):
                resp.headers["Retry-After"] = str(RETRY_AFTER_S)
            return resp
    if page.delay_s and not await _wait_or_stop(state, page.delay_s):
        return _error_page(plan, 503, "الخادم يتوقف")

    root = f"{request.scheme}://{request.host}"
    if page.kind in ("index", "section"):
        key = (request.path_qs, root)
        if key not in state.rendered:
            text = (
                render_index(plan) if page.kind == "index" else render_section(plan, page.theme, page.page_no)
            )
            state.rendered[key] = text.encode("utf-8")
        return web.Response(body=state.rendered[key], headers={"Content-Type": "text/html; charset=utf-8"})
    key = (request.path_qs, root)
    if key not in state.rendered:
        text = render_amp(plan, page, root) if page.kind == "amp" else render_article(plan, page, root)
        codec = _charset(page.encoding)[0]
        state.rendered[key] = text.encode(codec, errors="xmlcharrefreplace")
    return web.Response(body=state.rendered[key], headers={"Content-Type": _charset(page.encoding)[1]})


def _section_page(plan: SitePlan, request: web.Request) -> Page | None:
    prefix = f"{plan.base_path}/section/"
    if not (request.path.startswith(prefix) and request.path.endswith(".html")):
        return None
    theme = request.path[len(prefix) : -len(".html")]
    if theme not in plan.sections:
        return None
    raw = request.query.get("page", "1")
    if not raw.isdigit():
        return None
    page_no = int(raw)
    pages = max(1, -(-len(plan.sections[theme]) // PAGE_SIZE))
    if not 1 <= page_no <= pages or (page_no == 1 and "page" in request.query):
        return None  # ?page=1 is not a URL the site links to
    return Page(kind="section", theme=theme, page_no=page_no)


def section_paths(plan: SitePlan) -> list[str]:
    """Every section page path (``?page=k`` for k >= 2), as the site links them."""
    out = []
    for theme, links in sorted(plan.sections.items()):
        here = f"{plan.base_path}/section/{theme}.html"
        pages = max(1, -(-len(links) // PAGE_SIZE))
        out += [here] + [f"{here}?page={k}" for k in range(2, pages + 1)]
    return out


def build_site_app(
    docs: Sequence[Document],
    *,
    base_path: str = "",
    latency_s: float = 0.0,
    faults: bool = True,
    encodings: bool | None = None,
    seed: int = 0,
    crawl_delay: float = 0.0,
) -> web.Application:
    """The aiohttp application of the local site.

    Args:
        docs: the articles (e.g. ``generate_documents(200)``).
        base_path: a prefix for every page (``"/news"``); robots.txt stays at the root.
        latency_s: extra delay added to every response (the scrape benchmark's "network").
        faults: serve the fault pages (see :data:`OUTCOMES`); False serves only index, sections, articles.
        encodings: serve windows-1256 and charset-less variants (default: same as ``faults``).
        seed: which articles get which fault/encoding.
        crawl_delay: the robots.txt ``Crawl-delay`` value in seconds.

    ``app[PLAN_KEY]`` is the :class:`SitePlan`, ``app[STATE_KEY]`` the request counters.
    """
    plan = plan_site(
        docs, base_path=base_path, faults=faults, encodings=encodings, seed=seed, crawl_delay=crawl_delay
    )
    middlewares = []
    if latency_s > 0:

        @web.middleware
        async def add_latency(request: web.Request, handler):
            await asyncio.sleep(latency_s)
            return await handler(request)

        middlewares.append(add_latency)
    app = web.Application(middlewares=middlewares)
    app[PLAN_KEY] = plan
    app[STATE_KEY] = SiteState()
    app.router.add_get("/{tail:.*}", _handle)  # GET and HEAD
    return app


class SiteStartError(RuntimeError):
    """The local site could not bind its address (port in use, unknown host, no permission)."""


class LocalSite:
    """The local site running in a background thread with its own event loop.

    Example::

        with LocalSite(generate_documents(100), port=0) as site:
            print(site.base_url, len(site.expected))
    """

    def __init__(
        self,
        docs: Sequence[Document],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        base_path: str = "",
        latency_s: float = 0.0,
        faults: bool = True,
        encodings: bool | None = None,
        seed: int = 0,
        crawl_delay: float = 0.0,
    ) -> None:
        self.docs = list(docs)
        self.host = host
        self.port = port
        self.app = build_site_app(
            self.docs,
            base_path=base_path,
            latency_s=latency_s,
            faults=faults,
            encodings=encodings,
            seed=seed,
            crawl_delay=crawl_delay,
        )
        self.plan = self.app[PLAN_KEY]
        self._state = self.app[STATE_KEY]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._memos: dict[tuple[str, int], dict] = {}

    # -- lifecycle --
    def start(self) -> LocalSite:
        """Start serving (returns once the port is bound); idempotent."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []
        loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
            await self._runner.setup()
            tcp = web.TCPSite(self._runner, self.host, self.port)
            await tcp.start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # reported to start()'s caller
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="seqlab-local-site", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = self._loop = None
            error = errors[0]
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise SiteStartError(
                f"the local site could not start on {self.host}:{self.port}: {reason}"
            ) from None
        log.info("local site serving %d articles at %s", len(self.docs), self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving: hanging requests are released, the port is closed, the thread ends."""
        if self._thread is None or self._loop is None:
            return
        loop, runner = self._loop, self._runner

        async def shutdown() -> None:
            self._state.stopping.set()
            if runner is not None:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=30)
        self._thread = self._loop = self._runner = None
        self._state.stopping = asyncio.Event()

    def __enter__(self) -> LocalSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget request counts: retry_then_ok URLs fail again from the start."""
        self._state.attempts.clear()
        self._state.hits.clear()

    # -- addresses --
    @property
    def root_url(self) -> str:
        """``http://host:port`` (robots.txt lives here)."""
        if not self.port:
            raise RuntimeError("the site has no port yet: call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Root URL plus ``base_path``: ``article_url(doc, site.base_url)`` is a doc's canonical URL."""
        return self.root_url + self.plan.base_path

    @property
    def index_url(self) -> str:
        return self.base_url + "/"

    @property
    def robots_url(self) -> str:
        return self.root_url + "/robots.txt"

    # -- what a scraper should find --
    def _memo(self, name: str, build):
        # The plan never changes; only the port (known after start) enters the URLs.
        key = (name, self.port)
        if key not in self._memos:
            self._memos[key] = build()
        return self._memos[key]

    @property
    def expected(self) -> dict[str, str]:
        """URL -> expected scraper outcome, for every non-navigation URL reachable from the index.

        Treat the returned dicts (here and below) as read-only: they are cached.
        """
        return self._memo(
            "expected",
            lambda: {self.root_url + p: page.outcome for p, page in self.plan.pages.items() if page.outcome},
        )

    @property
    def nav_urls(self) -> list[str]:
        """The index and every section page (navigation only, no article)."""
        return [self.index_url] + [self.root_url + p for p in section_paths(self.plan)]

    @property
    def encodings(self) -> dict[str, str]:
        """Article URL -> encoding case (see :data:`ENCODINGS`) for every HTML article page."""
        return self._memo(
            "encodings",
            lambda: {
                self.root_url + p: page.encoding
                for p, page in self.plan.pages.items()
                if page.kind in ("article", "amp", "english")
            },
        )

    @property
    def doc_by_url(self) -> dict[str, Document]:
        """URL -> the document whose story it serves (articles, duplicates, private pages, redirects)."""

        def build() -> dict[str, Document]:
            out = {}
            for p, page in self.plan.pages.items():
                target = self.plan.pages.get(page.target) if page.kind == "redirect" else page
                if target is not None and target.doc is not None and page.outcome != "timeout":
                    out[self.root_url + p] = target.doc
            return out

        return self._memo("doc_by_url", build)

    @property
    def redirects(self) -> dict[str, str]:
        """Redirecting URL -> the canonical URL it points to."""
        return {
            self.root_url + p: self.root_url + page.target
            for p, page in self.plan.pages.items()
            if page.kind == "redirect"
        }

    @property
    def article_urls(self) -> list[str]:
        """The canonical URL of every document, in document order."""
        return [article_url(d, self.base_url) for d in self.docs]

    @property
    def hits(self) -> Counter:
        """Requests served so far, by full URL (robots.txt included)."""
        return Counter({self.root_url + p: n for p, n in self._state.hits.items()})
