"""A crawl of the real local site (seqlab.synth.site) with every fault on: each URL the site knows ends
in exactly one place with the outcome the site expects, and the extractor recovers each story."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from seqlab.data.config import SourcesConfig
from seqlab.data.extract import extract_article
from seqlab.data.scrape import MemorySink, crawl, failure_reason, normalize_url
from seqlab.synth.corpus import generate_documents
from seqlab.synth.site import LocalSite

pytestmark = pytest.mark.slow  # ~5 s: the site's hanging URL costs 1 + retries request timeouts

MIN_ARABIC_SHARE = SourcesConfig().min_arabic_share
RETRIES = 2  # the site fails a retry_then_ok URL at most twice
OK_OUTCOMES = {"ok", "retry_then_ok", "slow_ok", "redirect_ok", "low_arabic"}  # low_arabic: dropped later
FAILURE_REASON = {
    "robots_disallowed": "robots_disallowed",
    "not_found": "http_404",
    "server_error": "http_500",
    "timeout": "timeout",
    "non_html": "non_html",
    "duplicate_content": "duplicate_content",
}


@pytest.fixture(scope="module")
def crawled():
    docs = generate_documents(100, seed=0)
    with LocalSite(docs, port=0, faults=True, seed=0) as site:
        sources = SourcesConfig(
            seeds=[site.index_url],
            delay_s=0.0,
            per_host_concurrency=8,
            request_timeout_s=1.5,  # the site's slow_ok pages take 0.6 s, its hanging page 30 s
            retries=RETRIES,
            backoff_s=0.05,
            max_retry_after_s=0.3,  # the site asks for 1 s; capped to keep the test short
            max_depth=4,
        )
        sink = MemorySink()
        stats = asyncio.run(crawl(sources, sink=sink))
        yield site, sink, stats


def test_every_expected_url_ends_in_exactly_one_place(crawled):
    site, sink, stats = crawled
    records = sink.outcome_by_url()  # raises if any URL was recorded twice
    pages = {p["url"]: p for p in sink.pages}
    by_final = {p["final_url"]: p for p in sink.pages}
    failures = {f["url"]: f for f in sink.failures}
    assert len(by_final) == len(sink.pages)  # no two records of one final page

    expected = site.expected
    assert set(expected.values()) == {
        "ok", "robots_disallowed", "not_found", "server_error", "retry_then_ok", "slow_ok", "timeout",
        "redirect_ok", "non_html", "low_arabic", "duplicate_content",
    }  # fmt: skip
    seen: Counter[str] = Counter()
    for url, outcome in expected.items():
        key = normalize_url(url)
        if key != url:  # e.g. "?ref=related": one URL after normalization, deduplicated before any fetch
            assert outcome == "duplicate_content", url
            assert key in expected and key in records
            seen["merged_by_url"] += 1
            continue
        if outcome in OK_OUTCOMES:
            if key in pages:
                seen["page"] += 1
            elif outcome == "ok":  # claimed by a redirect to it: stored once, under the redirect's record
                assert key in by_final and by_final[key]["url"] in site.redirects, url
                seen["page_via_redirect"] += 1
            else:  # a redirect to an article crawled under its own URL: stored there
                assert outcome == "redirect_ok", url
                assert failures[key]["error"] == f"duplicate_content of {site.redirects[url]}"
                assert site.redirects[url] in pages
                seen["redirect_to_known_page"] += 1
        else:
            assert failure_reason(failures[key]["error"]) == FAILURE_REASON[outcome], (url, failures.get(key))
            seen["failure"] += 1
    assert sum(seen.values()) == len(expected)

    # nothing else was recorded but the navigation pages
    known = {normalize_url(u) for u in expected} | {normalize_url(u) for u in site.nav_urls}
    assert set(records) <= known
    assert stats.ok == len(sink.pages) and stats.failed == len(sink.failures)


def test_politeness_and_attempts(crawled):
    site, sink, _ = crawled
    hits = site.hits
    for url, outcome in site.expected.items():
        if outcome == "robots_disallowed":
            assert hits[url] == 0, url
    assert hits[site.robots_url] == 1
    failures = {f["url"]: f for f in sink.failures}
    pages = {p["url"]: p for p in sink.pages}
    for url, outcome in site.expected.items():
        if outcome == "server_error":
            assert failures[url]["attempts"] == 1 + RETRIES and hits[url] == 1 + RETRIES
        elif outcome == "timeout":
            assert failures[url]["attempts"] == 1 + RETRIES
        elif outcome == "retry_then_ok":
            assert pages[url]["attempts"] >= 2
        elif outcome == "non_html":
            assert failures[url]["error"].startswith("non_html: ") and failures[url]["attempts"] == 1


def test_encodings_are_decoded_and_stories_extracted(crawled):
    site, sink, _ = crawled
    docs = site.doc_by_url
    encodings = site.encodings
    checked: Counter[str] = Counter()
    for page in sink.pages:
        case = encodings.get(page["final_url"])
        if case is None:
            continue  # a navigation page
        assert page["encoding"] == ("windows-1256" if case.startswith("windows-1256") else "utf-8"), page[
            "url"
        ]
        article = extract_article(page["html"], page["final_url"])
        doc = docs.get(page["final_url"])
        if doc is None:  # the English edition
            assert article.arabic_share < MIN_ARABIC_SHARE
            checked["english"] += 1
            continue
        assert article.title == doc.title
        assert " ".join(article.text.split()) == " ".join(doc.text.split()), page["url"]
        assert article.arabic_share >= MIN_ARABIC_SHARE  # kept (stories carry some Latin terms, URLs)
        checked[case] += 1
    assert set(checked) >= {"utf-8", "windows-1256", "windows-1256-meta", "windows-1256-wrong-header"}
    assert {"utf-8-no-charset", "english"} <= set(checked)
