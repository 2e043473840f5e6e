"""The local website: robots.txt, encodings, fault behaviours, and that ``expected`` tells the truth.

The site is crawled over real loopback HTTP with aiohttp; each URL's observed behaviour is classified
independently of the site's own bookkeeping and compared with ``site.expected``.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
import urllib.robotparser
from collections import Counter
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest
from bs4 import BeautifulSoup

from seqlab.synth import cli_site as site_cli
from seqlab.synth.config import SiteConfig
from seqlab.synth.corpus import article_url, generate_documents
from seqlab.synth.plan import ENCODINGS, OUTCOMES, SLOW_OK_DELAY_S, plan_site
from seqlab.synth.render import render_robots
from seqlab.synth.site import LocalSite

CONTENT = "article, div.post-body, div#content"
BOILERPLATE = "aside, .ad, .share, figure, nav"
ARABIC = re.compile(r"[\u0600-\u06FF]")


@pytest.fixture(scope="module")
def docs():
    return generate_documents(40, 1)


@pytest.fixture(scope="module")
def site(docs):
    with LocalSite(docs, port=0, seed=3) as running:
        yield running


def run(coro):
    return asyncio.run(coro)


async def fetch(url: str, timeout: float = 5.0, **kwargs) -> tuple[int, dict, bytes, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.get(url, allow_redirects=False, **kwargs) as resp:
            return resp.status, dict(resp.headers), await resp.read(), time.monotonic() - started


def decode(body: bytes, content_type: str) -> str:
    """What a careful scraper does: the <meta> charset wins over the header (servers lie), else UTF-8."""
    meta = re.search(rb'charset="?([\w-]+)', body[:1024])
    header = re.search(r"charset=([\w-]+)", content_type)
    codec = meta.group(1).decode() if meta else header.group(1) if header else "utf-8"
    return body.decode(codec)


def extract(text: str) -> tuple[str, str, str]:
    """(h1, story text per the site's contract, canonical URL) of an article page."""
    soup = BeautifulSoup(text, "html.parser")
    container = soup.select_one(CONTENT)
    for junk in container.select(BOILERPLATE):
        junk.decompose()
    story = " ".join(p.get_text() for p in container.find_all("p"))
    canonical = soup.find("link", rel="canonical")
    return soup.find("h1").get_text(), story, canonical["href"] if canonical else ""


async def observe(session: aiohttp.ClientSession, url: str, robots) -> tuple[str, list[str], dict]:
    """Classify one URL by what the server does; returns (outcome, links on the page, details)."""
    failures = []
    for _attempt in range(4):
        started = time.monotonic()
        try:
            async with session.get(url, allow_redirects=False) as resp:
                body = await resp.read()
                status, headers = resp.status, resp.headers
        except asyncio.TimeoutError:
            return "timeout", [], {}
        elapsed = time.monotonic() - started
        if status in (429, 500, 503):
            failures.append(status)
            if status != 500:
                assert headers["Retry-After"].isdigit()
            continue
        break
    else:
        assert set(failures) == {500}
        return "server_error", [], {}
    if status in (301, 302):
        return "redirect_ok", [urljoin(url, headers["Location"])], {}
    if status == 404:
        return "not_found", [], {}
    assert status == 200
    if not headers["Content-Type"].startswith("text/html"):
        return "non_html", [], {}
    text = decode(body, headers["Content-Type"])
    soup = BeautifulSoup(text, "html.parser")
    links = [urljoin(url, a["href"]) for a in soup.find_all("a", href=True)]
    details = {"text": text}
    if not robots.can_fetch("*", url):
        outcome = "robots_disallowed"
    elif failures:
        outcome = "retry_then_ok"
    elif soup.select_one(CONTENT) is None:
        outcome = "nav"
    else:
        _, story, canonical = extract(text)
        if canonical != url:
            outcome = "duplicate_content"
        elif len(ARABIC.findall(story)) < 0.3 * len(story.replace(" ", "")):
            outcome = "low_arabic"
        elif elapsed >= SLOW_OK_DELAY_S:
            outcome = "slow_ok"
        else:
            outcome = "ok"
    return outcome, links, details


async def crawl(site: LocalSite) -> dict[str, str]:
    """Breadth-first from the index over same-host links; URL -> observed outcome."""
    robots = urllib.robotparser.RobotFileParser()
    _, _, body, _ = await fetch(site.robots_url)
    robots.parse(body.decode().splitlines())
    host = urlsplit(site.root_url).netloc
    seen: dict[str, str] = {}
    frontier = [site.index_url]
    timeout = aiohttp.ClientTimeout(total=1.5)
    gate = asyncio.Semaphore(16)  # a bounded crawler: timeouts then measure the server, not our queue

    async def limited(coro):
        async with gate:
            return await coro

    async with aiohttp.ClientSession(timeout=timeout) as session:
        while frontier:
            results = await asyncio.gather(*(limited(observe(session, u, robots)) for u in frontier))
            nxt = []
            for url, (outcome, links, _) in zip(frontier, results, strict=True):
                seen[url] = outcome
                for link in links:
                    link = link.split("#", 1)[0]
                    if urlsplit(link).netloc == host and link not in seen and link not in nxt:
                        nxt.append(link)
            frontier = [u for u in nxt if u not in seen]
    return seen


# --- tests ----------------------------------------------------------------------------------------


def test_every_reachable_url_is_expected_and_behaves_as_expected(site):
    site.reset()
    observed = run(crawl(site))
    nav = {u for u, o in observed.items() if o == "nav"}
    assert nav == set(site.nav_urls)
    leaves = {u: o for u, o in observed.items() if o != "nav"}
    assert set(leaves) == set(site.expected), "expected must cover exactly what the index reaches"
    # A loaded machine can only make a page slower, never faster: an "ok" page seen as slow is noise,
    # while every "slow_ok" page must really take at least SLOW_OK_DELAY_S.
    wrong = {
        u: (o, site.expected[u])
        for u, o in leaves.items()
        if site.expected[u] != o and (site.expected[u], o) != ("ok", "slow_ok")
    }
    assert not wrong
    assert sum(o == "ok" for o in leaves.values()) > 0.8 * sum(e == "ok" for e in site.expected.values())
    assert set(site.expected.values()) == set(OUTCOMES)  # every fault kind is present


def test_robots_txt_disallows_private_and_sets_a_crawl_delay(site, docs):
    status, headers, body, _ = run(fetch(site.robots_url))
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(body.decode().splitlines())
    private = [u for u, o in site.expected.items() if o == "robots_disallowed"]
    assert private and all(not robots.can_fetch("seqlab", u) for u in private)
    assert robots.can_fetch("seqlab", article_url(docs[0], site.base_url))
    assert not robots.can_fetch("BadBot", site.index_url)
    assert robots.crawl_delay("seqlab") == 0
    assert "Crawl-delay: 2" in render_robots(plan_site(docs, SiteConfig(crawl_delay=2)))


@pytest.mark.parametrize("case", ENCODINGS)
def test_each_encoding_decodes_to_the_article_text(site, case):
    url = next(u for u, c in site.encodings.items() if c == case and site.expected[u] == "ok")
    doc = site.doc_by_url[url]
    status, headers, body, _ = run(fetch(url))
    assert status == 200
    content_type = headers["Content-Type"]
    head = body[:1024].lower()
    if case == "utf-8":
        assert content_type == "text/html; charset=utf-8" and b'charset="utf-8"' in head
    elif case == "windows-1256":
        assert content_type == "text/html; charset=windows-1256" and b"charset" not in head
    elif case == "windows-1256-meta":
        assert content_type == "text/html" and b'<meta charset="windows-1256">' in head
    elif case == "windows-1256-wrong-header":
        assert "iso-8859-1" in content_type and b"charset=windows-1256" in head
        latin = body.decode("iso-8859-1")  # believing the header gives mojibake
        assert not ARABIC.search(latin)
    else:
        assert content_type == "text/html" and b"charset" not in head
    codec = "cp1256" if case.startswith("windows-1256") else "utf-8"
    with pytest.raises(UnicodeDecodeError) if codec == "cp1256" else _nullcontext():
        body.decode("utf-8")  # windows-1256 bytes are not valid UTF-8: decoding must be chosen
    title, story, canonical = extract(body.decode(codec))
    assert (title, story, canonical) == (doc.title, doc.text, url)
    assert html.unescape(story) == story  # no double escaping


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_fault_pages(site):
    site.reset()
    by = {o: [u for u, e in site.expected.items() if e == o] for o in OUTCOMES}
    assert run(fetch(by["not_found"][0]))[0] == 404
    assert run(fetch(site.base_url + "/no/such/page.html"))[0] == 404
    assert [run(fetch(by["server_error"][0]))[0] for _ in range(3)] == [500, 500, 500]

    status, headers, _, _ = run(fetch(by["redirect_ok"][0]))
    assert (
        status in (301, 302) and site.root_url + headers["Location"] == site.redirects[by["redirect_ok"][0]]
    )
    assert site.redirects[by["redirect_ok"][0]] in site.expected

    kinds = {run(fetch(u))[1]["Content-Type"].split(";")[0] for u in by["non_html"]}
    assert kinds == {"application/pdf", "image/jpeg"}

    with pytest.raises(asyncio.TimeoutError):
        run(fetch(by["timeout"][0], timeout=0.3))
    elapsed = run(fetch(by["slow_ok"][0]))[3]
    assert SLOW_OK_DELAY_S <= elapsed < 2.0


def test_retry_counter_lives_in_the_app_and_reset_restarts_it(site):
    site.reset()
    url = next(u for u, o in site.expected.items() if o == "retry_then_ok")
    statuses = []
    for _ in range(4):
        status, headers, _, _ = run(fetch(url))
        statuses.append(status)
        if status in (429, 503):
            assert int(headers["Retry-After"]) >= 1
        if status == 200:
            break
    assert statuses[-1] == 200 and 1 <= len(statuses) - 1 <= 2
    assert all(s in (429, 500, 503) for s in statuses[:-1])
    assert run(fetch(url))[0] == 200  # stays healthy
    assert site.hits[url] == len(statuses) + 1
    site.reset()
    assert run(fetch(url))[0] == statuses[0] and site.hits[url] == 1


def test_html_has_real_boilerplate_and_varied_layouts(site, docs):
    responses = [run(fetch(article_url(d, site.base_url))) for d in docs[:3]]
    pages = [decode(body, headers["Content-Type"]) for _, headers, body, _ in responses]
    for text in pages:
        for marker in ("<nav", "<header", "<footer", 'class="ad', "<aside", "<script>", "<style>", "cookie"):
            assert marker in text
    containers = {BeautifulSoup(t, "html.parser").select_one(CONTENT).name for t in pages}
    assert containers == {"article", "div"}
    assert "post-body" in pages[1] and 'id="content"' in pages[2]


def test_stop_releases_a_hanging_request_quickly(docs):
    site = LocalSite(docs[:12], port=0).start()
    url = next(u for u, o in site.expected.items() if o == "timeout")

    async def hang_then_stop():
        request = asyncio.ensure_future(fetch(url, timeout=20))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await asyncio.to_thread(site.stop)
        stopped_in = time.monotonic() - started
        try:
            await request
        except aiohttp.ClientError:
            pass
        return stopped_in

    assert run(hang_then_stop()) < 3.0
    with pytest.raises(aiohttp.ClientError):
        run(fetch(url, timeout=1))  # the port is closed


def test_clean_site_for_benchmarks_with_latency(docs):
    with LocalSite(docs[:10], faults=False, latency_s=0.15) as site:
        assert set(site.expected.values()) == {"ok"}
        assert set(site.expected) == set(site.article_urls)
        assert set(site.encodings.values()) == {"utf-8"}
        status, _, _, elapsed = run(fetch(site.article_urls[0]))
        assert status == 200 and elapsed >= 0.15
        assert "/private/" not in run(fetch(site.index_url))[2].decode("utf-8")


def test_base_path_prefixes_every_page_but_robots(docs):
    with LocalSite(docs[:10], base_path="/news") as site:
        assert site.base_url.endswith("/news")
        assert all(urlsplit(u).path.startswith("/news/") for u in site.expected)
        assert run(fetch(site.index_url))[0] == 200
        assert run(fetch(article_url(docs[0], site.base_url)))[0] == 200
        assert run(fetch(site.root_url + f"/articles/{docs[0].slug}.html"))[0] == 404
        assert "Disallow: /news/private/" in run(fetch(site.robots_url))[2].decode()


def test_plan_is_deterministic_per_seed(docs):
    def summary(plan):
        return {p: (pg.outcome, pg.encoding) for p, pg in plan.pages.items()}

    assert summary(plan_site(docs, SiteConfig(seed=5))) == summary(plan_site(docs, SiteConfig(seed=5)))
    assert summary(plan_site(docs, SiteConfig(seed=5))) != summary(plan_site(docs, SiteConfig(seed=6)))
    counts = Counter(pg.outcome for pg in plan_site(docs, SiteConfig(seed=5)).pages.values())
    assert counts["ok"] >= 30


def test_site_cli_serves_until_interrupted(monkeypatch, capsys):
    def interrupt(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(site_cli.time, "sleep", interrupt)
    from seqlab.cli import main

    assert main(["site", "--n-docs", "15", "--port", "0", "--latency-ms", "5", "--no-faults"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"http://127\.0\.0\.1:\d+/", out) and "ok 15" in out


def test_site_cli_port_in_use_or_bad_host_is_one_line(capsys):
    import socket

    from seqlab.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["site", "--n-docs", "5", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "in use" in err and "Traceback" not in err
    assert main(["site", "--n-docs", "5", "--port", "0", "--host", "no-such-host.invalid"]) == 2
    assert "could not start on no-such-host.invalid" in capsys.readouterr().err
