"""The local site's plan: every page it serves and what a scraper should conclude from each (pure,
deterministic for a seed; no aiohttp). :mod:`seqlab.synth.render` turns pages into HTML and
:mod:`seqlab.synth.site` serves them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from seqlab.synth.config import SiteConfig
from seqlab.synth.corpus import Document

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
READ_MORE = "اقرأ المزيد"  # the text of every article link when SiteConfig.link_titles is off
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
ENGLISH_SENTENCES = (
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
STYLE = "body{font-family:Tahoma,sans-serif;margin:0}.ad{background:#eee;padding:8px}nav ul{display:flex}"


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
    link_titles: bool = True  # False: article links say READ_MORE instead of the title

    def add(self, path: str, page: Page) -> None:
        if path in self.pages:
            raise ValueError(f"duplicate site path {path}")
        self.pages[path] = page


def plan_site(docs: Sequence[Document], config: SiteConfig | None = None) -> SitePlan:
    """Decide every page of the site (pure; deterministic for ``config.seed``)."""
    config = config or SiteConfig()
    base, faults, encodings, seed = config.base_path, config.faults, config.serves_encodings, config.seed
    rng = random.Random(seed)
    plan = SitePlan(base_path=base, crawl_delay=config.crawl_delay, link_titles=config.link_titles)
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
