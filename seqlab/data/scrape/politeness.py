"""How long to wait before the next request to an origin (``scheme://host:port``). No network.

Per origin (:class:`_Host`): a semaphore of ``per_host_concurrency`` requests in flight, a minimum spacing
of ``delay_s`` between request starts (raised by a robots.txt Crawl-delay) and Retry-After pauses that
hold back every request to it. Between the attempts of one URL: the server's Retry-After
(:func:`parse_retry_after`) or exponential backoff with jitter (:func:`backoff_delay_s`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import random

from seqlab.data.scrape.links import url_origin


class _Host:
    """Politeness state of one origin: in-flight slots, start spacing, Retry-After pauses."""

    def __init__(self, concurrency: int, delay_s: float):
        self.slots = asyncio.Semaphore(concurrency)
        self.delay_s = delay_s
        self.next_start = 0.0
        self.paused_until = 0.0

    async def turn(self) -> None:
        """Wait until a request may start: after any pause and ``delay_s`` after the previous start."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self.paused_until > now:
                await asyncio.sleep(self.paused_until - now)
                continue
            start = max(now, self.next_start)
            self.next_start = start + self.delay_s  # reserve the slot before sleeping (no await in between)
            if start > now:
                await asyncio.sleep(start - now)
            if self.paused_until <= loop.time():
                return

    def pause(self, seconds: float) -> None:
        """Nobody starts a request here for ``seconds`` (Retry-After)."""
        self.paused_until = max(self.paused_until, asyncio.get_running_loop().time() + seconds)


class Hosts:
    """The :class:`_Host` of each origin a crawl talks to, made on first use."""

    def __init__(self, concurrency: int, delay_s: float):
        self.concurrency = concurrency
        self.delay_s = delay_s
        self.by_origin: dict[str, _Host] = {}

    def for_url(self, url: str) -> _Host:
        """The politeness state of a normalized URL's origin."""
        origin = url_origin(url)
        host = self.by_origin.get(origin)
        if host is None:
            host = self.by_origin[origin] = _Host(self.concurrency, self.delay_s)
        return host


def parse_retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), capped; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = (when - dt.datetime.now(dt.timezone.utc)).total_seconds()
    return min(max(seconds, 0.0), cap)


def backoff_delay_s(attempt: int, backoff_s: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) when the server named no time:
    exponential backoff with "equal jitter", half fixed, half random."""
    base = min(backoff_s * 2 ** (attempt - 1), cap)
    return base / 2 + rng.uniform(0, base / 2)
