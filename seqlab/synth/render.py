"""HTML of the local site's pages: index, sections, articles in three layouts, AMP copies, robots.txt."""

from __future__ import annotations

import html
import random
from collections.abc import Sequence

from seqlab.synth.plan import (
    ENGLISH_SENTENCES,
    PAGE_SIZE,
    READ_MORE,
    SECTION_NAMES,
    SITE_NAME,
    STYLE,
    Page,
    SitePlan,
)


def _a(href: str, text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<a href="{html.escape(href)}"{attr}>{html.escape(text)}</a>'


def _label(plan: SitePlan, title: str) -> str:
    """The text of a link to an article titled ``title``."""
    return title if plan.link_titles else READ_MORE


def page_head(title: str, charset_meta: str, canonical_url: str = "") -> str:
    canonical = f'<link rel="canonical" href="{html.escape(canonical_url)}">' if canonical_url else ""
    return (
        f'<!DOCTYPE html>\n<html lang="ar" dir="rtl">\n<head>{charset_meta}'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} | {SITE_NAME}</title>{canonical}"
        f"<style>{STYLE}</style>"
        "<script>window.dataLayer = window.dataLayer || []; dataLayer.push({'page': 'view'});</script>"
        "</head>\n"
    )


def page_header(plan: SitePlan) -> str:
    base = plan.base_path
    items = "".join(
        f"<li>{_a(f'{base}/section/{t}.html', SECTION_NAMES.get(t, t))}</li>" for t in sorted(plan.sections)
    )
    return (
        f'<body>\n<div class="cookie-banner" id="cookie"><p>نستخدم ملفات تعريف الارتباط لتحسين تجربتك '
        f'في التصفح.</p><button type="button">موافق</button></div>\n'
        f'<header class="site-header"><div class="logo">{_a(f"{base}/", SITE_NAME)}</div>'
        f'<nav class="main-nav"><ul><li>{_a(f"{base}/", "الرئيسية")}</li>{items}</ul></nav></header>\n'
        '<div class="ad ad-top"><a href="https://ads.example.net/click?slot=top" rel="nofollow">'
        '<img src="https://ads.example.net/banner.png" alt="إعلان"></a></div>\n'
    )


def page_footer(plan: SitePlan) -> str:
    return (
        f'<footer class="site-footer"><p>© 2024 {SITE_NAME}. جميع الحقوق محفوظة.</p>'
        f'<ul><li><a href="#about">من نحن</a></li><li><a href="#contact">اتصل بنا</a></li>'
        f"<li>{_a(f'{plan.base_path}/', 'الصفحة الرئيسية')}</li></ul></footer>\n"
        "<script>document.querySelector('#cookie button').onclick = function () "
        "{ document.getElementById('cookie').remove(); };</script>\n</body>\n</html>\n"
    )


def _share(url: str) -> str:
    return (
        '<div class="share"><span>شارك:</span>'
        f"{_a('https://twitter.com/intent/tweet?url=' + url, 'تويتر')}"
        f"{_a('https://www.facebook.com/sharer/sharer.php?u=' + url, 'فيسبوك')}"
        f"{_a('whatsapp://send?text=' + url, 'واتساب')}</div>"
    )


def _paragraphs(sentences: Sequence[str], key: str) -> list[str]:
    rng = random.Random(key)
    out, k = [], 0
    while k < len(sentences):
        step = rng.randint(1, 3)
        out.append(" ".join(sentences[k : k + step]))
        k += step
    return out


def render_index(plan: SitePlan) -> str:
    """The home page."""
    titles = {
        "latest": "آخر الأخبار",
        "most_read": "الأكثر قراءة",
        "exclusive": "حصري للمشتركين",
        "downloads": "ملفات للتحميل",
        "english": "English edition",
    }
    blocks = "".join(
        f'<section class="block block-{name}"><h2>{titles[name]}</h2><ul>'
        + "".join(f"<li>{_a(path, _label(plan, title))}</li>" for path, title in links)
        + "</ul></section>\n"
        for name, links in plan.index_blocks.items()
        if links
    )
    sections = "".join(
        f"<li>{_a(f'{plan.base_path}/section/{t}.html', SECTION_NAMES.get(t, t))}</li>"
        for t in sorted(plan.sections)
    )
    return (
        page_head("الرئيسية", '<meta charset="utf-8">')
        + page_header(plan)
        + f'<main class="home"><h1>{SITE_NAME}</h1>{blocks}'
        + f'<aside class="sections"><h2>الأقسام</h2><ul>{sections}</ul></aside></main>\n'
        + page_footer(plan)
    )


def render_section(plan: SitePlan, theme: str, page_no: int) -> str:
    """One page of a section listing (relative links to the articles)."""
    links = plan.sections[theme]
    pages = max(1, -(-len(links) // PAGE_SIZE))
    chunk = links[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]
    # Relative hrefs ("../articles/x.html") so a crawler must resolve them against the page URL.
    items = "".join(
        f"<li>{_a('..' + path[len(plan.base_path) :], _label(plan, title))}</li>" for path, title in chunk
    )
    here = f"{plan.base_path}/section/{theme}.html"
    pager = []
    for k in range(1, pages + 1):
        href = here if k == 1 else f"{here}?page={k}"
        pager.append(f"<span>{k}</span>" if k == page_no else _a(href, str(k)))
    if page_no < pages:
        pager.append(_a(f"{here}?page={page_no + 1}", "التالي", cls="next"))
    name = SECTION_NAMES.get(theme, theme)
    return (
        page_head(f"{name} - صفحة {page_no}", '<meta charset="utf-8">')
        + page_header(plan)
        + f'<main class="section"><h1>{html.escape(name)}</h1><ul class="list">{items}</ul>'
        + f'<nav class="pager">{"".join(pager)}</nav></main>\n'
        + page_footer(plan)
    )


def encoding_case(encoding: str) -> tuple[str, str, str]:
    """(codec, Content-Type header, meta tag) of an encoding case."""
    return {
        "utf-8": ("utf-8", "text/html; charset=utf-8", '<meta charset="utf-8">'),
        "windows-1256": ("cp1256", "text/html; charset=windows-1256", ""),
        "windows-1256-meta": ("cp1256", "text/html", '<meta charset="windows-1256">'),
        "windows-1256-wrong-header": (
            "cp1256",
            "text/html; charset=iso-8859-1",
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1256">',
        ),
        "utf-8-no-charset": ("utf-8", "text/html", ""),
    }[encoding]


def render_article(plan: SitePlan, page: Page, root: str) -> str:
    """An article page in one of three layouts (``root`` = scheme://host for absolute links)."""
    if page.kind == "english":
        title, sentences = page.title, ENGLISH_SENTENCES
    else:
        assert page.doc is not None
        title, sentences = page.doc.title, page.doc.sentences
        if page.outcome == "robots_disallowed":
            title = "حصري: " + title
    canonical_url = root + page.canonical
    paragraphs = _paragraphs(sentences, page.canonical)
    body = []
    for k, para in enumerate(paragraphs):
        body.append(f"<p>{html.escape(para)}</p>")
        if k == 0 and len(paragraphs) > 2:
            body.append(
                '<div class="ad ad-inline"><span>إعلان</span><a href="https://ads.example.net/'
                'click?slot=inline" rel="nofollow">اشترك الآن بنصف السعر</a></div>'
            )
        if k == 1 and page.layout == 0:
            body.append(
                '<figure><img src="https://cdn.example.net/img/cover.jpg" alt="">'
                "<figcaption>صورة توضيحية من الأرشيف</figcaption></figure>"
            )
    related_links = plan.related.get(page.canonical, [])
    related = (
        '<aside class="related"><h3>اقرأ أيضا</h3><ul>'
        + "".join(
            f"<li>{_a(root + path if path.startswith('/') else path, _label(plan, t))}</li>"
            for path, t in related_links
        )
        + "</ul></aside>"
    )
    byline = '<div class="byline"><span>بقلم: فريق التحرير</span> <time datetime="2024-01-01">١ يناير ٢٠٢٤</time></div>'
    paras = "".join(body)
    escaped_title = html.escape(title)
    if page.layout == 0:
        main = (
            f'<main><article class="story"><h1>{escaped_title}</h1>{byline}{paras}</article>'
            f"{_share(canonical_url)}{related}</main>"
        )
    elif page.layout == 1:
        main = (
            f'<main><h1 class="headline">{escaped_title}</h1>{byline}<div class="post-body">{paras}'
            f"</div>{_share(canonical_url)}{related}</main>"
        )
    else:
        main = (
            f'<div id="content"><h1>{escaped_title}</h1>{byline}{paras}{_share(canonical_url)}{related}</div>'
        )
    _, _, meta = encoding_case(page.encoding)
    return page_head(title, meta, canonical_url) + page_header(plan) + main + "\n" + page_footer(plan)


def render_amp(plan: SitePlan, page: Page, root: str) -> str:
    """The light edition of an article: a different template, the same story, canonical link set."""
    assert page.doc is not None
    paras = "".join(f"<p>{html.escape(p)}</p>" for p in _paragraphs(page.doc.sentences, page.canonical))
    return (
        '<!DOCTYPE html>\n<html amp lang="ar" dir="rtl"><head><meta charset="utf-8">'
        f'<title>{html.escape(page.doc.title)}</title><link rel="canonical" href="{root}{page.canonical}">'
        "<style amp-custom>body{margin:0}</style></head>\n<body>"
        f"<header>{_a(f'{plan.base_path}/', SITE_NAME)}</header>"
        f"<article><h1>{html.escape(page.doc.title)}</h1>{paras}</article></body></html>\n"
    )


def render_robots(plan: SitePlan) -> str:
    """robots.txt: everyone may crawl except ``/private/``; a bad bot is shut out entirely."""
    delay = int(plan.crawl_delay) if float(plan.crawl_delay).is_integer() else plan.crawl_delay
    return (
        "# robots.txt of the seqlab local site\n"
        "User-agent: BadBot\nDisallow: /\n\n"
        f"User-agent: *\nDisallow: {plan.base_path}/private/\nCrawl-delay: {delay}\n"
    )
