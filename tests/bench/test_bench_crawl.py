"""``seqlab bench crawl``: the harvest arithmetic, and one tiny end-to-end run (slow: it trains a scorer)."""

from __future__ import annotations

import pytest

from seqlab.bench.crawl import order_metrics
from seqlab.cli import main


def test_harvest_and_all_found_are_read_off_the_fetch_order():
    labels = {"/articles/a.html": 9.0, "/articles/b.html": 2.0, "/articles/c.html": 7.0}
    urls = ["http://s/", "http://s/articles/a.html", "http://s/articles/b.html", "http://s/articles/c.html"]
    m = order_metrics(urls, labels, n_site=4)
    assert m["relevant"] == 2 and m["all_found_at"] == 4  # c (label 7 counts) is the 4th fetch
    assert m["harvest"][0.5] == 0.5 and m["harvest"][0.25] == 0.0  # 1 of the first 2; 0 of the first 1
    assert m["curve"] == [0.0, 0.5, pytest.approx(1 / 3), 0.5]
    assert order_metrics(urls[::-1], labels, n_site=4)["all_found_at"] == 3


@pytest.mark.slow
def test_bench_crawl_runs_end_to_end(tmp_path, capsys):
    plot = tmp_path / "harvest.png"
    argv = ["bench", "crawl", "--docs", "60", "--seeds", "1", "--train-docs", "200", "--epochs", "1"]
    assert main([*argv, "--latency-ms", "0", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    for line in ("harvest@25%", "focus / bfs", "crawl rate focus / bfs", "all relevant at"):
        assert line in out, out
    assert plot.stat().st_size > 1000
