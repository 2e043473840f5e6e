"""``seqlab scrape`` over real Arabic-script news pages served on loopback: each page's corpus text against
its gold article body (token F1), its metadata, and bad pages next to them ending as failure rows.

The pages and their gold texts are ``tests/data/real_pages/`` (sources and licences in its README)."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from seqlab.cli import main
from seqlab.corpus import read_corpus
from seqlab.data.decode import decode_html
from seqlab.data.extract import extract_article
from seqlab.data.pipeline import read_failures

PAGES_DIR = Path(__file__).parent / "real_pages"
PAGES = sorted(p.stem for p in PAGES_DIR.glob("*.html"))
PAGE_FLOOR = 0.85  # no page below this token F1 (the issue asks 0.80)
MEAN_FLOOR = 0.95  # mean over the pages
# What each page states about itself (dates checked by hand against the page's own markup).
PUBLISHED = {
    "ar_akhbarelyom_2020_naima_akef": dt.date(2020, 10, 7),
    "ar_albayan_2020_afghan_embassy": dt.date(2020, 6, 3),
    "ar_lbcgroup_2026_trump_hair": dt.date(2026, 1, 8),
    "ar_sputnik_2020_egypt_covid": dt.date(2020, 3, 17),
    "fa_khabaronline_2020_reformists": dt.date(2020, 2, 18),
    "fa_yjc_2020_yazd_police": dt.date(2020, 5, 10),
}
_TOKEN = re.compile(r"\w+")


def token_f1(predicted: str, gold: str) -> float:
    """F1 of the two texts' bags of word tokens."""
    p, g = Counter(_TOKEN.findall(predicted)), Counter(_TOKEN.findall(gold))
    common = sum((p & g).values())
    if not common:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def gold(stem: str) -> str:
    return (PAGES_DIR / f"{stem}.gold.txt").read_text(encoding="utf-8")


def html(stem: str) -> str:
    return decode_html((PAGES_DIR / f"{stem}.html").read_bytes(), None)[0]


def test_token_f1():
    assert token_f1("أ ب ج", "أ ب ج") == 1.0 and token_f1("", "أ") == 0.0
    assert token_f1("أ ب", "أ ب ج د") == pytest.approx(2 / 3)  # precision 1, recall 1/2


# --- the extractor alone (fast) -------------------------------------------------------------------------


@pytest.mark.parametrize("stem", PAGES)
def test_each_real_page_gives_its_article(stem):
    article = extract_article(html(stem), f"http://127.0.0.1/news/{stem}.html")
    assert token_f1(article.text, gold(stem)) >= PAGE_FLOOR
    assert article.language == stem[:2] and article.source == "trafilatura"


def test_persian_words_keep_their_zero_width_non_joiner():
    # trafilatura alone deletes U+200C and runs "اصلاح‌طلبان" into one token (F1 0.85 on this page)
    text = extract_article(html("fa_khabaronline_2020_reformists")).text
    assert "اصلاح\u200cطلبان" in text and "اصلاحطلبان" not in text


# --- the whole `seqlab scrape` path -----------------------------------------------------------------------


def _nested() -> bytes:
    return ("<html><body>" + "<div>" * 30000 + "<p>عمق</p>" + "</div>" * 30000 + "</body></html>").encode()


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[bytes, str]]] = {}

    def do_GET(self) -> None:
        body, ctype = self.routes.get(self.path, (b"", ""))
        self.send_response(200 if ctype else 404)
        self.send_header("Content-Type", ctype or "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def real_site():
    """The pages as a small news site: an index linking them, plus a binary and a pathological page."""
    paths = [f"/news/{stem}.html" for stem in PAGES] + ["/bad/binary.html", "/bad/nested.html"]
    index = "".join(f'<li><a href="{p}">{Path(p).stem}</a></li>' for p in paths)
    routes = {
        "/": (f"<html lang='ar'><body><h1>أخبار</h1><ul>{index}</ul></body></html>".encode(), "text/html"),
        "/robots.txt": (b"User-agent: *\nAllow: /\n", "text/plain"),
        "/bad/binary.html": (random.Random(0).randbytes(200_000), "text/html"),
        "/bad/nested.html": (_nested(), "text/html"),
    }
    for stem in PAGES:  # served as sites serve them: bytes, no charset in the header
        routes[f"/news/{stem}.html"] = ((PAGES_DIR / f"{stem}.html").read_bytes(), "text/html")
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def scraped(ray_session, real_site, tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "scrape"
    argv = ["scrape", real_site + "/", "--out", str(out), "--labels", "none", "--sources.delay_s=0"]
    assert main(argv) == 0
    return out, real_site


@pytest.mark.slow
def test_seqlab_scrape_gets_each_real_article(scraped):
    out, site = scraped
    corpus = read_corpus(out, ["url", "text", "published", "author", "canonical_url", "language"]).to_pylist()
    rows = {row["url"].removeprefix(f"{site}/news/").removesuffix(".html"): row for row in corpus}
    assert sorted(rows) == PAGES  # every article is a document; nothing else is
    scores = {stem: token_f1(rows[stem]["text"], gold(stem)) for stem in PAGES}
    assert min(scores.values()) >= PAGE_FLOOR, scores
    assert sum(scores.values()) / len(scores) >= MEAN_FLOOR, scores
    arabic = [s for stem, s in scores.items() if stem.startswith("ar_")]
    assert sum(arabic) / len(arabic) >= MEAN_FLOOR, scores
    for stem, row in rows.items():
        assert row["language"] == stem[:2]
        assert row["published"] == PUBLISHED.get(stem, row["published"])
    assert rows["ar_albayan_2020_afghan_embassy"]["canonical_url"].startswith("https://www.albayan.ae/")


@pytest.mark.slow
def test_index_and_bad_pages_are_failure_rows_with_their_reason(scraped):
    out, site = scraped
    failures = read_failures(out)
    errors = dict(zip(failures["url"].str.removeprefix(site), failures["error"], strict=True))
    assert errors["/"] == "empty_text"  # a listing page holds no story
    assert errors["/bad/binary.html"].startswith("binary_content:")
    assert errors["/bad/nested.html"].startswith("too_deeply_nested:")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["extractor"]["name"] == "trafilatura+seqlab"
    assert manifest["extractor"]["versions"]["trafilatura"][0].isdigit()
