"""Focused crawling: the scorer orders the frontier; budget, resume, politeness and refusals around it.

The crawls use a stub predictor (technology words -> 9, anything else -> 1) so the expected order is
exact; the refusals and the manifest hash use real (tiny, untrained) scorer artifacts.
The Arabic phrases were written for these tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence

import pytest
from aiohttp import web

from seqlab.data.config import FocusConfig, SourcesConfig
from seqlab.data.scrape import MemorySink, ParquetSink, crawl, load_content_hashes, load_progress, load_ranks
from seqlab.data.scrape.focus import FocusScorer, check_focus_scorer, rank_of
from seqlab.data.scrape.links import link_contexts

TECH = "أخبار تقنية الذكاء الاصطناعي"  # a link text the stub rates 9
COOKING = "وصفات الطبخ في البيت"  # a link text the stub rates 1
FILLER = "<p>" + "نص محايد بين الروابط " * 6 + "</p>"  # keeps one link's text out of its neighbour's context


def stub_predict(texts: Sequence[str]) -> list[float]:
    return [9.0 if "تقنية" in t else 1.0 for t in texts]


def anchors(*links: tuple[str, str]) -> str:
    return FILLER.join(f'<a href="{href}">{text}</a>' for href, text in links) + FILLER


class Site:
    """``path -> body`` pages on 127.0.0.1; records the order and start times of page requests."""

    def __init__(self, pages: dict[str, str], robots: str = "User-agent: *\nAllow: /\n"):
        self.pages, self.robots = pages, robots
        self.order: list[str] = []
        self.starts: list[float] = []

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == "/robots.txt":
            return web.Response(text=self.robots)
        self.order.append(request.path)
        self.starts.append(time.monotonic())
        if request.path not in self.pages:
            raise web.HTTPNotFound()
        html = f'<html lang="ar"><body>{self.pages[request.path]}<p>{request.path}</p></body></html>'
        return web.Response(text=html, content_type="text/html")

    async def __aenter__(self) -> Site:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def late_relevant_site() -> dict[str, str]:
    """The home page links six cooking pages, then a technology index; only that index links the
    technology page (found two hops after the cooking pages)."""
    cooking = [(f"/cook{i}.html", COOKING) for i in range(6)]
    return {
        "/": anchors(*cooking, ("/hub.html", "فهرس أخبار تقنية")),
        "/hub.html": anchors(("/tech.html", TECH)),
        **{path: anchors() for path, _ in cooking},
        "/tech.html": anchors(("/tech2.html", TECH), ("/cook0.html", COOKING)),
        "/tech2.html": anchors(),
    }


def crawl_order(pages: dict[str, str], focus: FocusScorer | None, **kw) -> list[str]:
    async def main() -> list[str]:
        async with Site(pages) as site:
            cfg = SourcesConfig(seeds=[site.base + "/"], per_host_concurrency=1, delay_s=0.0, **kw)
            await crawl(cfg, sink=MemorySink(), focus=focus)
            return site.order

    return asyncio.run(main())


def test_a_relevant_link_found_late_is_fetched_before_irrelevant_ones_found_early():
    pages = late_relevant_site()
    bfs = crawl_order(pages, None)
    assert bfs.index("/tech.html") > bfs.index("/cook5.html")  # breadth-first: found late, fetched late
    focused = crawl_order(pages, FocusScorer(stub_predict, blend=0.3))
    cooking = [f"/cook{i}.html" for i in range(6)]
    assert focused == ["/", "/hub.html", "/tech.html", "/tech2.html", *cooking]
    assert sorted(focused) == sorted(bfs)  # the same pages, in another order


def test_link_texts_are_anchor_title_and_neighbours_and_a_bare_pager_link_gets_none():
    html = (
        '<p>قبل الرابط مباشرة</p><div class="x"><a href="/a.html" title="عنوان الخبر">نص الرابط</a></div>'
        '<p>بعد الرابط</p><a href="?page=2">2</a>'
    )
    ctx = link_contexts(html, "http://x.example/list.html")
    assert ctx["http://x.example/a.html"].startswith("عنوان الخبر نص الرابط قبل الرابط مباشرة بعد الرابط")
    assert "<" not in ctx["http://x.example/a.html"] and "class" not in ctx["http://x.example/a.html"]
    assert ctx["http://x.example/list.html?page=2"] == ""  # ranked by its page alone


def test_the_scorer_is_batched_across_pages_waiting_together():
    calls: list[int] = []

    def predict(texts: Sequence[str]) -> list[float]:
        calls.append(len(texts))
        return stub_predict(texts)

    focus = FocusScorer(predict, blend=0.5)

    async def main():
        return await asyncio.gather(*(focus.rate(f"<p>صفحة {i}</p>", [TECH, COOKING, ""]) for i in range(3)))

    results = asyncio.run(main())
    assert calls == [3 + 2]  # three pages and the two distinct link texts, in one call
    page, ranks = results[0]
    assert page == 1.0 and ranks == [rank_of(5.0), rank_of(1.0), rank_of(1.0)]


def test_budget_stops_cleanly_and_a_resumed_focused_crawl_keeps_the_order(tmp_path):
    pages = late_relevant_site()
    reference = crawl_order(pages, FocusScorer(stub_predict, blend=0.3))

    async def main() -> tuple[list[str], list[str], int]:
        async with Site(pages) as site:
            cfg = SourcesConfig(seeds=[site.base + "/"], per_host_concurrency=1, delay_s=0.0, max_pages=4)
            with ParquetSink(tmp_path) as sink:
                stats = await crawl(cfg, sink=sink, focus=FocusScorer(stub_predict, blend=0.3))
            first = list(site.order)
            assert stats.ok == 4 and stats.unvisited > 0 and stats.queued == 0
            assert "budget reached" in stats.line() and "harvest" in stats.line()
            site.order.clear()
            done, frontier = load_progress(tmp_path)
            assert len(done) == 4
            with ParquetSink(tmp_path) as sink:
                await crawl(
                    cfg.model_copy(update={"max_pages": 100}),
                    sink=sink,
                    done_urls=done,
                    frontier=frontier,
                    content_hashes=load_content_hashes(tmp_path),
                    ranks=load_ranks(tmp_path),
                    focus=FocusScorer(stub_predict, blend=0.3),
                )
            return first, list(site.order), stats.relevant

    first, rest, relevant = asyncio.run(main())
    assert first == reference[:4] and relevant == sum(p in ("/hub.html", "/tech.html") for p in first)
    assert rest == reference[4:]  # nothing fetched twice, and the order the whole crawl would have taken


def test_politeness_is_unchanged_under_focus():
    pages = {"/": anchors(*[(f"/p{i}.html", TECH) for i in range(4)], ("/private/x.html", TECH))}
    pages.update({f"/p{i}.html": anchors() for i in range(4)})

    async def main() -> Site:
        async with Site(pages, robots="User-agent: *\nDisallow: /private/\n") as site:
            cfg = SourcesConfig(seeds=[site.base + "/"], per_host_concurrency=4, delay_s=0.1)
            sink = MemorySink()
            await crawl(cfg, sink=sink, focus=FocusScorer(stub_predict))
            assert [f["error"] for f in sink.failures] == ["robots_disallowed"]
            return site

    site = asyncio.run(main())
    assert "/private/x.html" not in site.order and len(site.starts) == 5
    gaps = [b - a for a, b in itertools.pairwise(sorted(site.starts))]
    assert min(gaps) >= 0.06, gaps  # delay_s between request starts, as without focus


def test_focus_in_sources_yaml_and_cli_flags(tmp_path):
    import argparse

    from seqlab.data.cli_scrape import add_arguments, build_config

    def args(argv: list[str]) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        parsed, unknown = parser.parse_known_args(argv)
        parsed.overrides = unknown
        return parsed

    f = tmp_path / "sources.yaml"
    f.write_text("seeds: [https://a.example/]\nfocus: {scorer: runs/best, blend: 0.5}\n", encoding="utf-8")
    cfg = build_config(args(["--sources", str(f), "--out", "o", "--max-pages", "9"]))
    assert cfg.sources.focus == FocusConfig(scorer="runs/best", blend=0.5) and cfg.sources.max_pages == 9
    cfg = build_config(args(["--sources", str(f), "--out", "o", "--focus", "other"]))
    assert cfg.sources.focus.scorer == "other" and cfg.sources.focus.blend == 0.5  # the file's blend kept
    cfg = build_config(args(["--out", "o", "https://a.example/", "--focus", "s", "--focus-blend", "0"]))
    assert cfg.sources.focus == FocusConfig(scorer="s", blend=0.0)
    assert SourcesConfig(seeds=["https://a.example/"], focus="runs/best").focus.scorer == "runs/best"


def _tiny_scorer(path, seed: int = 0):
    import torch

    from seqlab.models import RNNRegressor, TokenizerConfig, save_scorer, train_tokenizer

    tok = train_tokenizer([TECH, COOKING], TokenizerConfig(min_frequency=1))
    torch.manual_seed(seed)
    save_scorer(str(path), RNNRegressor(tok.get_vocab_size(), embed_dim=4, hidden=4), tok)
    return path


def test_the_focus_model_is_known_by_the_content_hash_of_its_files(tmp_path):
    a = check_focus_scorer(str(_tiny_scorer(tmp_path / "a")))
    assert a["manifest"]["stage"] == "scorer"
    assert check_focus_scorer(str(_tiny_scorer(tmp_path / "b")))["sha256"] == a["sha256"]  # same weights
    assert check_focus_scorer(str(_tiny_scorer(tmp_path / "c", seed=1)))["sha256"] != a["sha256"]


@pytest.mark.parametrize(
    "case, says",
    [
        ("missing", "is not a scorer artifact: no model.safetensors"),
        ("generator", "is a finetune artifact, not a scorer (a generator"),
        ("search", "its best scorer is"),
        ("blend_alone", "--focus-blend goes with --focus"),
    ],
)
def test_a_bad_focus_is_one_line_before_ray(tmp_path, capsys, monkeypatch, case, says):
    import seqlab.ray_utils
    from seqlab.cli import main

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a run that had to be refused")

    monkeypatch.setattr(seqlab.ray_utils, "init_ray", no_ray)
    scorer = tmp_path / "model"
    scorer.mkdir()
    if case in ("generator", "search"):
        stage = "finetune" if case == "generator" else "tune"
        (scorer / "manifest.json").write_text(json.dumps({"stage": stage}), encoding="utf-8")
        (scorer / "model.safetensors").write_bytes(b"")
    out = tmp_path / "out"
    flags = ["--focus-blend", "0.2"] if case == "blend_alone" else ["--focus", str(scorer)]
    assert main(["scrape", "http://127.0.0.1:9/", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
