"""HTTP with aiohttp: one URL's fetch, with retries, hand-followed redirects and the host's politeness.

:meth:`Fetcher.fetch` ends in one :class:`Outcome`: a body, or an ``error`` text (see
:mod:`.failures`). Timeouts, connection errors, 408, 429 and 5xx are retried (``retryable``) up to
``retries`` times, after the server's Retry-After on 429/503 (which pauses the whole origin) or after an
exponential backoff with jitter. Redirects are followed by hand so that a caller's ``check_redirect`` can
refuse a target before it is requested. Error bodies, non-HTML bodies and bodies over ``max_bytes`` are not
downloaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Literal

import aiohttp

from seqlab.data.config import SourcesConfig
from seqlab.data.scrape.discover import MAX_LIST_BYTES
from seqlab.data.scrape.politeness import Hosts, backoff_delay_s, parse_retry_after
from seqlab.data.urls import normalize_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10  # hops followed per attempt; more -> failure "too_many_redirects"
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB of robots.txt
# What is fetched: a page (HTML only, up to max_bytes), a robots.txt (any type, its first
# ROBOTS_MAX_BYTES kept), a sitemap or feed ("list": any type, up to the sitemap protocol's 50 MB).
FetchKind = Literal["page", "robots", "list"]
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHUNK = 64 * 1024


@dataclasses.dataclass
class Outcome:
    """The end of one fetch attempt (a redirect chain) or of all of them."""

    final_url: str
    status: int | None = None
    content_type: str | None = None
    body: bytes | None = None
    error: str | None = None
    stage: str = "fetch"
    retryable: bool = False
    retry_after: float | None = None
    attempts: int = 0


# Called with (redirect target, redirect status) before the target is requested: an outcome ends the
# fetch there (offsite, disallowed, already crawled), None follows the redirect.
RedirectCheck = Callable[[str, int | None], Awaitable[Outcome | None]]


class Fetcher:
    """Fetches URLs through one aiohttp session under the politeness of :class:`Hosts`."""

    def __init__(self, sources: SourcesConfig, session: aiohttp.ClientSession, hosts: Hosts):
        self.cfg = sources
        self.session = session
        self.hosts = hosts
        self.timeout = aiohttp.ClientTimeout(total=sources.request_timeout_s)
        self.headers = {"User-Agent": sources.user_agent}
        self.rng = random.Random()

    async def fetch(
        self, url: str, kind: FetchKind = "page", check_redirect: RedirectCheck | None = None
    ) -> Outcome:
        """Fetch with retries; the outcome's ``attempts`` counts them.

        ``kind`` says what is fetched (:data:`FetchKind`): which content types are taken and how much.
        ``check_redirect`` vets each redirect target (none: every target is followed).
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                out = await self.follow(url, kind, check_redirect)
            except (TimeoutError, asyncio.TimeoutError):  # total/connect timeouts (distinct types on 3.10)
                out = Outcome(url, error="timeout", retryable=True)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                out = Outcome(url, error=f"connection_error: {type(exc).__name__}: {exc}", retryable=True)
            except aiohttp.ClientError as exc:
                out = Outcome(url, error=f"client_error: {type(exc).__name__}: {exc}")
            if not out.retryable or attempt > self.cfg.retries:
                out.attempts = attempt
                return out
            if out.retry_after is not None:
                wait = out.retry_after
                self.hosts.for_url(out.final_url).pause(wait)
            else:
                wait = backoff_delay_s(attempt, self.cfg.backoff_s, self.cfg.max_retry_after_s, self.rng)
            log.debug("retrying %s in %.2fs after %s", url, wait, out.error)
            await asyncio.sleep(wait)

    async def follow(self, url: str, kind: FetchKind, check_redirect: RedirectCheck | None) -> Outcome:
        """One attempt: request ``url`` and follow redirects by hand, so that an off-site, disallowed or
        already crawled target is never requested."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            out, location = await self.request(current, kind)
            if location is None:
                return out
            target = normalize_url(location, current)
            if target is None:
                return Outcome(current, status=out.status, error=f"bad_redirect: {location}")
            if check_redirect is not None:
                refused = await check_redirect(target, out.status)
                if refused is not None:
                    return refused
            current = target
        return Outcome(current, error="too_many_redirects")

    async def request(self, url: str, kind: FetchKind) -> tuple[Outcome, str | None]:
        """One HTTP request under the host's politeness; returns the outcome and a redirect Location."""
        host = self.hosts.for_url(url)
        async with host.slots:
            await host.turn()
            async with self.session.get(
                url, allow_redirects=False, timeout=self.timeout, headers=self.headers
            ) as resp:
                status = resp.status
                ctype = resp.headers.get("Content-Type")
                if 300 <= status < 400 and resp.headers.get("Location"):
                    return Outcome(url, status=status), resp.headers["Location"]
                if status >= 400 or status < 200:
                    retry_after = None
                    if status in (429, 503):
                        retry_after = parse_retry_after(
                            resp.headers.get("Retry-After"), self.cfg.max_retry_after_s
                        )
                    retryable = status in (408, 429) or status >= 500
                    resp.close()  # do not download an error body
                    return Outcome(
                        url,
                        status=status,
                        error=f"http_{status}",
                        retryable=retryable,
                        retry_after=retry_after,
                    ), None
                mime = (ctype or "").split(";")[0].strip().lower()
                if kind == "page" and mime and mime not in _HTML_TYPES:
                    resp.close()  # abandon the body unread
                    return Outcome(url, status=status, content_type=ctype, error=f"non_html: {mime}"), None
                limit = {"robots": ROBOTS_MAX_BYTES, "list": MAX_LIST_BYTES}.get(kind, self.cfg.max_bytes)
                if kind != "robots" and (resp.content_length or 0) > limit:
                    resp.close()
                    return Outcome(
                        url, status=status, content_type=ctype, error=f"too_large: > {limit} bytes"
                    ), None
                body = bytearray()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        resp.close()
                        if kind == "robots":  # parse the first 512 KiB, as RFC 9309 allows
                            return Outcome(url, status=status, body=bytes(body[:limit])), None
                        return Outcome(
                            url, status=status, content_type=ctype, error=f"too_large: > {limit} bytes"
                        ), None
                return Outcome(url, status=status, content_type=ctype, body=bytes(body)), None


def new_session(sources: SourcesConfig) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        # Our semaphores bound concurrency; the connector must not add a lower global cap.
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": sources.user_agent},
        trust_env=False,
    )
