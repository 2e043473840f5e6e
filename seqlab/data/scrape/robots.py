"""robots.txt: fetched once per origin (through the crawl's own fetcher and session) and obeyed.

Parsing is stdlib ``urllib.robotparser``: it knows no ``*``/``$`` path wildcards and only whole-second
Crawl-delay. A Crawl-delay larger than ``delay_s`` raises the origin's spacing (:mod:`.politeness`).

robots.txt outcomes: 2xx -> obeyed; 4xx -> allow all (RFC 9309: "unavailable"); 5xx after the retries ->
disallow all (RFC 9309: "unreachable" - the server says it is in trouble, so we stay away);
timeouts/connection errors after the retries -> allow all (the pages' own fetches will then fail and be
recorded, rather than every URL being written off as disallowed).

No aiohttp here: the HTTP is the :class:`~seqlab.data.scrape.fetch.Fetcher` it is given. The ``Sitemap:``
lines of a robots.txt are kept for the crawler's discovery (:meth:`Robots.sitemaps`).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.robotparser

from seqlab.data.scrape.fetch import Fetcher
from seqlab.data.scrape.links import url_origin
from seqlab.data.scrape.politeness import Hosts

log = logging.getLogger(__name__)


class Robots:
    """The robots.txt verdicts of one crawl, one fetch per origin however many workers ask at once."""

    def __init__(self, user_agent: str, obey: bool, hosts: Hosts, fetcher: Fetcher):
        self.user_agent = user_agent
        self.obey = obey
        self.hosts = hosts
        self.fetcher = fetcher
        self.tasks: dict[str, asyncio.Task[urllib.robotparser.RobotFileParser]] = {}

    async def allowed(self, url: str) -> bool:
        """Whether robots.txt lets ``url`` be fetched (always, when robots are not obeyed)."""
        if not self.obey:
            return True
        return (await self.parser(url)).can_fetch(self.user_agent, url)

    async def parser(self, url: str) -> urllib.robotparser.RobotFileParser:
        """The parsed robots.txt of ``url``'s origin, fetched once however many workers ask at once."""
        origin = url_origin(url)
        task = self.tasks.get(origin)
        if task is None:
            task = self.tasks[origin] = asyncio.create_task(self.load(url))
        return task.result() if task.done() else await asyncio.shield(task)

    async def load(self, url: str) -> urllib.robotparser.RobotFileParser:
        """Fetch and parse the robots.txt of ``url``'s origin (see the module docstring for outcomes)."""
        robots_url = url_origin(url) + "/robots.txt"
        parser = urllib.robotparser.RobotFileParser(robots_url)
        out = await self.fetcher.fetch(robots_url, kind="robots")
        if out.error is None:
            parser.parse((out.body or b"").decode("utf-8", errors="replace").splitlines())
            delay = parser.crawl_delay(self.user_agent)
            if delay is not None:
                host = self.hosts.for_url(url)
                host.delay_s = max(host.delay_s, float(delay))
        elif out.status is not None and out.status >= 500:
            log.warning("%s answers %s: treating the host as disallowed", robots_url, out.status)
            parser.disallow_all = True
        else:
            log.info("%s unavailable (%s): allowing all", robots_url, out.error)
            parser.allow_all = True
        return parser

    async def sitemaps(self, url: str) -> list[str]:
        """The ``Sitemap:`` URLs of the robots.txt of ``url``'s origin (fetched once, as for :meth:`allowed`)."""
        return list((await self.parser(url)).site_maps() or ())

    def cancel_pending(self) -> None:
        """Cancel robots.txt fetches still running (the crawl is over)."""
        for task in self.tasks.values():
            if not task.done():
                task.cancel()
