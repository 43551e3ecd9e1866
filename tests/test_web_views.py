"""Screenshots of the page's views in test-artifacts/, desktop and phone, light and dark,
French and English: an answer being searched for, its sources before its text, a refusal
with its closest passages, the feedback form, "jump to latest", the conversations and
documents drawers, a document in the panel. None may break the page's security policy."""

from __future__ import annotations

import pytest

from tests.conftest import NEAR_MISS
from tests.web_helpers import ARTIFACTS, DESKTOP, PHONE, finished, hold_streams, open_page, release

pytest_plugins = ["tests.web_page"]

# The page runs under a strict Content-Security-Policy: nothing it does may be refused.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI }));
"""

QUESTIONS = {
    "fr": ("Quels mécanismes alternatifs de paiement sont envisagés ?", "Et à long terme ?"),
    "en": (
        "What alternative payment mechanisms could be used?",
        "What role could Russia play in denuclearization talks?",
    ),
}


@pytest.mark.parametrize("locale", ["fr-FR", "en-US"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("name", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_views(browser, site: str, locale: str, scheme: str, name: str, viewport: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    lang = locale[:2]
    suffix = f"{name}-{scheme}-{lang}"
    page = open_page(browser, site, locale=locale, scheme=scheme, viewport=viewport, script=RECORD_VIOLATIONS)
    first, second = QUESTIONS[lang]

    hold_streams(page)
    page.fill("#question", first)
    page.press("#question", "Enter")
    page.locator(".message .progress").wait_for()
    page.screenshot(path=str(ARTIFACTS / f"searching-{suffix}.png"))
    release(page, 1)
    page.wait_for_function("() => document.querySelector('.message .sources li')")
    page.screenshot(path=str(ARTIFACTS / f"sources-first-{suffix}.png"))
    release(page, 100)
    finished(page, 0)
    page.evaluate("() => { window.__drip.on = false; }")

    page.fill("#question", NEAR_MISS)
    page.press("#question", "Enter")
    refusal = finished(page, 1)
    assert refusal.locator(".related .related-open").count() >= 1
    refusal.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"refusal-related-{suffix}.png"))

    page.fill("#question", second)
    page.press("#question", "Enter")
    answer = finished(page, 2)
    answer.locator(".rate-down").click()
    answer.locator(".feedback textarea").fill(
        "La deuxième source manque." if lang == "fr" else "The second source is missing."
    )
    answer.locator(".feedback").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"feedback-{suffix}.png"))
    answer.locator(".feedback textarea").press("Escape")

    page.evaluate("() => { document.getElementById('conversation').scrollTop = 0; }")
    page.locator("#jump").wait_for()
    page.screenshot(path=str(ARTIFACTS / f"jump-to-latest-{suffix}.png"))

    page.click("#new-conversation")
    page.locator("#starters li button").first.click()
    finished(page, 0)
    page.click("#open-conversations")
    page.locator("#conversation-list .conversation-item").nth(1).wait_for()
    page.screenshot(path=str(ARTIFACTS / f"conversations-{suffix}.png"))
    page.keyboard.press("Escape")

    page.click("#doc-count")
    page.locator("#documents-drawer .doc").first.wait_for()
    page.locator("#documents-drawer #upload").wait_for()
    page.screenshot(path=str(ARTIFACTS / f"documents-{suffix}.png"))
    page.locator("#documents-drawer .doc-open").first.click()
    page.locator("#panel-text h4").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / f"document-{suffix}.png"))
    assert page.errors == []
    assert page.evaluate("() => window.__violations") == []
