"""Helpers of the page tests: opening the page in Debian's Chromium, asking, pacing a
stream. Their fixtures are in `tests/web_page.py`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Other sites' names, made to resolve to this machine as an attacker's DNS would
    # (tests/test_security.py).
    "--host-resolver-rules=MAP evil.test 127.0.0.1, MAP rebind.attacker.test 127.0.0.1",
]
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 820}
PHONE = {"width": 390, "height": 844}

if not CHROMIUM.exists():
    reason = "Debian's chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("ASSISTANT_REQUIRE_BROWSER"):
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)

# Holds back the events of answer streams until the test releases them (window.__drip.next(n)),
# so that a test sees the page mid-answer for as long as it needs. The events are the real
# server's, read whole first; only their pace is the test's.
DRIP = """
(() => {
  const realFetch = window.fetch.bind(window);
  const drip = { on: false, sent: 0, total: 0, next: () => 0 };
  window.__drip = drip;
  window.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    if (!drip.on || !url.includes("api/answer/stream")) return realFetch(input, init);
    const response = await realFetch(input, init);
    if (!response.ok) return response;
    const events = (await response.text()).split("\\n\\n").filter((e) => e.trim()).map((e) => e + "\\n\\n");
    const encoder = new TextEncoder();
    drip.sent = 0;
    drip.total = events.length;
    const body = new ReadableStream({
      start(controller) {
        drip.next = (n = 1) => {
          for (let i = 0; i < n && drip.sent < events.length; i += 1) {
            controller.enqueue(encoder.encode(events[drip.sent++]));
          }
          if (drip.sent >= events.length) controller.close();
          return drip.sent;
        };
        init?.signal?.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")));
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  };
})();
"""


def data_copy(seeded: Path, folder: Path) -> Path:
    """A data folder of its own, holding the seeds (a copy: no second ingest)."""
    shutil.copytree(seeded, folder)
    return folder


def new_page(
    browser,
    *,
    locale: str = "en-US",
    scheme: str = "light",
    viewport: dict = DESKTOP,
    context=None,
    script: str = "",
):
    """A page in a context of its own (or in `context`, as a new tab), with its errors
    collected in ``page.errors``, the stream pacer installed (off until turned on) and
    `script` run before the page's own."""
    if context is None:
        context = browser.new_context(locale=locale, color_scheme=scheme, viewport=viewport)
        context.add_init_script(DRIP)
    page = context.new_page()
    if script:
        page.add_init_script(script)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def open_page(browser, url: str, **options):
    """The page, loaded, its starters shown."""
    page = new_page(browser, **options)
    page.goto(url)
    page.wait_for_selector("#starters li button")
    return page


def finished(page, index: int):
    """The `index`th answer once it is no longer streaming."""
    answer = page.locator(".message.assistant").nth(index)
    answer.and_(page.locator(":not(.streaming)")).wait_for()
    return answer


def ask(page, question: str):
    """Ask with Enter; the finished answer."""
    count = page.locator(".message.assistant").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    return finished(page, count)


def hold_streams(page) -> None:
    """From now on, answer streams wait for ``release``."""
    page.evaluate("() => { window.__drip.on = true; }")


def release(page, events: int = 1) -> int:
    """Let `events` more events of the held stream through, once it has reached the page;
    returns how many have gone through."""
    page.wait_for_function("() => window.__drip.total > 0")
    return page.evaluate("(n) => window.__drip.next(n)", events)


def in_view(page, container: str, target) -> bool:
    """Whether an element (a selector, or a locator) is at least partly in a scrolled box."""
    handle = page.locator(target).element_handle() if isinstance(target, str) else target.element_handle()
    return page.evaluate(
        """([c, t]) => { const a = document.querySelector(c).getBoundingClientRect();
        const b = t.getBoundingClientRect();
        return b.bottom > a.top + 1 && b.top < a.bottom - 1; }""",
        [container, handle],
    )
