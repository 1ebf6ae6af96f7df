"""End to end: the Space served on 127.0.0.1 and driven in real headless Chromium (Debian's, via Playwright).

No browser is downloaded: Playwright launches `/usr/bin/chromium` (`.ci/setup` installs it with apt when missing).
Every request the page makes outside 127.0.0.1 is aborted and recorded, and the test asserts there were none.
"""

import importlib.util
import os
import shutil
import socket
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the Space needs gradio: pip install 'hf_diverse[space]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package: pip install playwright")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("HF_DIVERSE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SELECT_TIMEOUT_MS = 120_000

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"no chromium browser at {CHROMIUM}: install Debian's `chromium` (apt-get install -y chromium; "
        ".ci/setup does this as root)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    spec = importlib.util.spec_from_file_location("hf_diverse_space_app_browser", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    app.SELF_BLEU_SAMPLES = 10  # the report's Self-BLEU sample, kept small for test time
    port = _free_port()
    app.demo.queue(default_concurrency_limit=1).launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.demo.close()


@pytest.fixture(scope="module")
def page(server):
    outside = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})

        def only_loopback(route):
            url = route.request.url
            if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        context.route("**/*", only_loopback)
        page = context.new_page()
        page.outside_requests = outside
        page.goto(server, wait_until="domcontentloaded")
        page.locator("#load").wait_for(timeout=60_000)
        yield page
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "space_final.png"), full_page=True)
        browser.close()


def _wait_text(page, selector: str, text: str, timeout: int = SELECT_TIMEOUT_MS):
    page.wait_for_function(
        "([sel, text]) => { const el = document.querySelector(sel); return el && el.innerText.includes(text); }",
        arg=[selector, text],
        timeout=timeout,
    )


def _table_rows(page, selector: str) -> int:
    """Data rows of a gradio Dataframe: the grid's aria-rowcount counts the header row too."""
    return int(page.locator(f"{selector} [role=grid]").get_attribute("aria-rowcount")) - 1


def test_select_qdit_in_the_browser(page):
    assert "Limits of this Space" in page.locator("#limits").inner_text()
    page.get_by_label("Embedded sample").check()
    page.locator("#load").click()
    _wait_text(page, "#pool-info", "294 rows")
    assert "prompt_response" in page.locator("#pool-info").inner_text()

    page.locator("#k input").fill("20")
    page.locator("#select").click()
    _wait_text(page, "#status", "Selected 20 of 294 rows")

    assert _table_rows(page, "#table") == 20
    headers = page.locator("#table thead th").all_inner_texts()
    assert any("instruction" in h for h in headers) and any("response" in h for h in headers)
    # the 2-D map rendered as a loaded image
    page.wait_for_function(
        "() => { const i = document.querySelector('#map img'); return i && i.complete && i.naturalWidth > 100; }",
        timeout=30_000,
    )
    # the diversity report rendered as a table with a row per metric
    assert _table_rows(page, "#report") >= 3
    report_text = page.locator("#report").inner_text()
    assert "subset" in report_text and "pool" in report_text and "random" in report_text
    # the downloads are links the browser can fetch: the JSONL holds the 20 selected rows
    links = page.locator("#downloads a[href]")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert any(h.endswith("subset.jsonl") for h in hrefs) and any(h.endswith("subset.parquet") for h in hrefs)
    assert any(h.endswith("README.md") for h in hrefs)
    jsonl = page.request.get(next(h for h in hrefs if h.endswith("subset.jsonl")))
    assert jsonl.ok and len(jsonl.text().splitlines()) == 20
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "space_qdit_k20.png"), full_page=True)


def test_bad_input_shows_a_message_and_the_app_keeps_working(page):
    page.locator("#k input").fill("5000")
    page.locator("#select").click()
    _wait_text(page, "#status", "k must be in [1, 294]")
    status = page.locator("#status").inner_text()
    assert "Error" in status and "Traceback" not in status
    page.locator(".toast-body").first.wait_for(timeout=10_000)
    assert "k must be in [1, 294]" in " ".join(page.locator(".toast-body").all_inner_texts())
    assert _table_rows(page, "#table") == 20  # the previous result stays
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "space_bad_k.png"), full_page=True)

    page.locator("#k input").fill("10")
    page.locator("#select").click()
    _wait_text(page, "#status", "Selected 10 of 294 rows")
    assert _table_rows(page, "#table") == 10


def test_failed_push_shows_a_message_and_never_echoes_the_token(page):
    token = "hf_browserSECRET0123456789"
    page.get_by_text("3. Push to the Hub").click()
    page.locator("#repo-id input, #repo-id textarea").first.fill("me/ifbench-qdit")
    token_box = page.locator("#token input").first
    assert token_box.get_attribute("type") == "password"
    token_box.fill(token)
    page.locator("#push").click()
    _wait_text(page, "#push-status", "Error")
    message = page.locator("#push-status").inner_text()
    assert "me/ifbench-qdit" in message and "Traceback" not in message, message  # tests run with HF_HUB_OFFLINE=1
    shown = page.locator("body").inner_text()
    stored = page.evaluate("() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    assert token not in shown and token not in stored and token not in message


def test_page_made_no_request_outside_loopback(page):
    assert page.outside_requests == []
