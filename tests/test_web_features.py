"""What people expect of the chat page, in Debian's Chromium against real `assistant serve`
processes: the documents drawer (list, open, upload, delete and the API's errors), the
conversations kept in the browser, regenerate and edit, feedback, Markdown documents."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, fill, run_cli
from tests.web_helpers import PHONE, ask, data_copy, finished, new_page, open_page

pytest_plugins = ["tests.web_page"]

EXERCISES = "Which countries hold joint military exercises in the region?"
MEDIATOR = "What role could Russia play in denuclearization talks?"
STAY = "How long will Lavrov stay in North Korea?"
READER_KEY = "reader-key-for-the-drawer"
ADMIN_KEY = "admin-key-for-the-drawer"
NOTES = """# Notes de voyage

## Programme

- Arrivée à **Pyongyang** le vendredi
- Entretiens avec *Choe Son Hui*
- Visite du `port de Rason`
- <img src=x onerror="window.__pwned=1"> un piège

1. Premier jour : accueil officiel
2. Deuxième jour : dialogue stratégique

> Une phrase du ministre, citée telle quelle.

Plus de détails sur [le site](javascript:window.__pwned=2) et [l’agence](https://example.org/kcna).
"""


def note(name: str, subject: str) -> tuple[str, str]:
    """A small Markdown document of its own."""
    return name, f"# {subject}\n\nLe port de {subject} accueille des cargos russes chaque semaine depuis cette année.\n"


@pytest.fixture(scope="module")
def library(seeded_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An open server over the seeds and a Markdown note with lists."""
    root = tmp_path_factory.mktemp("library")
    data = data_copy(seeded_folder, root / "data")
    (root / "notes").mkdir()
    (root / "notes" / "notes-de-voyage.md").write_text(NOTES, encoding="utf-8")
    assert run_cli("ingest", str(root / "notes"), env={"ASSISTANT_DATA_DIR": str(data)}).returncode == 0
    server = ServerProcess(data, ASSISTANT_RATE_LIMIT_PER_MINUTE="0").start()
    yield server.url
    server.stop()


@pytest.fixture
def keyed(seeded_folder: Path, tmp_path: Path) -> Iterator[str]:
    """A server of its own with reader and admin keys, and small upload limits."""
    data = data_copy(seeded_folder, tmp_path / "data")
    server = ServerProcess(
        data,
        ASSISTANT_API_KEYS=READER_KEY,
        ASSISTANT_ADMIN_KEYS=ADMIN_KEY,
        ASSISTANT_RATE_LIMIT_PER_MINUTE="0",
        ASSISTANT_MAX_UPLOAD_BYTES="65536",
        ASSISTANT_MAX_UPLOAD_FILES="3",
    ).start()
    yield server.url
    server.stop()


def enter_key(page, url: str, key: str) -> None:
    page.goto(url)
    page.locator("#key-dialog[open]").wait_for()
    page.fill("#key-input", key)
    page.press("#key-input", "Enter")
    page.wait_for_selector("#starters li button")


def stored_ids(url: str) -> list[str]:
    documents = httpx.get(f"{url}/api/documents", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    return sorted(d["id"] for d in documents["documents"])


def listed(page) -> list[str]:
    return sorted(page.locator("#document-list .doc").evaluate_all("(items) => items.map((i) => i.dataset.id)"))


def choose_files(page, files: list[tuple[str, str]]) -> None:
    page.set_input_files(
        "#file-input", [{"name": n, "mimeType": "text/markdown", "buffer": t.encode()} for n, t in files]
    )


def drop_files(page, files: list[tuple[str, str]]) -> None:
    transfer = page.evaluate_handle(
        """(files) => { const data = new DataTransfer();
        for (const [name, text] of files) data.items.add(new File([text], name, { type: "text/markdown" }));
        return data; }""",
        files,
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


# The documents drawer -------------------------------------------------------------------


def test_the_documents_drawer_lists_and_opens_documents(browser, library: str) -> None:
    page = open_page(browser, library)
    count = page.locator("#doc-count")
    assert count.inner_text() == "2 documents"
    count.click()
    drawer = page.locator("#documents-drawer")
    drawer.locator(".doc").nth(1).wait_for()
    seed = drawer.locator('.doc[data-id="lavrov-visite-coree-du-nord.md"]')
    assert "Sergueï Lavrov attendu à Pyongyang" in seed.locator(".doc-title").inner_text()
    meta = seed.locator(".doc-meta").inner_text()
    assert meta.startswith("21 passages · added today at")
    # A reader of an open server may change documents: nothing is hidden from them.
    assert drawer.locator("#upload").is_visible()
    drawer.locator('.doc[data-id="notes-de-voyage.md"] .doc-open').click()
    page.locator("#panel").wait_for()
    assert page.locator("#panel-eyebrow").inner_text() == "Document"
    assert page.locator("#panel-title").inner_text() == "Notes de voyage"
    page.locator("#panel-text li").first.wait_for()
    assert not drawer.is_visible()
    page.keyboard.press("Escape")
    page.locator("#panel").wait_for(state="hidden")
    assert page.evaluate("() => document.activeElement.id") == "doc-count"
    assert page.errors == []


def test_the_documents_drawer_opens_from_the_phone_header(browser, library: str) -> None:
    page = open_page(browser, library, viewport=PHONE, locale="fr-FR")
    count = page.locator("#doc-count")
    assert count.is_visible() and count.inner_text() == "2 documents"
    count.click()
    page.locator("#documents-drawer .doc").nth(1).wait_for()
    assert page.locator("#documents-drawer").bounding_box()["width"] <= PHONE["width"]
    page.mouse.click(6, PHONE["height"] / 2)  # on the backdrop beside the drawer
    page.wait_for_function("() => !document.getElementById('documents-drawer').open")


def test_an_admin_uploads_by_picker_and_drop_and_deletes_with_confirmation(browser, keyed: str) -> None:
    page = new_page(browser)
    enter_key(page, keyed, READER_KEY)
    page.click("#doc-count")
    drawer = page.locator("#documents-drawer")
    drawer.locator(".doc").first.wait_for()
    # A reader sees the list, not the tools to change it.
    assert drawer.locator("#admin-hint").is_visible() and drawer.locator("#upload").is_hidden()
    assert drawer.locator(".doc button.danger").count() == 0
    drawer.get_by_role("button", name="Enter an admin key").click()
    page.fill("#key-input", ADMIN_KEY)
    page.press("#key-input", "Enter")
    drawer.locator("#upload").wait_for()
    choose_files(page, [note("rason.md", "Rason"), note("nampo.md", "Nampo")])
    results = drawer.locator("#upload-results li")
    results.nth(1).wait_for()
    assert results.all_inner_texts() == ["rason.md: added (1 passage)", "nampo.md: added (1 passage)"]
    page.wait_for_function("() => document.querySelectorAll('#document-list .doc').length === 3")
    assert listed(page) == stored_ids(keyed) == ["lavrov-visite-coree-du-nord.md", "nampo.md", "rason.md"]
    assert page.locator("#doc-count").inner_text() == "3 documents"
    drop_files(page, [note("wonsan.md", "Wonsan")])
    page.wait_for_function("() => document.querySelectorAll('#document-list .doc').length === 4")
    assert results.all_inner_texts() == ["wonsan.md: added (1 passage)"]
    # Deleting asks first; Cancel keeps the document.
    target = drawer.locator('.doc[data-id="nampo.md"]')
    target.get_by_role("button", name="Delete “Nampo”").click()
    confirm = page.locator("#confirm-dialog")
    confirm.wait_for()
    assert "Nampo" in confirm.inner_text() and "cannot be undone" in confirm.inner_text()
    page.click("#confirm-no")
    assert "nampo.md" in stored_ids(keyed)
    target.get_by_role("button", name="Delete “Nampo”").click()
    page.click("#confirm-yes")
    page.wait_for_function("() => document.querySelectorAll('#document-list .doc').length === 3")
    assert "nampo.md" not in stored_ids(keyed) and "nampo.md" not in listed(page)
    assert drawer.locator("#documents-notice").inner_text() == "“Nampo” was deleted."
    assert page.locator("#doc-count").inner_text() == "3 documents"
    assert page.errors == []


def test_upload_errors_show_the_api_message_and_change_nothing(browser, keyed: str) -> None:
    page = new_page(browser, locale="en-US")
    enter_key(page, keyed, ADMIN_KEY)
    page.click("#doc-count")
    drawer = page.locator("#documents-drawer")
    drawer.locator("#upload").wait_for()
    drawer.locator(".doc").first.wait_for()
    before = stored_ids(keyed)
    error = drawer.locator("#documents-error")
    cases = [
        ([("notes.docx", "du texte")], "Not a supported type: notes.docx: unsupported file type"),
        ([("big.md", "# Gros\n\n" + "Une phrase assez longue pour peser. " * 3000)], "Too large: "),
        ([note(f"n{i}.md", f"Port {i}") for i in range(4)], "Too many files: files: 4 files; the most"),
    ]
    for files, expected in cases:
        choose_files(page, files)
        page.wait_for_function(
            "(e) => document.getElementById('documents-error').textContent.startsWith(e)", arg=expected
        )
        assert error.inner_text().endswith("Nothing was changed.")
        assert stored_ids(keyed) == before and listed(page) == before
    assert "ASSISTANT_MAX_UPLOAD_FILES" in error.inner_text()


@pytest.fixture
def full_disk(seeded_folder: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A server whose data folder is on a small filesystem of its own (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(disk)], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc.stderr.decode().strip()}")
    data = data_copy(seeded_folder, disk / "data")
    server = ServerProcess(data, ASSISTANT_RATE_LIMIT_PER_MINUTE="0", ASSISTANT_STORE_MIN_FREE_MB="16").start()
    try:
        yield server.url, disk
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_an_upload_on_a_full_disk_says_so(browser, full_disk: tuple[str, Path]) -> None:
    url, disk = full_disk
    page = open_page(browser, url, locale="fr-FR")
    page.click("#doc-count")
    drawer = page.locator("#documents-drawer")
    drawer.locator("#upload").wait_for()
    drawer.locator(".doc").first.wait_for()
    before = stored_ids(url)
    fill(disk)
    choose_files(page, [note("rason.md", "Rason")])
    error = drawer.locator("#documents-error")
    error.wait_for()
    assert error.inner_text().startswith("Le disque du serveur est plein : ")
    assert error.inner_text().endswith("Rien n’a été modifié.")
    assert stored_ids(url) == before and listed(page) == before


# Conversations -------------------------------------------------------------------------


def stored_answer(page, index: int) -> str:
    """The text of the conversation's `index`th turn as the page keeps it (markers included)."""
    return page.evaluate(
        """(index) => JSON.parse(localStorage.getItem('assistant.conversations.v2'))
             .find((c) => c.id === sessionStorage.getItem('assistant.current')).turns[index].content""",
        index,
    )


def conversation_titles(page) -> list[str]:
    return page.locator("#conversation-list .conversation-title").all_inner_texts()


def test_conversations_are_listed_switched_renamed_and_deleted_with_undo(browser, site: str) -> None:
    page = open_page(browser, site)
    ask(page, EXERCISES)
    page.click("#new-conversation")
    ask(page, MEDIATOR)
    page.click("#open-conversations")
    drawer = page.locator("#conversations-drawer")
    drawer.locator(".conversation-item").nth(1).wait_for()
    assert conversation_titles(page) == [MEDIATOR, EXERCISES]  # newest first, named by their question
    assert drawer.locator("[aria-current=true] .conversation-title").inner_text() == MEDIATOR
    # Switch.
    drawer.locator(".conversation-open").nth(1).click()
    assert not drawer.is_visible()
    assert page.locator(".message.user .text").all_inner_texts() == [EXERCISES]
    # Rename.
    page.click("#open-conversations")
    item = drawer.locator(".conversation-item").nth(1)
    item.get_by_role("button", name=f"Rename “{EXERCISES}”").click()
    field = drawer.get_by_role("textbox", name="Conversation title")
    field.fill("Military exercises")
    field.press("Enter")
    assert conversation_titles(page) == [MEDIATOR, "Military exercises"]
    # Delete, undo, delete.
    drawer.get_by_role("button", name=f"Delete “{MEDIATOR}”").click()
    assert conversation_titles(page) == ["Military exercises"]
    notice = drawer.locator("#conversations-notice")
    assert notice.is_visible() and MEDIATOR in notice.inner_text()
    drawer.get_by_role("button", name="Undo").click()
    assert conversation_titles(page) == [MEDIATOR, "Military exercises"]
    drawer.get_by_role("button", name="Delete “Military exercises”").click()
    page.keyboard.press("Escape")
    # The conversation shown was deleted: the page starts a new one.
    assert page.locator(".message").count() == 0 and page.locator("#empty").is_visible()
    page.reload()
    page.wait_for_selector("#starters li button")
    page.click("#open-conversations")
    drawer.locator(".conversation-item").first.wait_for()
    assert conversation_titles(page) == [MEDIATOR]
    assert page.errors == []


def test_another_tab_sees_a_new_conversation_in_its_list(browser, site: str) -> None:
    context = browser.new_context(locale="en-US")
    first = new_page(browser, context=context)
    first.goto(site)
    first.wait_for_selector("#starters li button")
    second = new_page(browser, context=context)
    second.goto(site)
    second.wait_for_selector("#starters li button")
    second.click("#open-conversations")
    ask(first, STAY)
    second.locator("#conversation-list .conversation-item").first.wait_for()
    assert conversation_titles(second) == [STAY]
    context.close()


# Regenerate and edit -------------------------------------------------------------------


def test_regenerate_asks_the_last_question_again_in_place(browser, site: str) -> None:
    page = open_page(browser, site)
    ask(page, EXERCISES)
    ask(page, MEDIATOR)
    first_answer = stored_answer(page, 1)
    assert page.locator(".message.assistant").first.get_by_role("button", name="Regenerate answer 1").count() == 0
    with page.expect_request("**/api/answer/stream") as sent:
        page.get_by_role("button", name="Regenerate answer 2").click()
    assert sent.value.post_data_json == {
        "question": MEDIATOR,
        "history": [{"role": "user", "content": EXERCISES}, {"role": "assistant", "content": first_answer}],
    }
    finished(page, 1)
    assert page.locator(".message.user .text").all_inner_texts() == [EXERCISES, MEDIATOR]
    assert page.locator(".message").count() == 4
    page.reload()
    page.locator(".message").nth(3).wait_for()
    assert page.locator(".message").count() == 4


def test_edit_a_question_and_ask_again_from_there(browser, site: str) -> None:
    page = open_page(browser, site)
    ask(page, EXERCISES)
    ask(page, MEDIATOR)
    page.get_by_role("button", name="Edit question 1 and ask again").click()
    field = page.locator(".message.user .edit-field")
    assert field.input_value() == EXERCISES
    field.fill(STAY)
    with page.expect_request("**/api/answer/stream") as sent:
        field.press("Enter")
    assert sent.value.post_data_json == {"question": STAY, "history": []}
    answer = finished(page, 0)
    assert "trois jours" in answer.locator(".text").inner_text()
    assert page.locator(".message.user .text").all_inner_texts() == [STAY]
    page.reload()
    page.locator(".message").nth(1).wait_for()
    assert page.locator(".message").count() == 2
    # Escape leaves an edit without asking.
    page.get_by_role("button", name="Edit question 1 and ask again").click()
    page.locator(".edit-field").press("Escape")
    assert page.locator(".edit-field").count() == 0 and page.locator(".message").count() == 2


# Feedback ------------------------------------------------------------------------------


def test_feedback_is_stored_with_its_exchange(browser, site: str) -> None:
    page = open_page(browser, site)
    first = ask(page, EXERCISES)
    second = ask(page, MEDIATOR)
    first_answer = stored_answer(page, 1)
    second.get_by_role("button", name="Answer 2 was not helpful").click()
    comment = second.get_by_role("textbox", name="Anything to add? (optional)")
    comment.fill("<b>Too short</b>, and the second source is missing")
    with page.expect_response("**/api/feedback") as response:
        second.get_by_role("button", name="Send feedback").click()
    assert response.value.status == 201
    thanks = second.locator(".thanks")
    thanks.wait_for()
    assert thanks.inner_text() == "Thank you: your feedback was sent."
    down = second.get_by_role("button", name="Answer 2 was not helpful")
    assert down.get_attribute("aria-pressed") == "true" and down.is_disabled()
    first.get_by_role("button", name="Answer 1 was helpful").click()
    with page.expect_response("**/api/feedback"):
        first.get_by_role("button", name="Send feedback").click()
    first.locator(".thanks").wait_for()
    stored = httpx.get(f"{site}/api/feedback").json()["feedback"]
    up, down_rating = stored[0], stored[1]
    assert (up["rating"], up["question"], up["history"], up["comment"]) == ("up", EXERCISES, [], None)
    assert down_rating["rating"] == "down" and down_rating["question"] == MEDIATOR
    assert down_rating["history"] == [
        {"role": "user", "content": EXERCISES},
        {"role": "assistant", "content": first_answer},
    ]
    assert down_rating["comment"] == "<b>Too short</b>, and the second source is missing"
    assert down_rating["found"] is True and down_rating["citations"][0]["id"] == 1
    page.reload()
    page.locator(".message").nth(3).wait_for()
    assert page.get_by_role("button", name="Answer 2 was not helpful").get_attribute("aria-pressed") == "true"
    assert page.get_by_role("button", name="Answer 1 was helpful").get_attribute("aria-pressed") == "true"
    assert page.errors == []


def test_feedback_can_be_cancelled(browser, site: str) -> None:
    page = open_page(browser, site, locale="fr-FR")
    answer = ask(page, STAY)
    answer.get_by_role("button", name="La réponse 1 était utile").click()
    answer.get_by_role("textbox").press("Escape")
    assert answer.locator(".feedback").count() == 0
    assert answer.get_by_role("button", name="La réponse 1 était utile").get_attribute("aria-pressed") == "false"


# Markdown ------------------------------------------------------------------------------


def test_markdown_lists_emphasis_and_links_render_as_text(browser, library: str) -> None:
    page = open_page(browser, library, locale="fr-FR")
    page.click("#doc-count")
    page.locator('#documents-drawer .doc[data-id="notes-de-voyage.md"] .doc-open').click()
    text = page.locator("#panel-text")
    text.locator("ul li").first.wait_for()
    assert text.locator("h4").inner_text() == "Programme"
    assert text.locator("ul li").all_inner_texts() == [
        "Arrivée à Pyongyang le vendredi",
        "Entretiens avec Choe Son Hui",
        "Visite du port de Rason",
        '<img src=x onerror="window.__pwned=1"> un piège',
    ]
    assert text.locator("ul strong").inner_text() == "Pyongyang"
    assert text.locator("ul em").inner_text() == "Choe Son Hui"
    assert text.locator("ul code").inner_text() == "port de Rason"
    assert text.locator("ol li").count() == 2
    assert text.locator("blockquote").inner_text() == "Une phrase du ministre, citée telle quelle."
    links = text.locator("a")
    assert links.count() == 1 and links.get_attribute("href") == "https://example.org/kcna"
    assert "le site" in text.inner_text() and "javascript" not in text.inner_text()
    assert "**" not in text.inner_text() and "- " not in text.inner_text()
    # Deliberately a wait: an injected handler would run within it; nothing signals that none did.
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#panel img, #panel script").count() == 0


def test_a_passage_in_a_list_is_highlighted_where_it_is(browser, library: str) -> None:
    page = open_page(browser, library)
    marked = page.evaluate(
        """async (text) => {
        const { renderDocument } = await import('/markdown.js');
        const start = text.indexOf('Entretiens'), end = text.indexOf('Hui') + 3;
        const { node, marks } = renderDocument(text, { markdown: true, highlight: { start, end } });
        return { marks: marks.map((m) => [m.textContent, m.closest('li') !== null, m.closest('em') !== null]),
                 first: marks[0].id, items: node.querySelectorAll('li').length };
      }""",
        NOTES,
    )
    # "Entretiens avec *Choe Son Hui*": the text, its emphasis, without the asterisks.
    assert marked["marks"] == [["Entretiens avec ", True, False], ["Choe Son Hui", True, True]]
    assert marked["first"] == "highlight" and marked["items"] == 6
