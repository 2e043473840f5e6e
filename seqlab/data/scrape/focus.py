"""Focused crawling (Chakrabarti et al., 1999): a trained relevance scorer orders the crawl frontier.

Without focus the frontier is breadth-first (a link's rank is its depth). With a :class:`FocusScorer` a
link's rank comes from what the crawler knows before fetching it, its :func:`link_contexts` text (title
attribute, anchor text, the page text around it), blended with the score of the page that links to it::

    priority = (1 - blend) * score(context) + blend * score(linking page)        # in [0, 10]
    rank     = 1 + (10 - priority)                                               # in [1, 11], lower first

so seeds (rank 0 = depth 0) and sitemaps/feeds (rank -1) keep their place ahead of every scored link. The
scorer runs in a thread, batched across the crawl workers waiting on it (one ``predict`` call for all the
pages finished meanwhile), with a cache of link texts (a site's menus repeat on every page): the event
loop keeps fetching while it runs. Nothing here imports torch until :func:`load_focus` is called.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from seqlab.data.config import FocusConfig
from seqlab.data.scrape.links import visible_text

__all__ = ["UNSCORED_RANK", "FocusScorer", "check_focus_scorer", "load_focus", "page_text", "rank_of"]

log = logging.getLogger(__name__)

MAX_PAGE_CHARS = 600  # of a page's visible text scored: its lead says the topic, and is cheap to score
CACHE_SIZE = 100_000  # link texts remembered with their score (cleared whole when full)
_BOILERPLATE = re.compile(
    r"<(script|style|head|nav|header|footer|noscript|template)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL
)


def rank_of(priority: float) -> float:
    """Queue rank of a priority in [0, 10] (clipped): 1 for the best link, 11 for the worst."""
    return 1.0 + (10.0 - min(10.0, max(0.0, priority)))


UNSCORED_RANK = rank_of(5.0)  # a resumed link no record scored (the earlier run had no focus): the middle


def page_text(html: str) -> str:
    """The visible text of a page without head, scripts, menus, header and footer (at most
    :data:`MAX_PAGE_CHARS` characters): what the page score is computed on."""
    return visible_text(_BOILERPLATE.sub(" ", html))[:MAX_PAGE_CHARS]


class FocusScorer:
    """Scores a fetched page and the links it shows, batched across callers, off the event loop.

    Args:
        predict: texts -> scores in [0, 10] (``Scorer.predict``); called in a worker thread.
        blend: weight of the linking page's score in a link's priority.
        threshold: a page scored at least this counts as relevant (the harvest rate).
    """

    def __init__(
        self, predict: Callable[[list[str]], Sequence[float]], blend: float = 0.3, threshold: float = 5.0
    ):
        self.predict = predict
        self.blend = blend
        self.threshold = threshold
        self.cache: dict[str, float] = {}
        self._pending: list[tuple[list[str], asyncio.Future[list[float]]]] = []
        self._draining = False
        self.batches = 0  # predict calls so far (for tests and benchmarks)

    async def rate(self, html: str, contexts: Sequence[str]) -> tuple[float, list[float]]:
        """``(page score, rank of each link)`` for a fetched page and its links' texts; a link whose text is
        ``""`` (nothing known of it) is ranked by the page's score alone."""
        known = {c: self.cache[c] for c in contexts if c in self.cache}
        unknown = list(dict.fromkeys(c for c in contexts if c and c not in known))
        scores = await self._score([page_text(html), *unknown])
        page = scores[0]
        fresh = dict(zip(unknown, scores[1:], strict=True))
        if len(self.cache) + len(fresh) > CACHE_SIZE:
            self.cache.clear()
        self.cache.update(fresh)
        known.update(fresh)
        blend = self.blend
        return page, [rank_of((1 - blend) * known[c] + blend * page if c else page) for c in contexts]

    async def _score(self, texts: list[str]) -> list[float]:
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        self._pending.append((texts, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Run ``predict`` on everything pending, again and again until nothing is (one batch per call)."""
        try:
            await asyncio.sleep(0)  # let the workers that are ready now add their pages to this batch
            while self._pending:
                batch, self._pending = self._pending, []
                texts = list(dict.fromkeys(t for group, _ in batch for t in group))  # a menu once
                try:
                    by_text = dict(zip(texts, await asyncio.to_thread(self.predict, texts), strict=True))
                except Exception as exc:  # every waiting page gets the error (the crawler records it)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.batches += 1
                for group, future in batch:
                    if not future.done():  # a cancelled worker
                        future.set_result([by_text[t] for t in group])
        finally:
            self._draining = False


def check_focus_scorer(path: str) -> dict[str, Any]:
    """What a scrape's manifest records of the focus model at ``path``: ``{"sha256": content hash of its
    weights, config and tokenizer, "manifest": its manifest or {}}``.

    ``seqlab scrape --focus`` calls this before Ray starts, so it loads the model once to be sure.

    Raises:
        ValueError: one line saying what ``path`` is instead of a scorer (a generator, a search, nothing).
    """
    from seqlab import artifacts

    try:
        manifest = artifacts.read_manifest(path)
    except FileNotFoundError:
        manifest = {}
    except (ValueError, OSError) as exc:
        raise ValueError(f"--focus {path}: unreadable manifest.json ({exc})") from None
    stage = manifest.get("stage")
    if stage is not None and stage != "scorer":
        hints = {
            "finetune": " (a generator: --focus needs the relevance scorer, e.g. runs/tune/best)",
            "tune": f" (a search: its best scorer is {path.rstrip('/')}/best)",
        }
        raise ValueError(f"--focus {path} is a {stage} artifact, not a scorer{hints.get(stage, '')}")
    from seqlab.models import load_scorer
    from seqlab.models.scorer import CONFIG, TOKENIZER, WEIGHTS

    try:
        load_scorer(path)
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(f"--focus {path}: {exc}") from None
    digest = hashlib.sha256()
    with artifacts.local_copy(path) as root:
        for name in (WEIGHTS, CONFIG, TOKENIZER):
            digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return {"sha256": digest.hexdigest()[:16], "manifest": manifest}


def load_focus(cfg: FocusConfig) -> FocusScorer:
    """Load ``cfg.scorer`` (imports torch) into a :class:`FocusScorer`."""
    from seqlab.models import load_scorer

    scorer = load_scorer(cfg.scorer)
    log.info(
        "focused crawl: scorer %s, blend %.2f, harvest threshold %.1f", cfg.scorer, cfg.blend, cfg.threshold
    )
    return FocusScorer(scorer.predict, blend=cfg.blend, threshold=cfg.threshold)
