"""The chat page in a real browser (Debian's Chromium driven by Playwright) against real
servers over real stores. Screenshots land in test-artifacts/."""

import contextlib
from pathlib import Path

import httpx
import pytest

from tests.conftest import NEAR_MISS, ServerProcess, seeded_data
from tests.web_helpers import ARTIFACTS, DESKTOP, PHONE, ask, in_view, new_page, open_page

pytest_plugins = ["tests.web_page"]


def test_ask_and_see_a_streamed_answer_with_citations(browser, site: str) -> None:
    page = open_page(browser, site)
    with page.expect_response("**/api/answer/stream") as streamed:
        answer = ask(page, "Which countries hold joint military exercises in the region?")
    assert streamed.value.headers["content-type"].startswith("text/event-stream")
    assert "Japon" in answer.locator(".text").inner_text()
    question = "Which countries hold joint military exercises in the region?"
    cited = httpx.post(f"{site}/api/answer", json={"question": question}).json()["citations"]
    # One chip per citation the server returned, numbered from 1, and one source each.
    chips = answer.locator(".text .cite")
    assert cited and chips.all_inner_texts() == [str(n) for n in range(1, len(cited) + 1)]
    assert answer.locator(".sources li").count() == len(cited)
    assert "Implications pour l’Échiquier Politique Régional" in answer.locator(".sources").inner_text()
    assert page.errors == []


def test_citation_opens_its_document_with_the_passage_highlighted(browser, site: str) -> None:
    page = open_page(browser, site)
    answer = ask(page, "Quels mécanismes alternatifs de paiement sont envisagés ?")
    answer.locator(".text .cite").first.click()
    panel = page.locator("#panel")
    panel.wait_for()
    highlight = page.locator("#panel-text mark#highlight")
    highlight.wait_for()
    cited = httpx.post(
        f"{site}/api/answer", json={"question": "Quels mécanismes alternatifs de paiement sont envisagés ?"}
    ).json()
    assert highlight.inner_text() == cited["citations"][0]["text"]
    assert page.locator("#panel-title").inner_text().startswith("Sergueï Lavrov")
    assert page.locator("#panel-section").inner_text() == "Perspectives et Enjeux à Long Terme"
    assert len(page.locator("#panel-text").inner_text()) > 4000  # the whole document is there
    assert highlight.is_visible() and in_view(page, "#panel-text", "#highlight")
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('cite')")


def test_follow_up_and_reload_keep_the_conversation(browser, site: str) -> None:
    page = open_page(browser, site, locale="fr-FR")
    ask(page, "Quelles retombées la visite pourrait-elle avoir à court terme ?")
    follow = ask(page, "Et à long terme ?")
    assert "multipolaire" in follow.inner_text()
    page.reload()
    page.locator(".message").nth(3).wait_for()
    assert page.locator(".message.user .text").all_inner_texts()[1] == "Et à long terme ?"
    assert page.locator("#empty").is_hidden()
    page.click("#new-conversation")
    assert page.locator(".message").count() == 0 and page.locator("#empty").is_visible()
    page.reload()
    page.wait_for_selector("#starters li button")
    assert page.locator(".message").count() == 0


def test_not_found_answers_look_different(browser, site: str) -> None:
    page = open_page(browser, site, locale="fr-FR")
    answer = ask(page, "Quel est le salaire de Sergueï Lavrov ?")
    assert "not-found" in answer.get_attribute("class")
    assert answer.locator(".not-found-label").inner_text() == "Absent des documents"
    assert answer.locator(".cite").count() == 0
    found = ask(page, "Quels pays mènent des manœuvres militaires conjointes dans la région ?")
    assert "not-found" not in found.get_attribute("class")


def test_a_refusal_shows_the_closest_passages_and_opens_one(browser, site: str) -> None:
    related = httpx.post(f"{site}/api/answer", json={"question": NEAR_MISS}).json()["related"]
    assert related, "the near-miss question offers no closest passages"
    page = open_page(browser, site, locale="fr-FR")
    answer = ask(page, NEAR_MISS)
    assert "not-found" in answer.get_attribute("class")
    block = answer.locator(".related")
    assert block.locator("h3").inner_text().lower() == "passages les plus proches"
    assert block.locator(".related-open").count() == len(related)
    assert related[0]["text"] in block.locator(".related-open").first.inner_text()
    # Not an answer: no [n] chips, no sources, nothing to copy; it can still be rated.
    assert answer.locator(".cite, .sources").count() == 0
    assert answer.get_by_role("button", name="Copier la réponse 1 et ses sources").count() == 0
    assert answer.get_by_role("button", name="La réponse 1 n’était pas utile").count() == 1
    block.locator(".related-open").first.click()
    highlight = page.locator("#panel-text mark#highlight")
    highlight.wait_for()
    assert highlight.inner_text() == related[0]["text"]
    assert page.locator("#panel-eyebrow").inner_text().lower() == "passage le plus proche"
    assert page.locator("#panel-title").inner_text() == related[0]["title"]
    assert highlight.is_visible() and in_view(page, "#panel-text", "#highlight")
    page.keyboard.press("Escape")
    page.locator("#panel").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('related-open')")
    # They survive a reload, and a cited source still opens as a source.
    page.reload()
    saved = page.locator(".message.assistant").first
    saved.wait_for()
    assert saved.locator(".related .related-open").count() == len(related)
    saved.locator(".related-open").last.click()
    page.locator("#panel-text mark#highlight").wait_for()
    assert page.locator("#panel-text mark#highlight").inner_text() == related[-1]["text"]
    found = ask(page, "Quels mécanismes alternatifs de paiement sont envisagés ?")
    assert found.locator(".related").count() == 0
    found.locator(".text .cite").first.click()
    page.wait_for_function("() => document.querySelector('#panel-eyebrow').textContent === 'Passage source'")
    english = open_page(browser, site)
    assert ask(english, NEAR_MISS).locator(".related h3").inner_text().lower() == "closest passages"
    assert page.errors == [] and english.errors == []


def test_interface_follows_the_browser_language_and_starters_ask(browser, site: str) -> None:
    french = open_page(browser, site, locale="fr-FR")
    assert french.locator("#send").inner_text() == "Envoyer"
    assert french.evaluate("document.documentElement.lang") == "fr"
    starter = french.locator("#starters li button").first
    text = starter.inner_text()
    starter.click()
    answer = french.locator(".message.assistant").first
    answer.and_(french.locator(":not(.streaming)")).wait_for()
    assert french.locator(".message.user .text").first.inner_text() == text
    assert "not-found" not in answer.get_attribute("class")
    english = open_page(browser, site)
    assert english.locator("#send").inner_text() == "Send"


def test_enter_sends_and_shift_enter_adds_a_line(browser, site: str) -> None:
    page = open_page(browser, site)
    page.fill("#question", "First line")
    page.press("#question", "Shift+Enter")
    page.type("#question", "second line")
    assert page.input_value("#question") == "First line\nsecond line"
    assert page.locator(".message").count() == 0


def test_stop_button_stops_a_streaming_answer(browser, site: str) -> None:
    page = open_page(browser, site)
    held = []
    page.route("**/api/answer/stream", lambda route: held.append(route))  # held until released
    page.fill("#question", "Which countries hold joint military exercises in the region?")
    page.press("#question", "Enter")
    stop = page.locator("#stop")
    stop.wait_for()
    assert page.locator("#send").is_disabled()
    stop.click()
    answer = page.locator(".message.assistant").first
    answer.and_(page.locator(":not(.streaming)")).wait_for()
    assert "Stopped." in answer.inner_text()
    assert stop.is_hidden() and page.locator("#send").is_enabled()
    with contextlib.suppress(Exception):
        held[0].abort()
    page.unroute("**/api/answer/stream")
    # The empty stopped answer is not sent back as history: the next question works.
    follow = ask(page, "What role could Russia play in denuclearization talks?")
    assert "médiateur" in follow.inner_text()
    assert page.locator("#status").is_hidden()


def test_html_in_questions_documents_and_answers_is_shown_as_text(browser, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "piege.md").write_text(
        "# <img src=x onerror=window.__pwned=1> Titre piégé\n\n"
        "## <script>window.__pwned=2</script> Section\n\n"
        'Le code secret du coffre est <img src=x onerror="window.__pwned=3"> caché dans la cave du château.\n',
        encoding="utf-8",
    )
    data = seeded_data(tmp_path / "data")
    from tests.conftest import run_cli

    assert run_cli("ingest", str(docs), env={"ASSISTANT_DATA_DIR": str(data)}).returncode == 0
    server = ServerProcess(data, ASSISTANT_RATE_LIMIT_PER_MINUTE="0").start()
    try:
        page = open_page(browser, server.url, locale="fr-FR")
        page.fill("#question", "<script>window.__pwned=4</script><img src=x onerror=window.__pwned=5> ?")
        page.press("#question", "Enter")
        page.locator(".message.assistant").first.and_(page.locator(":not(.streaming)")).wait_for()
        assert "<script>window.__pwned=4</script>" in page.locator(".message.user").first.inner_text()
        answer = ask(page, "Où est caché le code secret du coffre ?")
        assert '<img src=x onerror="window.__pwned=3">' in answer.locator(".text").inner_text()
        answer.locator(".text .cite").first.click()
        page.locator("#panel-text mark").wait_for()
        assert "<script>window.__pwned=2</script>" in page.locator("#panel-text").inner_text()
        assert "<img" in page.locator("#panel-title").inner_text()
        # Deliberately a wait: an injected handler would run within it; nothing signals that none did.
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#messages img, #panel img, #messages script, #panel script").count() == 0
    finally:
        server.stop()


def test_server_errors_are_shown(browser, tmp_path: Path) -> None:
    data = seeded_data(tmp_path / "data")
    limited = ServerProcess(data, ASSISTANT_RATE_LIMIT_PER_MINUTE="3").start()
    try:
        page = open_page(browser, limited.url)  # 1 request: the starters
        ask(page, "Which countries hold joint military exercises in the region?")  # 2
        ask(page, "What role could Russia play in denuclearization talks?")  # 3
        page.fill("#question", "How long will Lavrov stay in North Korea?")
        page.press("#question", "Enter")
        status = page.locator("#status")
        status.wait_for()
        assert "Try again in" in status.inner_text()
        assert page.input_value("#question") == "How long will Lavrov stay in North Korea?"
    finally:
        limited.stop()
    page.fill("#question", "Is anyone there?")
    page.press("#question", "Enter")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('cannot be reached')")


def test_api_key_is_asked_for_and_kept_for_the_session(browser, tmp_path: Path) -> None:
    server = ServerProcess(seeded_data(tmp_path / "data"), ASSISTANT_API_KEYS="page-key").start()
    try:
        page = new_page(browser)
        page.goto(server.url)
        dialog = page.locator("#key-dialog")
        dialog.wait_for()
        page.fill("#key-input", "page-key")
        page.click("#key-dialog button[type=submit]")
        page.wait_for_selector("#starters li button")
        answer = ask(page, "What role could Russia play in denuclearization talks?")
        assert "médiateur" in answer.inner_text()
        assert page.evaluate("sessionStorage.getItem('assistant.apiKey')") == "page-key"
    finally:
        server.stop()


def test_answer_parser_links_only_returned_markers(browser, site: str) -> None:
    page = open_page(browser, site)
    result = page.evaluate(
        """async () => {
        const { parseAnswer, parseEvents } = await import('/answer.js');
        const cites = [{ id: 1 }, { id: 2 }];
        return {
          plain: parseAnswer('A [1] B [3] C [1, 2].', cites),
          streaming: parseAnswer('A [1] and [', cites, { streaming: true }),
          half: parseAnswer('A [1', cites, { streaming: true }),
          events: parseEvents('event: delta\\ndata: {"text": "x"}\\n\\nevent: do'),
        };
      }"""
    )
    assert result["plain"] == [
        {"type": "text", "text": "A "},
        {"type": "cite", "id": 1},
        {"type": "text", "text": " B [3] C "},
        {"type": "cite", "id": 1},
        {"type": "cite", "id": 2},
        {"type": "text", "text": "."},
    ]
    assert result["streaming"][-1] == {"type": "text", "text": " and "}
    assert result["half"] == [{"type": "text", "text": "A "}]
    assert result["events"] == {"events": [{"event": "delta", "data": '{"text": "x"}'}], "rest": "event: do"}


def test_accessible_names_and_live_region(browser, site: str) -> None:
    page = open_page(browser, site)
    assert page.locator("label[for=question]").count() == 1
    assert page.get_attribute("#status", "role") == "status"
    answer = ask(page, "What role could Russia play in denuclearization talks?")
    assert answer.locator(".cite").first.get_attribute("aria-label").startswith("Source 1 of answer 1: Sergueï Lavrov")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.tagName") in {"BUTTON", "TEXTAREA"}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("name", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_screenshots(browser, site: str, scheme: str, name: str, viewport: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = open_page(browser, site, locale="fr-FR", scheme=scheme, viewport=viewport)
    page.screenshot(path=str(ARTIFACTS / f"empty-{name}-{scheme}.png"))
    ask(page, "Quel est le salaire de Sergueï Lavrov ?")
    answer = ask(page, "Quels mécanismes alternatifs de paiement sont envisagés ?")
    page.screenshot(path=str(ARTIFACTS / f"chat-{name}-{scheme}.png"))
    answer.locator(".text .cite").first.click()
    page.locator("#panel-text mark").wait_for()
    page.screenshot(path=str(ARTIFACTS / f"citation-{name}-{scheme}.png"))
    assert page.errors == []
