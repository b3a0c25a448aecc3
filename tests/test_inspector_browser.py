"""The inspector page in a real headless Chromium (the system's, never a downloaded one).

Requests go through the ``openai`` SDK against a real socket; the page must show them live,
explain the unmatched one, and show a ``<script>`` in a message as text. ``make screenshot``
runs ``test_screenshot`` with ``MOCKSERVER_SCREENSHOT`` set to write the README's picture.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest
import yaml

from mockserver import MockServer, Options
from mockserver.inspector import views as inspector
from mockserver.state.journal import Entry

from .test_redis import RedisServer
from .test_shared import start_serve, stop

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def expect(locator: Any) -> Any:
    """Playwright's polling assertions: they need no eval, so the page's CSP stays on."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCENARIOS: list[dict[str, Any]] = [
    {
        "name": "weather",
        "match": {"last_user": {"contains": "weather"}},
        "reply": {"content": "It is sunny in Paris today."},
    },
    {
        "name": "greeting",
        "match": {"last_user": {"regex": "^(hi|hello)"}, "model": "gpt-4*"},
        "reply": {"content": "Hello! I am a scripted stand-in."},
    },
]
WAIT = 10_000  # ms: generous for a loaded CI machine; a pass takes milliseconds


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The browser tests need Playwright's Python package: pip install -e '.[test]'")
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM}: as root, "
            "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu). "
            "Deselect them with -m 'not browser'. Never `playwright install`."
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer(SCENARIOS, options=Options(speed=0)) as mock:
        yield mock


def client(server: MockServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-browser", max_retries=0)


def ask(server: MockServer, text: str, **extra: Any) -> Any:
    with client(server) as sdk:
        return sdk.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": text}], **extra
        )


def open_page(browser: Browser, server: MockServer | str, **context: Any) -> Page:
    """The page of ``server`` (or a served mock's URL), once it is live."""
    page = browser.new_page(viewport={"width": 1440, "height": 860}, **context)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    url = server if isinstance(server, str) else server.url
    page.goto(f"{url}/_mock/ui")
    page.wait_for_selector("#conn[data-state=live]", timeout=WAIT)
    page.errors = errors
    return page


def rows(page: Page) -> Any:
    return page.locator("#journal tbody tr")


def test_rows_appear_live_with_their_scenario(browser: Browser, server: MockServer) -> None:
    page = open_page(browser, server)
    assert rows(page).count() == 0
    ask(server, "How is the weather in Paris?")
    expect(rows(page)).to_have_count(1, timeout=WAIT)
    ask(server, "hello there", stream=True).close()
    expect(rows(page)).to_have_count(2, timeout=WAIT)
    newest, oldest = rows(page).nth(0), rows(page).nth(1)
    assert "greeting" in newest.locator(".cell-scenario").inner_text()
    assert "SSE" in newest.inner_text()
    assert "weather" in oldest.locator(".cell-scenario").inner_text()
    assert "How is the weather in Paris?" in oldest.inner_text()
    assert "200" in oldest.inner_text()
    oldest.click()
    page.wait_for_selector("#details h3:text('Conversation · 1 message')", timeout=WAIT)
    assert "req_" in page.locator("#details").inner_text()
    assert page.errors == []
    page.close()


def test_pause_holds_rows_and_reset_clears_them(browser: Browser, server: MockServer) -> None:
    page = open_page(browser, server)
    ask(server, "weather 1")
    expect(rows(page)).to_have_count(1, timeout=WAIT)
    page.click("#pause")
    ask(server, "weather 2")
    expect(page.locator("#pause")).to_have_text("Resume (1 new)", timeout=WAIT)
    assert rows(page).count() == 1
    page.click("#pause")
    expect(rows(page)).to_have_count(2, timeout=WAIT)
    page.select_option("#reset", "journal")
    expect(rows(page)).to_have_count(0, timeout=WAIT)
    assert server.journal == []
    page.close()


def test_an_unmatched_request_shows_why(browser: Browser, server: MockServer) -> None:
    page = open_page(browser, server)
    with pytest.raises(openai.NotFoundError):
        ask(server, "Tell me a joke")
    page.wait_for_selector("#journal tbody tr .badge:text('UNMATCHED')", timeout=WAIT)
    rows(page).first.click()
    details = page.locator("#details")
    details.locator("h3:text('Why nothing matched')").wait_for(timeout=WAIT)
    text = details.inner_text()
    assert "last_user contains 'weather', got 'Tell me a joke'" in text
    assert "greeting" in text
    details.locator("button:text('Explain')").click()
    output = page.locator("#explain-output")
    output.locator("text=No scenario matches").wait_for(timeout=WAIT)
    assert "last_user contains 'weather'" in output.inner_text()
    page.close()


@pytest.mark.parametrize("csp", ["csp", "no-csp"])
def test_a_script_in_a_message_is_shown_as_text(
    browser: Browser, server: MockServer, csp: str
) -> None:
    """Inert with the page's Content-Security-Policy, and without it: shown as text, not markup."""
    page = open_page(browser, server, bypass_csp=csp == "no-csp")
    hostile = "weather <script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"
    ask(server, hostile)
    row = rows(page).first
    row.wait_for(timeout=WAIT)
    assert hostile in row.inner_text()
    row.click()
    page.locator("#details .message.user .body").wait_for(timeout=WAIT)
    assert page.locator("#details .message.user .body").inner_text() == hostile
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # the page's own
    assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    page.close()


def test_a_dropped_page_resumes_without_losing_or_doubling_rows(
    browser: Browser, server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten entries recorded at once overflow a 2-entry buffer: the server cuts the stream, the
    page reconnects with Last-Event-ID and gets the rest from the backlog."""
    monkeypatch.setattr(inspector, "BUFFER", 2)
    page = open_page(browser, server)
    resumed_from: list[str | None] = []

    def seen(request: Any) -> None:
        if "/_mock/events" in request.url:
            resumed_from.append(request.headers.get("last-event-id"))

    page.on("request", seen)
    journal = server.state.journal

    def burst() -> None:
        for n in range(10):
            journal.record(Entry(journal.next_seq(), 0.0, "POST", f"/burst/{n}", f"r{n}", {}))

    server._call(burst)
    expect(rows(page)).to_have_count(10, timeout=WAIT)
    expect(page.locator("#banner")).to_contain_text("fell more than 2 entries behind")
    page.wait_for_selector("#conn[data-state=live]", timeout=WAIT)
    seqs = page.locator("#journal tbody tr").evaluate_all("rs => rs.map(r => r.dataset.seq)")
    assert seqs == [str(n) for n in range(10, 0, -1)]
    assert resumed_from[0] == "2", "the page resumes after the last entry it got"
    page.close()


def test_reply_and_delays_are_shown_when_recorded(browser: Browser, server: MockServer) -> None:
    """The pipeline fills ``Entry.reply`` (a neutral summary); the page shows what it holds."""
    server.add(
        {
            "name": "paced",
            "match": {"last_user": "paced"},
            "reply": {"content": "One two three."},
            "cadence": {"first_delay": 0.5, "delay": 0.1},
        }
    )
    page = open_page(browser, server)
    ask(server, "paced", stream=True).close()
    summary = {
        "content": "One two three.",
        "reasoning": None,
        "refusal": None,
        "tool_calls": [{"name": "get_weather", "arguments": '{"city": "<b>Paris</b>"}'}],
        "finish_reason": "tool_calls",
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }
    server._call(lambda: setattr(server.state.journal.entries[-1], "reply", summary))
    rows(page).first.click()
    details = page.locator("#details")
    expect(details).to_contain_text("Scripted delays", timeout=WAIT)
    text = details.text_content() or ""
    assert "first text after 0.5 s" in text
    assert "tool call · get_weather" in text
    assert '{"city": "<b>Paris</b>"}' in text
    assert "prompt_tokens 9 · completion_tokens 4 · total_tokens 13" in text
    assert details.locator("b").count() == 0
    page.close()


def test_the_token_is_asked_once_and_sent_as_a_header(browser: Browser) -> None:
    options = Options(speed=0, admin_token="s3cret-token")
    with MockServer(SCENARIOS, options=options) as server:
        page = browser.new_page()
        urls: list[str] = []
        auth: list[str | None] = []

        def seen(request: Any) -> None:
            urls.append(request.url)
            if "/_mock/events" in request.url:
                auth.append(request.headers.get("authorization"))

        page.on("request", seen)
        page.goto(f"{server.url}/_mock/ui")
        page.locator("#token-dialog[open]").wait_for(timeout=WAIT)
        page.fill("#token-input", "s3cret-token")
        page.click("#token-dialog button[type=submit]")
        page.wait_for_selector("#conn[data-state=live]", timeout=WAIT)
        ask(server, "weather?")
        rows(page).first.wait_for(timeout=WAIT)
        assert page.locator("#token-dialog[open]").count() == 0
        assert "Bearer s3cret-token" in auth
        assert not any("s3cret" in url for url in urls)
        page.close()


def served(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    path = tmp_path / "scenarios.yaml"
    path.write_text(yaml.safe_dump({"scenarios": SCENARIOS}))
    return start_serve("--scenarios", str(path), *args)


def check_every_request_live(browser: Browser, pages: list[str], targets: list[str]) -> None:
    """Pages open on ``pages``; requests sent to ``targets`` in turn, each on a new connection
    (so ``--workers`` spreads them): every page shows every request live, once, and any row
    opens whichever process answered it."""
    opened = [open_page(browser, url) for url in pages]
    answered_by = set()
    texts = [f"weather report number {i}." for i in range(12)]
    for i, text in enumerate(texts):
        body = {"model": "gpt-4", "messages": [{"role": "user", "content": text}]}
        reply = httpx.post(f"{targets[i % len(targets)]}/v1/chat/completions", json=body,
                           headers={"Authorization": "Bearer sk-browser"})  # fmt: skip
        assert reply.status_code == 200, reply.text
        answered_by.add(reply.headers["x-mock-worker"])
    assert len(answered_by) == 2, "one process answered everything: nothing shared was shown"
    for page in opened:
        expect(rows(page)).to_have_count(len(texts), timeout=WAIT)
        shown = rows(page).evaluate_all("rs => rs.map(r => r.innerText)")
        assert [sum(text in row for row in shown) for text in texts] == [1] * len(texts)
        assert page.locator("#empty-journal").is_hidden()
        assert page.locator("#conn").get_attribute("data-state") == "live"
        workers = set()
        for n in range(len(texts)):
            rows(page).nth(n).click()
            details = page.locator("#details")
            expect(details.locator("h3:text('Conversation · 1 message')")).to_be_visible(
                timeout=WAIT
            )
            workers.add(details.locator("dd.worker").inner_text())
        assert workers == {f"worker {w}" for w in answered_by}
        assert page.errors == []
        page.close()


def test_workers_every_request_appears_live(browser: Browser, tmp_path: Path) -> None:
    """``--workers 2``: the page is the same as with one process (it said it was off)."""
    proc, url = served(tmp_path, "--workers", "2")
    try:
        check_every_request_live(browser, [url], [url])
    finally:
        stop(proc)


def test_redis_replicas_every_request_appears_live(browser: Browser, tmp_path: Path) -> None:
    """Two replicas on one Redis, a page open on each, requests to both in turn."""
    redis_server = RedisServer(tmp_path).start()
    try:
        procs = [served(tmp_path, "--state", redis_server.url) for _ in "ab"]
        try:
            urls = [url for _, url in procs]
            check_every_request_live(browser, urls, urls)
        finally:
            for proc, _ in procs:
                stop(proc)
    finally:
        redis_server.stop()


def _demo_traffic(server: MockServer) -> None:
    """A session that shows each kind of row: matched, streamed, adjusted, unmatched, error."""
    with client(server) as sdk:
        sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}], temperature=3
        )
        sdk.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "What's the weather in Paris?"}],
            stream=True,
        ).close()
        for text in ("Plan a day in Paris", "And what should I pack?"):
            sdk.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": text}],
                tools=[{"type": "function", "function": {"name": "get_weather"}}],
            )
        with pytest.raises(openai.APIStatusError):
            sdk.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "flaky backend"}]
            )
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Write me a haiku"}]
            )
        sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello again"}], top_p=2
        )


DEMO: list[dict[str, Any]] = [
    *SCENARIOS,
    {
        "name": "tool-round-trip",
        "match": {"tools": ["get_weather"]},
        "steps": [
            {"reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}},
            {"reply": {"content": "It is 18 °C in Paris."}},
        ],
        "conversation": {"header": "x-session-id"},
    },
    {
        "name": "flaky-then-ok",
        "match": {"last_user": {"contains": "flaky"}},
        "steps": [{"error": {"status": 503}}, {"reply": {"content": "Back again."}}],
    },
]


def test_screenshot(browser: Browser, tmp_path: Path) -> None:
    """The README's picture (light) and a dark one; ``MOCKSERVER_SCREENSHOT`` says where."""
    target = Path(os.environ.get("MOCKSERVER_SCREENSHOT") or tmp_path / "inspector.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    with MockServer(DEMO, options=Options(speed=0)) as server:
        for scheme, path in (("light", target), ("dark", target.with_stem(target.stem + "-dark"))):
            page = open_page(browser, server, color_scheme=scheme, device_scale_factor=1)
            if scheme == "light":
                _demo_traffic(server)
            expect(rows(page)).to_have_count(7, timeout=WAIT)
            page.locator("#journal tbody tr .badge:text('UNMATCHED')").click()
            page.locator("#details h3:text('Why nothing matched')").wait_for(timeout=WAIT)
            page.wait_for_timeout(1300)  # let the new-row highlight fade
            page.screenshot(path=str(path))
            assert path.stat().st_size > 20_000
            page.close()


def test_an_image_request_shows_its_thumbnail(browser: Browser, server: MockServer) -> None:
    page = open_page(browser, server)
    with client(server) as sdk:
        sdk.images.generate(model="gpt-image-2", prompt="a lighthouse", size="1536x1024")
    rows(page).first.wait_for(timeout=WAIT)
    rows(page).first.click()
    thumb = page.locator("#details img.thumb")
    thumb.wait_for(timeout=WAIT)
    expect(thumb).to_have_attribute("src", server.last.reply["images"][0])  # type: ignore[index]
    page.wait_for_function("document.querySelector('#details img.thumb').naturalWidth > 0")
    assert page.locator("#details").inner_text().count("1536x1024 · png") == 1
    assert page.errors == []
    page.close()
