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
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from seqlab.synth.config import SiteConfig
from seqlab.synth.corpus import Document, article_url
from seqlab.synth.plan import PAGE_SIZE, RETRY_AFTER_S, Page, SitePlan, plan_site
from seqlab.synth.render import (
    encoding_case,
    page_footer,
    page_head,
    page_header,
    render_amp,
    render_article,
    render_index,
    render_robots,
    render_section,
)

log = logging.getLogger(__name__)


@dataclass
class SiteState:
    """Mutable per-app state: request counts (for retry faults and for tests) and the stop signal."""

    hits: Counter = field(default_factory=Counter)
    attempts: Counter = field(default_factory=Counter)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    rendered: dict[tuple[str, str], bytes] = field(default_factory=dict)


PLAN_KEY = web.AppKey("seqlab_site_plan", SitePlan)
STATE_KEY = web.AppKey("seqlab_site_state", SiteState)


def _error_page(plan: SitePlan, status: int, message: str) -> web.Response:
    text = (
        page_head(message, '<meta charset="utf-8">')
        + page_header(plan)
        + f"<main><h1>{message}</h1></main>"
        + page_footer(plan)
    )
    return web.Response(status=status, body=text.encode("utf-8"), content_type="text/html", charset="utf-8")


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
        codec = encoding_case(page.encoding)[0]
        state.rendered[key] = text.encode(codec, errors="xmlcharrefreplace")
    return web.Response(body=state.rendered[key], headers={"Content-Type": encoding_case(page.encoding)[1]})


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


def build_site_app(docs: Sequence[Document], config: SiteConfig | None = None) -> web.Application:
    """The aiohttp application of the local site serving ``docs`` (e.g. ``generate_documents(200)``).

    ``app[PLAN_KEY]`` is the :class:`SitePlan`, ``app[STATE_KEY]`` the request counters.
    """
    config = config or SiteConfig()
    plan = plan_site(docs, config)
    latency_s = config.latency_s
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
        config: SiteConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **site: Any,
    ) -> None:
        """``config`` or, for short, its fields as keywords (``LocalSite(docs, faults=False, latency_s=0.2)``)."""
        if config is not None and site:
            raise TypeError("give either a SiteConfig or its fields as keywords, not both")
        self.config = config or SiteConfig(**site)
        self.docs = list(docs)
        self.host = host
        self.port = port
        self.app = build_site_app(self.docs, self.config)
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
