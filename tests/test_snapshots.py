"""Full JSON answers to a few representative requests, through the real app over the seeded
store, compared with the files in snapshots/answers/: any change in what the assistant
answers, cites or offers shows as a diff. After a deliberate change (a prompt, the decision's
weights refitted), rerun with UPDATE_SNAPSHOTS=1 and review the rewritten files."""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import pytest

from assistant.runtime import Runtime
from tests.conftest import app_client

ANSWERS = Path(__file__).parent / "snapshots" / "answers"
HISTORY = [
    {"role": "user", "content": "Dans quelle ville se rend Sergueï Lavrov ?"},
    {"role": "assistant", "content": "À Pyongyang [1]."},
]
# name: (route, request body, whether the documents answer it). If a refitted decision
# changes whether one is answered, pick another request that shows the same thing.
CASES: dict[str, tuple[str, dict, bool]] = {
    "fr_answered": (
        "/api/answer",
        {"question": "Quels mécanismes alternatifs de paiement pourraient être utilisés ?"},
        True,
    ),
    "en_question_fr_article": (
        "/api/answer",
        {"question": "What role could Russia play in denuclearization talks?"},
        True,
    ),
    "follow_up_with_history": (
        "/api/answer",
        {"question": "Et combien de temps y reste-t-il ?", "history": HISTORY},
        True,
    ),
    "not_found_with_related": (
        "/api/answer",
        {"question": "Quel est le montant des échanges commerciaux entre la Russie et la Corée du Nord ?"},
        False,
    ),
    "openai_chat_completion": (
        "/v1/chat/completions",
        {
            "model": "document-assistant",
            "messages": [
                {"role": "system", "content": "You answer from the documents."},
                {"role": "user", "content": "Which countries hold joint military exercises in the region?"},
            ],
        },
        True,
    ),
}


def normalised(body: dict) -> dict:
    """The response with what changes from call to call (a completion's random id and its
    creation time) and from machine to machine (a passage's cosine, whose last digits move
    with the CPU's arithmetic) replaced by placeholders, once their form is checked."""
    body = json.loads(json.dumps(body), object_hook=_without_score)
    if body.get("object") != "chat.completion":
        return body
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", body["id"]), body["id"]
    assert isinstance(body["created"], int) and body["created"] > 0
    return {**body, "id": "chatcmpl-<random>", "created": "<created>"}


def _without_score(item: dict) -> dict:
    if "score" in item:
        assert isinstance(item["score"], float) and -1.0 <= item["score"] <= 1.0, item["score"]
        return {**item, "score": "<cosine>"}
    return item


def assert_matches_snapshot(body: dict, path: Path) -> None:
    """``body`` as pretty JSON equals the stored file; with UPDATE_SNAPSHOTS set, it is written first."""
    text = json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS"):  # after a deliberate change
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"no snapshot {path.name}: write it with UPDATE_SNAPSHOTS=1", pytrace=False)
    stored = path.read_text(encoding="utf-8")
    if text != stored:
        diff = "".join(
            difflib.unified_diff(
                stored.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"{path.name} (stored)",
                f"{path.name} (now)",
            )
        )
        pytest.fail(
            f"the response differs from {path.name}; if the change is meant, rerun with UPDATE_SNAPSHOTS=1\n{diff}",
            pytrace=False,
        )


@pytest.mark.parametrize("name", list(CASES))
def test_answer_matches_its_snapshot(runtime: Runtime, name: str) -> None:
    route, body, found = CASES[name]
    with app_client(runtime) as client:
        response = client.post(route, json=body)
    assert response.status_code == 200, response.text
    got = response.json()
    # The request still shows what its name says, whatever the snapshot holds.
    assert got["found"] is found
    assert got["citations"] if found else got["related"]
    assert_matches_snapshot(normalised(got), ANSWERS / f"{name}.json")


def test_every_stored_answer_has_its_request() -> None:
    stored = {path.stem for path in ANSWERS.glob("*.json")}
    assert stored == set(CASES), "remove the snapshots of requests no longer asked, or write the missing ones"
