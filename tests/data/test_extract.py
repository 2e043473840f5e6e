"""Decoding and article extraction on hand-written pages (all Arabic text authored for these tests)."""

from __future__ import annotations

import codecs
import datetime as dt

import pandas as pd
import pytest

from seqlab.data.extract import Article, arabic_share, decode_html, extract_article, extract_batch

STORY = [
    "افتتحت البلدية صباح اليوم حديقة جديدة على ضفة النهر بعد عامين من العمل.",
    "وتضم الحديقة ممرات للمشي ومكتبة صغيرة يستعير منها الزوار الكتب مجانا.",
    "وقال المهندس المشرف إن الأشجار اختيرت لتتحمل حرارة الصيف الطويل.",
]

NEWS_PAGE = f"""<!DOCTYPE html>
<html lang="ar" dir="rtl"><head>
<meta charset="utf-8">
<meta property="og:title" content="حديقة جديدة على ضفة النهر | جريدة المدينة">
<title>حديقة جديدة على ضفة النهر - جريدة المدينة</title>
<style>.x {{ color: red }}</style>
<script>var tracking = "لا تظهر هذه الجملة";</script>
</head><body>
<div class="cookie-notice"><p>يستخدم هذا الموقع ملفات تعريف الارتباط لتحسين التصفح وقياس الزيارات.</p></div>
<header><nav><ul><li><a href="/">الرئيسية</a></li><li><a href="/sport">رياضة</a></li></ul></nav></header>
<div class="ad ad-top"><p>إعلان: خصم كبير على الأجهزة المنزلية هذا الأسبوع فقط لا تفوتوه.</p></div>
<main>
  <article class="story">
    <h1>حديقة جديدة على ضفة النهر</h1>
    <p>{STORY[0]}</p>
    <div class="share-box"><p>شارك الخبر مع أصدقائك على الشبكات الاجتماعية المختلفة الآن.</p></div>
    <p>{STORY[1]}</p>
    <p>  {STORY[2]}
    </p>
  </article>
  <aside class="related"><p>اقرأ أيضا: افتتاح سوق شعبي في الحي القديم وسط إقبال كبير من السكان.</p></aside>
  <section id="comments"><p>تعليق: خبر جميل ونتمنى المزيد من الحدائق في كل الأحياء الشعبية.</p></section>
</main>
<footer><p>جميع الحقوق محفوظة لجريدة المدينة منذ سنوات طويلة جدا.</p></footer>
</body></html>
"""

NO_ARTICLE_PAGE = """<html><head><title>المطبخ | وصفات البيت</title></head><body>
<div id="menu"><p>الرئيسية الوصفات الحلويات المشروبات اتصل بنا</p></div>
<div class="wrapper has-sidebar">
  <div class="sidebar"><p>الأكثر قراءة: طريقة سهلة لتحضير الخبز في البيت دون عجن طويل.</p></div>
  <div class="entry">
    <h2>شوربة العدس</h2>
    <p>اغسل العدس جيدا ثم انقعه في الماء نصف ساعة قبل الطهي.</p>
    <p>قطّع البصل والجزر واتركهما على نار هادئة حتى يلينا تماما.</p>
    <p>أضف العدس والماء والملح واترك القدر يغلي حتى ينضج كل شيء.</p>
  </div>
  <div class="note"><p>ملاحظة قصيرة.</p></div>
</div>
<div class="newsletter"><p>اشترك في النشرة البريدية لتصلك أحدث الوصفات كل أسبوع مباشرة.</p></div>
</body></html>
"""


def test_article_tag_wins_and_boilerplate_is_dropped():
    article = extract_article(NEWS_PAGE, "https://example.org/news/park.html")
    assert isinstance(article, Article)
    assert article.title == "حديقة جديدة على ضفة النهر"  # og:title without " | site"
    assert article.text.split("\n") == STORY
    assert article.n_chars == len(article.text)
    assert article.arabic_share == 1.0
    for noise in ("إعلان", "شارك", "اقرأ أيضا", "تعليق", "الحقوق", "ملفات تعريف", "tracking", "الرئيسية"):
        assert noise not in article.text


def test_densest_arabic_block_is_picked_without_article_tag():
    article = extract_article(NO_ARTICLE_PAGE)
    assert article.title == "وصفات البيت"  # the longest part of the <title>
    lines = article.text.split("\n")
    assert len(lines) == 3 and lines[0].startswith("اغسل العدس") and lines[2].endswith("كل شيء.")
    assert "الأكثر قراءة" not in article.text and "النشرة" not in article.text


def test_title_fallbacks_h1_then_title():
    assert (
        extract_article("<html><body><h1> عنوان   المقال </h1><p>نص.</p></body></html>").title
        == "عنوان المقال"
    )
    assert (
        extract_article("<title>أخبار الطقس اليوم | موقع المدينة</title><p>نص</p>").title
        == "أخبار الطقس اليوم"
    )
    assert extract_article("<p>بلا عنوان</p>").title == ""


def test_page_without_paragraphs_keeps_prose_lines_but_not_link_lists():
    prose = (
        "<html><body><div>كان الطريق إلى القرية طويلا ومتعرجا بين التلال الخضراء في ذلك الصباح"
        "<br>ووصلنا قبل الظهر بقليل فاستقبلنا أهلها بالقهوة والتمر وحكايات عن مواسم الحصاد</div></body></html>"
    )
    article = extract_article(prose)
    assert article.text.split("\n") == [
        "كان الطريق إلى القرية طويلا ومتعرجا بين التلال الخضراء في ذلك الصباح",
        "ووصلنا قبل الظهر بقليل فاستقبلنا أهلها بالقهوة والتمر وحكايات عن مواسم الحصاد",
    ]
    listing = (
        "<html><body><main><h1>آخر الأخبار</h1><ul><li><a href='/a'>افتتاح مكتبة عامة في الحي الشمالي</a></li>"
        "<li><a href='/b'>فريق المدينة يفوز في المباراة النهائية</a></li></ul></main></body></html>"
    )
    assert extract_article(listing).text == ""


@pytest.mark.parametrize(
    "html", ["", "<<<>>>", "<p>غير مغلق", "<html><body><article></article></body></html>", "\x00\ufffd<p>x"]
)
def test_extract_never_raises(html):
    article = extract_article(html)
    assert isinstance(article.text, str) and 0.0 <= article.arabic_share <= 1.0


def test_arabic_share():
    assert arabic_share("") == 0.0
    assert arabic_share("123 !!! ،؟") == 0.0  # no letters at all
    assert arabic_share("سلام") == 1.0
    assert arabic_share("سَلَامٌ") == 1.0  # diacritics are not letters, they do not dilute
    assert arabic_share("سلام abcd") == pytest.approx(0.5)
    assert arabic_share("ﻻ ab") == pytest.approx(1 / 3)  # a presentation form counts as Arabic


def test_extract_batch_adds_columns_and_flags_low_arabic():
    batch = pd.DataFrame(
        {
            "url": ["https://example.org/a", "https://example.org/b", "https://example.org/c"],
            "html": [
                NEWS_PAGE,
                "<article><p>The market reopened today after the long holiday.</p></article>",
                "<p></p>",
            ],
            "depth": [1, 1, 2],
        }
    )
    out = extract_batch(batch, min_arabic_share=0.5)
    assert list(out["depth"]) == [1, 1, 2] and len(out) == 3  # rows kept, columns added
    assert out.loc[0, "title"] == "حديقة جديدة على ضفة النهر"
    assert pd.isna(out.loc[0, "extract_error"])
    assert out.loc[1, "arabic_share"] == 0.0 and out.loc[1, "extract_error"].startswith("low_arabic")
    assert out.loc[2, "extract_error"] == "empty_text"
    assert list(out["n_chars"]) == [len(t) for t in out["text"]]


# --- decoding ---------------------------------------------------------------------------------------------

ARABIC_HTML = (
    "<html><head>{meta}<title>أخبار</title></head><body>"
    "<p>يتوقع خبراء الأرصاد هطول أمطار غزيرة على المناطق الساحلية خلال الأيام المقبلة.</p>"
    "<p>وينصح الدفاع المدني السائقين بتخفيف السرعة والابتعاد عن مجاري السيول.</p></body></html>"
)


def body(meta: str = "", codec: str = "cp1256") -> bytes:
    return ARABIC_HTML.format(meta=meta).encode(codec)


def expected_text(meta: str = "") -> str:
    return ARABIC_HTML.format(meta=meta)


@pytest.mark.parametrize(
    ("meta", "header", "encoding"),
    [
        ("", "text/html; charset=windows-1256", "windows-1256"),  # header only
        ("", "text/html; charset=CP1256", "windows-1256"),  # an alias
        ('<meta charset="windows-1256">', "text/html", "windows-1256"),  # meta only
        ('<meta http-equiv="Content-Type" content="text/html; charset=windows-1256">', None, "windows-1256"),
        # the lying header: the server says latin-1, the page says windows-1256
        ('<meta charset="windows-1256">', "text/html; charset=iso-8859-1", "windows-1256"),
        # the lying header with no meta: rescued because latin-1 gives no Arabic at all
        ("", "text/html; charset=ISO-8859-1", "windows-1256"),
        ("", "text/html", "windows-1256"),  # nothing declared: detected
        ("", None, "windows-1256"),
    ],
)
def test_windows_1256_decodes(meta, header, encoding):
    text, found = decode_html(body(meta), header)
    assert found == encoding
    assert text == expected_text(meta)


def test_utf8_cases():
    utf8 = body(codec="utf-8")
    assert decode_html(utf8, "text/html; charset=utf-8") == (expected_text(), "utf-8")
    assert decode_html(utf8, None) == (expected_text(), "utf-8")
    # a stale meta that disagrees with a header whose UTF-8 decodes strictly: UTF-8 is self-validating
    stale = body('<meta charset="windows-1256">', codec="utf-8")
    assert decode_html(stale, "text/html; charset=utf-8") == (
        expected_text('<meta charset="windows-1256">'),
        "utf-8",
    )
    # header says UTF-8 but the bytes are windows-1256: the meta wins
    wrong = body('<meta charset="windows-1256">')
    assert decode_html(wrong, "text/html; charset=utf-8")[1] == "windows-1256"


def test_bom_wins_and_garbage_never_raises():
    assert decode_html(codecs.BOM_UTF8 + body(codec="utf-8"), "text/html; charset=windows-1256") == (
        expected_text(),
        "utf-8",
    )
    assert decode_html(codecs.BOM_UTF16_LE + "نص".encode("utf-16-le"), None) == ("نص", "utf-16-le")
    text, encoding = decode_html(bytes(range(256)) * 4, "text/html; charset=no-such-charset")
    assert isinstance(text, str) and encoding


def test_genuine_latin1_page_stays_latin1():
    french = ("<p>Le café où nous étions était très agréable, même à midi.</p>" * 10).encode("latin-1")
    text, encoding = decode_html(french, "text/html; charset=iso-8859-1")
    assert encoding == "windows-1252" and "café où" in text


# --- the merge rule, the lead, metadata and the guards (seqlab.data.extract) --------------------------------

import time  # noqa: E402
import types  # noqa: E402

from seqlab.data import extract as extract_mod  # noqa: E402

LONG = "افتتحت البلدية صباح اليوم حديقة جديدة على ضفة النهر بعد عامين من العمل الطويل والمتواصل."
PAGE_WITH_LINKS = (
    "<html><body><ul><li><a href='/a'>افتتاح مكتبة عامة في الحي الشمالي وسط إقبال كبير من السكان</a></li>"
    f"</ul><p>{LONG}</p></body></html>"
)


def stub_candidates(monkeypatch, trafilatura_text: str | None, heuristic: str) -> list[str]:
    """Make trafilatura and the heuristic say what the test wants; return the list of candidates asked."""
    asked: list[str] = []

    def fake_trafilatura(html, url):
        asked.append("trafilatura")
        return None if trafilatura_text is None else types.SimpleNamespace(text=trafilatura_text)

    def fake_heuristic(html):
        asked.append("heuristic")
        return heuristic

    monkeypatch.setattr(extract_mod, "_trafilatura", fake_trafilatura)
    monkeypatch.setattr(extract_mod, "heuristic_text", fake_heuristic)
    return asked


def test_trafilatura_story_stands_even_when_the_heuristic_finds_more(monkeypatch):
    asked = stub_candidates(monkeypatch, LONG, f"{LONG}\n{LONG}\n{LONG}")
    article = extract_article(PAGE_WITH_LINKS)
    assert (article.text, article.source, asked) == (LONG, "trafilatura", ["trafilatura"])


@pytest.mark.parametrize(
    "trafilatura_text",
    [
        None,  # trafilatura gave up
        "افتتاح مكتبة عامة في الحي الشمالي وسط إقبال كبير من السكان",  # a link's text: a related headline
        "خبر قصير\nعنوان آخر",  # headings: no line of STORY_LINE_WORDS words
    ],
)
def test_the_heuristic_is_asked_when_trafilatura_finds_no_story(monkeypatch, trafilatura_text):
    asked = stub_candidates(monkeypatch, trafilatura_text, LONG)
    article = extract_article(PAGE_WITH_LINKS)
    assert (article.text, article.source, asked) == (LONG, "heuristic", ["trafilatura", "heuristic"])


def test_no_story_from_either_is_empty_text(monkeypatch):
    stub_candidates(monkeypatch, "افتتاح مكتبة عامة في الحي الشمالي وسط إقبال كبير من السكان", "")
    article = extract_article(PAGE_WITH_LINKS)
    assert (article.text, article.source, article.published, article.author) == ("", "", None, None)


def test_prose_laid_out_with_br_comes_from_the_heuristic():
    prose = (
        "<html><body><div>كان الطريق إلى القرية طويلا ومتعرجا بين التلال الخضراء في ذلك الصباح"
        "<br>ووصلنا قبل الظهر بقليل فاستقبلنا أهلها بالقهوة والتمر وحكايات عن مواسم الحصاد</div></body></html>"
    )
    assert extract_article(prose).source in ("trafilatura", "heuristic")
    assert extract_article(prose).text.split("\n")[1].startswith("ووصلنا قبل الظهر")


STORY_P = "".join(f"<p>{s} {LONG}</p>" for s in STORY)
LEAD = "أعلنت البلدية اليوم افتتاح حديقة جديدة على ضفة النهر تضم مكتبة وممرات للمشي."


def lead_page(lead_block: str, after: str = "") -> str:
    return (
        "<html lang='ar'><body><article><h1>حديقة جديدة</h1>"
        f"{lead_block}<div class='article-body'>{STORY_P}</div>{after}</article></body></html>"
    )


def test_a_lone_lead_outside_the_body_is_put_back_first():
    text = extract_article(lead_page(f"<div class='b-article__lead'>{LEAD}</div>")).text
    assert text.split("\n")[0] == LEAD and STORY[0] in text


@pytest.mark.parametrize(
    "page",
    [
        lead_page(f"<div class='lead'>{LEAD}</div><div class='lead'>{LEAD} وفي الحديقة أيضا نافورة.</div>"),
        lead_page(f"<div class='intro'><h2>{LEAD}</h2></div>"),  # a heading: a subtitle, not a lead
        lead_page(f"<h2 class='lead'>{LEAD}</h2>"),
        lead_page("", after=f"<div class='summary'>{LEAD}</div>"),  # after the story: a summary box
        lead_page("<div class='lead'>The city opened a new riverside park with a small library today.</div>"),
    ],
    ids=["two leads", "heading inside", "heading", "after the story", "not Arabic"],
)
def test_lead_like_blocks_that_are_not_the_lead_stay_out(page):
    assert LEAD not in extract_article(page).text and "The city" not in extract_article(page).text


@pytest.mark.parametrize(
    "lang, text, expected",
    [
        ("en", LONG, "ar"),  # a wrong lang attribute: the text is Arabic
        ("ar-EG", LONG, "ar"),
        ("fa", LONG, "fa"),  # a declared Arabic-script language is trusted
        ("", "اصلاح‌طلبان رادیکالی که تا دیروز بر آتش تخریب انتخابات می‌دمیدند از موضع خود عقب نشستند", "fa"),
        ("en", "The city opened a new riverside park with a small library and walking paths today.", "en"),
        ("", "The city opened a new riverside park with a small library and walking paths today.", None),
    ],
)
def test_language_is_the_declared_one_unless_the_script_says_otherwise(lang, text, expected):
    page = f"<html lang='{lang}'><body><article><p>{text}</p><p>{text}</p></article></body></html>"
    assert extract_article(page).language == expected


def test_author_canonical_and_date_come_from_the_page():
    page = (
        "<html lang='ar'><head><meta name='author' content='بقلم: سارة علي'>"
        "<link rel='canonical' href='/news/park.html'>"
        "<meta property='article:published_time' content='2024-03-05T10:00:00+03:00'></head>"
        f"<body><article>{STORY_P}</article></body></html>"
    )
    article = extract_article(page, "https://example.org/amp/park.html")
    assert article.author == "سارة علي"
    assert article.canonical_url == "https://example.org/news/park.html"
    assert article.published == dt.date(2024, 3, 5)


def test_a_year_alone_is_not_a_publication_date():
    page = f"<html><body><article>{STORY_P}<p>© 2019 جريدة المدينة</p></article></body></html>"
    assert extract_article(page, "https://example.org/2019/park.html").published is None


def test_bad_pages_are_failure_rows_with_their_reason(monkeypatch):
    monkeypatch.setattr(extract_mod, "MAX_EXTRACT_CHARS", 20_000)
    batch = pd.DataFrame(
        {
            "url": ["https://e.org/big", "https://e.org/bin", "https://e.org/deep", "https://e.org/ok"],
            "html": [
                NEWS_PAGE * 20,
                "".join(map(chr, range(0, 32))) * 50,
                "<div>" * 3000 + "<p>عمق</p>",
                NEWS_PAGE,
            ],
        }
    )
    errors = list(extract_batch(batch)["extract_error"])
    assert errors[0].startswith("too_large_to_extract:") and errors[1].startswith("binary_content:")
    assert errors[2].startswith("too_deeply_nested:") and pd.isna(errors[3])


def test_an_extraction_that_hangs_or_raises_is_one_failure_row(monkeypatch):
    def slow(html, url):
        time.sleep(5)

    monkeypatch.setattr(extract_mod, "EXTRACT_TIMEOUT_S", 0.2)
    monkeypatch.setattr(extract_mod, "_trafilatura", slow)
    batch = pd.DataFrame({"url": ["https://e.org/a"], "html": [NEWS_PAGE]})
    started = time.monotonic()
    assert extract_batch(batch)["extract_error"][0].startswith("extract_timeout:")
    assert time.monotonic() - started < 2

    def boom(html, url):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(extract_mod, "_trafilatura", boom)
    assert extract_batch(batch)["extract_error"][0] == (
        "extract_failed: RecursionError: maximum recursion depth exceeded"
    )
