"""The HTTP API, against a real uvicorn server over a real store."""

from pathlib import Path

import httpx
import pytest

from tests.conftest import ANSWERED, NEAR_MISS, assert_refusal_with_related, document_getter


def test_answer_has_the_documented_shape(server: str) -> None:
    question = "Quel risque comporterait une coopération militaire ou de renseignement plus étroite ?"
    response = httpx.post(f"{server}/api/answer", json={"question": question}, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"answer", "found", "citations", "related"}
    assert body["found"] is True and "tensions" in body["answer"]
    assert body["related"] == []
    citation = body["citations"][0]
    assert set(citation) == {"id", "document", "title", "section", "text", "start", "end", "score"}
    assert citation["id"] == 1 and "[1]" in body["answer"]
    assert citation["end"] - citation["start"] == len(citation["text"])


def test_history_is_used_for_follow_ups(server: str) -> None:
    history = [
        {"role": "user", "content": "Dans quelle ville se rend Sergueï Lavrov ?"},
        {"role": "assistant", "content": "À Pyongyang [1]."},
    ]
    body = httpx.post(
        f"{server}/api/answer", json={"question": "Et combien de temps y reste-t-il ?", "history": history}, timeout=30
    ).json()
    assert body["found"] and "trois jours" in body["answer"]


def test_not_found_is_a_200_with_found_false(server: str) -> None:
    body = httpx.post(
        f"{server}/api/answer", json={"question": "Quel est le salaire de Sergueï Lavrov ?"}, timeout=30
    ).json()
    assert body["found"] is False and body["citations"] == []


def test_refusal_offers_the_closest_passages_at_their_spans(server: str) -> None:
    body = httpx.post(f"{server}/api/answer", json={"question": NEAR_MISS}, timeout=30).json()
    with httpx.Client(base_url=server, timeout=30) as client:
        assert_refusal_with_related(
            body["answer"], body["found"], body["citations"], body["related"], document_getter(client.get)
        )


def test_an_answer_offers_no_closest_passages(server: str) -> None:
    body = httpx.post(f"{server}/api/answer", json={"question": ANSWERED}, timeout=30).json()
    assert body["found"] is True and body["citations"] and body["related"] == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"question": ""}, "empty"),
        ({"question": "   \n\t "}, "empty"),
        ({"question": "x" * 2001}, "limit is 2000"),
        ({}, "question"),
        ({"question": 42}, "question"),
        ({"question": "Qui ?", "history": [{"role": "system", "content": "x"}]}, "role"),
        ({"question": "Qui ?", "history": "nope"}, "history"),
        ({"question": "Qui ?", "debug": 1}, "debug"),
    ],
)
def test_bad_requests_get_a_clear_422(server: str, payload: dict, fragment: str) -> None:
    response = httpx.post(f"{server}/api/answer", json=payload, timeout=30)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and fragment in error["message"]
    assert "Traceback" not in response.text


def test_malformed_json_is_a_400_without_a_stack_trace(server: str) -> None:
    response = httpx.post(
        f"{server}/api/answer", content=b'{"question": ', headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_json"


def test_unknown_route_is_a_404_in_the_error_shape(server: str) -> None:
    response = httpx.get(f"{server}/api/nope", timeout=30)
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"


def test_openapi_documents_the_answer_route(server: str) -> None:
    spec = httpx.get(f"{server}/openapi.json", timeout=30).json()
    assert "/api/answer" in spec["paths"]
    schemas = spec["components"]["schemas"]
    for name in ("Answer", "ChatCompletion"):
        related = schemas[name]["properties"]["related"]
        assert related["items"] == {"$ref": "#/components/schemas/Citation"}
        assert "found is false" in related["description"]
    refusal = next(e for e in schemas["Answer"]["examples"] if not e["found"])
    assert refusal["citations"] == [] and refusal["related"]


# Slow: it builds a runtime of its own.
@pytest.mark.slow
def test_question_limit_follows_the_setting(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from assistant.config import Settings
    from assistant.http.app import create_app

    settings = Settings(data_dir=tmp_path / "data", max_question_chars=10)
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/answer", json={"question": "Une question bien trop longue"})
    assert response.status_code == 422 and "limit is 10" in response.json()["error"]["message"]
