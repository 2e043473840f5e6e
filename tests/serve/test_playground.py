"""The playground page (``/playground``) in a real browser: headless Chromium driven by selenium against the
real Serve app on the session's Ray, with the API key on (the page must ask for it).

One app and one browser for the module. The browser tests skip where Chromium, its driver or selenium is
missing. Screenshots of each state go to ``$SEQLAB_TEST_ARTIFACTS/playground`` (default
``/tmp/seqlab-test-artifacts/playground``); the path is printed at the end of the module.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

KEY = "playground-key-7c1d"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROMPT = "يستخدم الباحثون"
TEXTS = ["تعمل الشركة على تطوير خوارزمية جديدة لتحليل البيانات.", "مدرسةٌ جديدة للبرمجة في المدينة"]
INSTALL = "apt-get install chromium chromium-driver fonts-noto-core; pip install selenium"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--lang=ar",
]


@pytest.fixture(scope="module")
def url(deploy):
    """The app with the API key on: the page loads without it, the API asks for it."""
    from ray import serve

    os.environ["SEQLAB_API_KEY"] = KEY  # build_app carries it to the ingress replica
    try:
        app = deploy("pg")
    finally:
        del os.environ["SEQLAB_API_KEY"]
    yield app
    serve.delete("pg")


@pytest.fixture(scope="module")
def shots(request) -> Path:
    default = os.path.join(tempfile.gettempdir(), "seqlab-test-artifacts")
    root = os.environ.get("SEQLAB_TEST_ARTIFACTS") or default
    path = Path(root) / "playground"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and any(path.glob("*.png")):
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            reporter.write_line(f"\nplayground screenshots: {path}")


def _binaries() -> tuple[str, str]:
    """Chromium and its driver: $SEQLAB_CHROMIUM / $SEQLAB_CHROMEDRIVER, else found on PATH."""
    browsers = (
        [os.environ["SEQLAB_CHROMIUM"]]
        if "SEQLAB_CHROMIUM" in os.environ
        else ["chromium", "chromium-browser"]
    )
    chromium = next((p for p in map(shutil.which, browsers) if p), None)
    driver = shutil.which(os.environ.get("SEQLAB_CHROMEDRIVER", "chromedriver"))
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip(f"the playground browser tests need selenium: {INSTALL}")
    if not chromium or not driver:
        pytest.skip(f"the playground browser tests need chromium and chromedriver: {INSTALL}")
    return chromium, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver_path = _binaries()
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download anything
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


# --- helpers ---


def wait(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def find(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def find_all(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def text_of(element) -> str:
    return element.get_attribute("textContent")


def shown(driver, css: str) -> bool:
    items = find_all(driver, css)
    return bool(items) and items[0].is_displayed()


def open_page(driver, url: str, key: bool = True) -> None:
    driver.get(f"{url}/playground")
    wait(driver, lambda d: find_all(d, "#models .model") or shown(d, "#models-error"))
    if key and find(driver, "#api-key").get_attribute("value") != KEY:
        field = find(driver, "#api-key")
        field.clear()
        field.send_keys(KEY)
        find(driver, "#save-key").click()
        wait(driver, lambda d: len(find_all(d, "#models .model")) == 2)


def snap(driver, path: Path) -> None:
    """A screenshot of the whole page (not only the window), as a test artifact."""
    try:
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
    except Exception:  # no DevTools command: the visible part only
        driver.save_screenshot(str(path))


def state(driver) -> str:
    return find(driver, "#gen-status").get_attribute("data-state") or ""


def set_field(driver, css: str, value: str) -> None:
    field = find(driver, css)
    field.clear()
    if value:
        field.send_keys(value)


def fill_generate(driver, url: str, strategy: str, fields: dict[str, str]) -> None:
    """Open the page and fill the generate form: the prompt, the strategy, then ``{css: value}``."""
    open_page(driver, url)
    set_field(driver, "#prompt", PROMPT)
    find(driver, f"#strategy option[value={strategy}]").click()
    for css, value in fields.items():
        set_field(driver, css, value)


def generate(driver, shot: Path | None = None) -> None:
    """Click generate and wait for the end; ``shot``: a screenshot while it streams, if caught in time."""
    find(driver, "#generate-btn").click()
    if shot is not None:
        running = "return document.getElementById('gen-status').dataset.state === 'running' && "
        running += "document.querySelector('#gen-stream .stream-text')?.textContent.length > 0"
        try:
            wait(driver, lambda d: d.execute_script(running) or state(d) in ("done", "error"), 10)
            if state(driver) == "running":
                snap(driver, shot)
        except Exception:
            pass
    wait(driver, lambda d: state(d) in ("done", "error"), 60)


def api_scores(url: str, texts: list[str]) -> list[float]:
    resp = httpx.post(f"{url}/v1/score", json={"texts": texts}, headers=AUTH, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()["scores"]


# --- without a browser ---


def test_page_is_served_without_the_key_and_loads_nothing_from_elsewhere(url):
    resp = httpx.get(f"{url}/playground")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    html = resp.text
    assert '<html dir="rtl" lang="ar">' in html and 'name="viewport"' in html
    assert not re.search(r"https?://", html), "the page must work offline: no external URL"
    assert not re.search(r"""(src|href)\s*=\s*["']//""", html)
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    root = httpx.get(f"{url}/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"].endswith("/pg/playground")
    assert httpx.get(f"{url}/v1/models").status_code == 401  # the API itself still needs the key


def test_score_can_return_the_normalized_text(url, artifacts):
    from seqlab.models import load_scorer

    scorer = load_scorer(str(artifacts["scorer"]))
    texts = [*TEXTS, "🙂 ok"]
    plain = httpx.post(f"{url}/v1/score", json={"texts": texts}, headers=AUTH, timeout=60).json()
    assert plain["normalized"] is None  # only when asked: the old answer is unchanged otherwise
    resp = httpx.post(
        f"{url}/v1/score", json={"texts": texts, "return_normalized": True}, headers=AUTH, timeout=60
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["normalized"] == [scorer.prepare(t) for t in texts]
    assert body["normalized"][1] != texts[1]  # the artifact folds teh marbuta and drops diacritics
    assert body["scores"] == pytest.approx(plain["scores"], abs=1e-6)
    bad = httpx.post(f"{url}/v1/score", json={"texts": texts, "return_normalized": "x"}, headers=AUTH)
    assert bad.status_code == 422 and "return_normalized" in bad.json()["error"]["message"]


# --- in the browser ---


@pytest.mark.browser
def test_the_page_asks_for_the_key_then_scores_arabic_text(browser, url, shots, artifacts):
    from seqlab.models import load_scorer

    driver = browser
    open_page(driver, url, key=False)
    wait(driver, lambda d: shown(d, "#models-error") and shown(d, "#key-card"))
    assert "401" in text_of(find(driver, "#models-error"))
    set_field(driver, "#score-input", TEXTS[0])
    find(driver, "#score-btn").click()
    wait(driver, lambda d: shown(d, "#score-error"))
    message = text_of(find(driver, "#score-error"))
    assert "401" in message and "missing API key" in message
    snap(driver, shots / "01-auth-required.png")

    open_page(driver, url)  # types the key: the models appear
    cards = {c.get_attribute("data-id"): text_of(c) for c in find_all(driver, "#models .model")}
    assert set(cards) == {"seqlab-scorer", "seqlab-generator"}
    assert "GRU" in cards["seqlab-scorer"] and re.search(r"test_rmse: 1\.5(?!\d)", cards["seqlab-scorer"])
    assert str(artifacts["scorer"]) in cards["seqlab-scorer"]
    assert "test_perplexity: 123" in cards["seqlab-generator"] and "scratch" in cards["seqlab-generator"]

    set_field(driver, "#score-input", "\n".join(TEXTS))
    find(driver, "#score-btn").click()
    wait(driver, lambda d: len(find_all(d, "#score-results li.result")) == 2)
    assert not shown(driver, "#score-error")
    expected = api_scores(url, TEXTS)
    rows = find_all(driver, "#score-results li.result")
    for row, text, score in zip(rows, TEXTS, expected, strict=True):
        assert text_of(find(row, ".score-value")) == f"{score:.2f}"
        width = re.fullmatch(r"width: ([0-9.]+)%;", find(row, ".bar > span").get_attribute("style"))
        assert width and float(width.group(1)) == pytest.approx(min(score * 10, 100), abs=0.06)
        assert text_of(find(row, ".text")) == text
        assert not find(row, ".normalized").is_displayed()
    snap(driver, shots / "02-score.png")

    find(driver, "#show-normalized").click()
    scorer = load_scorer(str(artifacts["scorer"]))
    for row, text in zip(rows, TEXTS, strict=True):
        assert find(row, ".normalized").is_displayed()
        assert text_of(find(row, ".normalized")) == scorer.prepare(text)
    snap(driver, shots / "03-score-normalized.png")


OBSERVE = """
window.__lengths = [];
const target = document.getElementById('gen-stream');
window.__observer && window.__observer.disconnect();
window.__observer = new MutationObserver(() => {
  const box = target.querySelector('.stream-text');
  if (box) window.__lengths.push(box.textContent.length);
});
window.__observer.observe(target, {childList: true, subtree: true, characterData: true});
"""


@pytest.mark.browser
def test_generated_tokens_stream_into_the_page(browser, url, shots):
    driver = browser
    fill_generate(driver, url, "greedy", {"#max_new_tokens": "100"})
    driver.execute_script(OBSERVE)
    generate(driver, shot=shots / "04-generate-streaming.png")
    assert state(driver) == "done", text_of(find(driver, "#gen-error"))
    lengths = [n for n in driver.execute_script("return window.__lengths") if n > 0]
    assert len(set(lengths)) >= 2, f"text did not arrive incrementally: {lengths}"
    assert lengths == sorted(lengths)
    snap(driver, shots / "05-generate-done.png")
    shown_text = text_of(find(driver, "#gen-results li.candidate .cand-text"))
    plain = httpx.post(
        f"{url}/v1/generate",
        json={"prompt": PROMPT, "strategy": "greedy", "max_new_tokens": 100},
        headers=AUTH,
        timeout=60,
    ).json()["candidates"][0]["text"]
    assert shown_text == plain and len(plain) >= lengths[-1]


@pytest.mark.browser
def test_reranked_candidates_come_best_first_and_copy_as_curl(browser, url, shots):
    driver = browser
    fields = {"#temperature": "1.5", "#num_candidates": "3", "#seed": "3", "#max_new_tokens": "10"}
    fill_generate(driver, url, "sample", fields)
    find(driver, "#rerank").click()
    generate(driver)
    assert state(driver) == "done", text_of(find(driver, "#gen-error"))
    items = find_all(driver, "#gen-results li.candidate")
    assert len(items) == 3
    shown_scores = [float(text_of(find(li, ".cand-score"))) for li in items]
    scores = [float(li.get_attribute("data-score")) for li in items]
    assert shown_scores == sorted(shown_scores, reverse=True) and scores == sorted(scores, reverse=True)
    assert shown_scores == [round(s, 2) for s in scores]
    texts = [text_of(find(li, ".cand-text")) for li in items]
    assert api_scores(url, texts) == pytest.approx(scores, abs=1e-4)
    snap(driver, shots / "06-rerank.png")

    find(driver, "#curl-btn").click()
    wait(driver, lambda d: shown(d, "#curl-text"))
    curl = text_of(find(driver, "#curl-text"))
    assert curl.startswith("curl ") and "/pg/v1/generate" in curl and '"rerank":true' in curl
    assert '"num_candidates":3' in curl and "Bearer $SEQLAB_API_KEY" in curl and KEY not in curl
    if shutil.which("curl"):  # the command runs as shown
        done = subprocess.run(
            ["bash", "-c", curl],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "SEQLAB_API_KEY": KEY},
        )
        assert done.returncode == 0 and '"done": true' in done.stdout and "[DONE]" in done.stdout, done


@pytest.mark.browser
def test_validation_errors_are_shown(browser, url, shots):
    driver = browser
    open_page(driver, url)
    set_field(driver, "#prompt", PROMPT)
    set_field(driver, "#temperature", "-1")
    generate(driver)
    assert state(driver) == "error"
    message = text_of(find(driver, "#gen-error"))
    assert "422" in message and "temperature" in message
    set_field(driver, "#score-input", "")
    find(driver, "#score-btn").click()
    wait(driver, lambda d: shown(d, "#score-error"))
    message = text_of(find(driver, "#score-error"))
    assert "422" in message and "texts" in message
    snap(driver, shots / "07-validation-errors.png")


@pytest.mark.browser
def test_the_page_fits_a_phone(browser, url, shots):
    driver = browser
    driver.set_window_size(390, 844)
    try:
        open_page(driver, url)
        set_field(driver, "#score-input", TEXTS[0])
        find(driver, "#score-btn").click()
        wait(driver, lambda d: find_all(d, "#score-results li.result"))
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px at a phone's width"
        snap(driver, shots / "08-phone.png")
    finally:
        driver.set_window_size(1280, 900)
