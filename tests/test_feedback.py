"""Ratings of answers: stored in a real SQLite file, read by admins, exported as questions to review."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from assistant.evaluation.scoring import evaluate, load_cases
from assistant.runtime import Runtime
from tests.conftest import ANSWERED, NEAR_MISS, ServerProcess, app_client, run_cli

READER = "reader-key-0123456789"
ADMIN = "admin-key-0123456789"
KEYS = {"api_keys": READER, "admin_keys": ADMIN}
AS_READER = {"Authorization": f"Bearer {READER}"}
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
FOLLOW_UP = [
    {"role": "user", "content": "Dans quelle ville se rend Sergueï Lavrov ?"},
    {"role": "assistant", "content": "À Pyongyang [1]."},
]


def rating(**fields: object) -> dict:
    """A valid feedback body, with ``fields`` replaced."""
    return {"question": "Qui ?", "answer": "Personne.", "found": False, "rating": "down", **fields}


def rows(database: Path) -> list[dict]:
    """Every row of the feedback table, read straight from the file."""
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM feedback ORDER BY id")]


def test_ratings_are_stored_in_the_data_folder_without_key_material(runtime: Runtime, tmp_path: Path) -> None:
    with app_client(runtime, data_dir=tmp_path, **KEYS) as client:
        answer = client.post("/api/answer", json={"question": ANSWERED}, headers=AS_READER).json()
        sent = rating(
            question=f"  {ANSWERED} ",
            history=FOLLOW_UP,
            answer=answer["answer"],
            citations=answer["citations"],
            found=answer["found"],
            rating="up",
            comment="  Exactly what I needed.  ",
            api_key=READER,  # not a field: must not be kept
        )
        first = client.post("/api/feedback", json=sent, headers=AS_READER)
        second = client.post("/api/feedback", json=rating(citations=[2, 1]), headers=AS_ADMIN)
    assert first.status_code == 201 and second.status_code == 201
    assert first.json()["id"] == 1 and second.json()["id"] == 2
    database = tmp_path / "feedback.sqlite3"
    stored = rows(database)
    assert [row["id"] for row in stored] == [1, 2]
    assert stored[0]["question"] == ANSWERED and stored[0]["comment"] == "Exactly what I needed."
    assert json.loads(stored[0]["history"]) == FOLLOW_UP
    assert json.loads(stored[0]["citations"]) == answer["citations"]
    assert stored[0]["answer"] == answer["answer"] and stored[0]["found"] == 1 and stored[0]["rating"] == "up"
    assert stored[0]["created_at"] == first.json()["created_at"] and stored[0]["created_at"].endswith("+00:00")
    assert json.loads(stored[1]["citations"]) == [2, 1] and stored[1]["comment"] is None
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    files = [path for path in tmp_path.iterdir() if path.name.startswith("feedback.sqlite3")]
    for path in files:
        data = path.read_bytes()
        assert READER.encode() not in data and ADMIN.encode() not in data, path.name


def test_only_admin_keys_read_the_ratings_newest_first(runtime: Runtime, tmp_path: Path) -> None:
    with app_client(runtime, data_dir=tmp_path, **KEYS) as client:
        empty = client.get("/api/feedback", headers=AS_ADMIN)
        for number in range(5):
            client.post("/api/feedback", json=rating(question=f"Question {number} ?"), headers=AS_READER)
        anonymous = client.get("/api/feedback")
        wrong = client.get("/api/feedback", headers={"Authorization": "Bearer not-a-key"})
        reader = client.get("/api/feedback", headers=AS_READER)
        page = client.get("/api/feedback?limit=2&offset=1", headers=AS_ADMIN)
        everything = client.get("/api/feedback", headers=AS_ADMIN)
        too_many = client.get("/api/feedback?limit=201", headers=AS_ADMIN)
        negative = client.get("/api/feedback?offset=-1", headers=AS_ADMIN)
    assert empty.status_code == 200 and empty.json() == {"feedback": [], "total": 0, "limit": 50, "offset": 0}
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert reader.status_code == 403
    assert reader.json()["error"] == {
        "type": "forbidden",
        "message": "reading feedback needs a key from ASSISTANT_ADMIN_KEYS",
    }
    assert page.status_code == 200
    assert [item["question"] for item in page.json()["feedback"]] == ["Question 3 ?", "Question 2 ?"]
    assert page.json()["total"] == 5 and page.json()["limit"] == 2 and page.json()["offset"] == 1
    assert [item["id"] for item in everything.json()["feedback"]] == [5, 4, 3, 2, 1]
    assert too_many.status_code == 422 and too_many.json()["error"]["message"].startswith("query.limit:")
    assert negative.status_code == 422 and negative.json()["error"]["message"].startswith("query.offset:")


def test_with_admin_keys_only_readers_rate_freely_and_still_cannot_read(runtime: Runtime, tmp_path: Path) -> None:
    with app_client(runtime, data_dir=tmp_path, admin_keys=ADMIN) as client:
        sent = client.post("/api/feedback", json=rating())
        listed = client.get("/api/feedback")
        admin = client.get("/api/feedback", headers=AS_ADMIN)
    assert sent.status_code == 201
    assert listed.status_code == 403 and listed.json()["error"]["type"] == "forbidden"
    assert admin.json()["total"] == 1


def test_html_in_feedback_is_stored_and_sent_back_as_text(runtime: Runtime, tmp_path: Path) -> None:
    markup = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    with app_client(runtime, data_dir=tmp_path) as client:
        # An answer the server never gave, with a made-up citation: accepted, as text.
        sent = client.post(
            "/api/feedback",
            json=rating(answer=markup, comment=markup, citations=[7], found=True, rating="up"),
        )
        listed = client.get("/api/feedback")
    assert sent.status_code == 201
    item = listed.json()["feedback"][0]
    assert item["answer"] == markup and item["comment"] == markup
    assert listed.headers["content-type"] == "application/json"
    assert listed.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in listed.headers["content-security-policy"]
    assert rows(tmp_path / "feedback.sqlite3")[0]["answer"] == markup


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (rating(question="   "), "question: the question is empty"),
        (rating(question="x" * 101), "question: the question is 101 characters long; the limit is 100"),
        (rating(history=FOLLOW_UP * 2), "history: 4 messages; the limit is 3"),
        (rating(history=[{"role": "user", "content": "y" * 201}]), "history.0.content: 201 characters"),
        (rating(answer="z" * 201), "answer: 201 characters; the limit is 200"),
        (rating(comment="c" * 2001), "comment: 2001 characters; the limit is 2000"),
        (rating(rating="meh"), "rating: Input should be 'up' or 'down'"),
        (rating(found="perhaps"), "found: Input should be a valid boolean"),
        (rating(citations=[1] * 51), "citations: List should have at most 50 items"),
        ({"question": "Qui ?", "rating": "up"}, "answer: Field required"),
    ],
)
def test_bad_feedback_is_a_422_naming_the_field_and_stores_nothing(
    runtime: Runtime, tmp_path: Path, body: dict, message: str
) -> None:
    limits = {"max_question_chars": 100, "max_history_turns": 3, "max_message_chars": 200}
    with app_client(runtime, data_dir=tmp_path, **limits) as client:
        response = client.post("/api/feedback", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "invalid_request"
    assert response.json()["error"]["message"].startswith(message)
    assert not (tmp_path / "feedback.sqlite3").exists()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"question": "Qui ?", "answer": "\\ud800", "found": false, "rating": "up"}', "answer: not valid text"),
        (
            '{"question": "Qui ?", "answer": "a", "found": true, "rating": "up", "citations": [{"id": 1, '
            '"document": "d.md", "title": "T", "section": null, "text": "p", "start": 0, "end": 1, "score": NaN}]}',
            "citations.0.score: not a finite number",
        ),
        ('{"question": "Qui ?", "answer": "a", "found": true, "rating": "up", "citations": [0]}', "citations.0"),
    ],
)
def test_text_the_database_could_not_keep_faithfully_is_refused(
    runtime: Runtime, tmp_path: Path, raw: str, message: str
) -> None:
    with app_client(runtime, data_dir=tmp_path) as client:
        response = client.post("/api/feedback", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(message)


def test_feedback_over_the_body_limit_is_a_413(runtime: Runtime, tmp_path: Path) -> None:
    with app_client(runtime, data_dir=tmp_path, max_body_bytes=4096) as client:
        response = client.post("/api/feedback", json=rating(comment="c" * 1500, answer="a" * 3000))
        under = client.post("/api/feedback", json=rating(comment="c" * 1500))
    assert response.status_code == 413
    assert response.json()["error"] == {"type": "too_large", "message": "the request body is over 4096 bytes"}
    assert under.status_code == 201 and len(rows(tmp_path / "feedback.sqlite3")) == 1


def test_a_database_that_cannot_be_written_is_a_503_in_the_error_shape(runtime: Runtime, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    with app_client(runtime, feedback_db=blocker / "feedback.sqlite3") as client:
        response = client.post("/api/feedback", json=rating())
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "feedback_unavailable"
    assert str(tmp_path) not in response.text


def test_openapi_documents_the_feedback_routes(runtime: Runtime) -> None:
    with app_client(runtime) as client:
        paths = client.get("/openapi.json").json()["paths"]["/api/feedback"]
    assert paths["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/FeedbackSaved")
    assert {"413", "422", "429"} <= set(paths["post"]["responses"])
    assert paths["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/FeedbackList")
    assert {"401", "403"} <= set(paths["get"]["responses"])
    assert {p["name"] for p in paths["get"]["parameters"]} == {"limit", "offset"}


@pytest.mark.slow
def test_two_servers_writing_at_once_keep_every_rating(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "feedback.sqlite3"  # its folder does not exist yet
    servers = []
    for name in ("one", "two"):
        data = tmp_path / name
        data.mkdir()
        servers.append(ServerProcess(data, ASSISTANT_FEEDBACK_DB=str(shared), ASSISTANT_RATE_LIMIT_PER_MINUTE="0"))
    per_thread, threads_per_server = 15, 3
    statuses: list[int] = []
    ids: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(servers) * threads_per_server)

    def rate(url: str, thread: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            start.wait()
            for number in range(per_thread):
                body = rating(question=f"{url} {thread} {number} ?", comment="x" * 500)
                response = client.post("/api/feedback", json=body)
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 201:
                        ids.append(response.json()["id"])

    try:
        for server in servers:
            server.start()
        threads = [
            threading.Thread(target=rate, args=(server.url, n)) for server in servers for n in range(threads_per_server)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        too_large = httpx.post(f"{servers[0].url}/api/feedback", json=rating(answer="a" * 300_000), timeout=30)
        listed = httpx.get(f"{servers[1].url}/api/feedback?limit=1", timeout=30).json()
    finally:
        for server in servers:
            server.stop()
    expected = len(servers) * threads_per_server * per_thread
    assert statuses == [201] * expected
    assert sorted(ids) == list(range(1, expected + 1))
    stored = rows(shared)
    assert len(stored) == expected
    assert {row["question"] for row in stored} == {
        f"{server.url} {thread} {number} ?"
        for server in servers
        for thread in range(threads_per_server)
        for number in range(per_thread)
    }
    assert too_large.status_code == 413 and too_large.json()["error"]["type"] == "too_large"
    assert listed["total"] == expected and listed["feedback"][0]["id"] == expected
    with sqlite3.connect(shared) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.slow
def test_export_writes_questions_to_review_that_the_evaluation_reads(runtime: Runtime, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with app_client(runtime, data_dir=data) as client:
        answered = client.post("/api/answer", json={"question": ANSWERED}).json()
        refused = client.post("/api/answer", json={"question": NEAR_MISS}).json()
        assert answered["found"] and not refused["found"]
        approved = rating(
            question=ANSWERED, answer=answered["answer"], citations=answered["citations"], found=True, rating="up"
        )
        for body in (
            approved,
            rating(question=NEAR_MISS, answer=refused["answer"], found=False, rating="up"),
            rating(question="Who is the author?", history=FOLLOW_UP, answer="x", found=True, comment="<b>wrong</b>"),
            rating(question="Quel est le salaire de Sergueï Lavrov ?", answer="Pas trouvé.", found=False),
        ):
            assert client.post("/api/feedback", json=body).status_code == 201
    out = tmp_path / "review.jsonl"
    result = run_cli("feedback", "export", str(out), env={"ASSISTANT_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert "exported 4 rated questions" in result.stdout
    assert "1 approved answers, 1 approved refusals, 2 rejected answers" in result.stdout
    cases = load_cases(out)
    assert [case["id"] for case in cases] == ["feedback-1", "feedback-2", "feedback-3", "feedback-4"]
    assert all(case["source"] == "feedback" and case["review"] for case in cases)
    up_found, up_not_found, down_found, down_not_found = cases
    cited = answered["citations"][0]
    assert up_found["answerable"] is True and up_found["must"] == []
    assert up_found["support"] == cited["text"] and up_found["document"] == cited["document"]
    assert up_found["lang"] == "fr" and up_found["rating"] == "up"
    assert up_not_found["answerable"] is False and "support" not in up_not_found
    assert down_found["rating"] == "down" and down_found["comment"] == "<b>wrong</b>"
    assert down_found["history"] == FOLLOW_UP and down_found["lang"] == "en"
    # Rejected answers: the guess is the opposite of what the assistant did, and the note says so.
    assert down_found["answerable"] is False and down_not_found["answerable"] is True
    assert "guess" in down_found["review"]
    report = evaluate(runtime.chain, [up_found, up_not_found])
    assert report.cases[0].cited_support is True and report.cases[1].refused_correctly is True


@pytest.mark.slow
def test_export_without_a_database_says_so_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "review.jsonl"
    result = run_cli("feedback", "export", str(out), env={"ASSISTANT_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 1
    assert f"no feedback database at {tmp_path / 'data' / 'feedback.sqlite3'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_a_failed_export_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    broken = tmp_path / "feedback.sqlite3"
    broken.write_bytes(b"this is not a SQLite database, but it is long enough to be read as one " * 20)
    out = tmp_path / "review.jsonl"
    out.write_text('{"question": "kept?", "answerable": false}\n', encoding="utf-8")
    result = run_cli("feedback", "export", str(out), env={"ASSISTANT_FEEDBACK_DB": str(broken)})
    assert result.returncode == 1
    assert "not a usable SQLite database" in result.stderr and "Traceback" not in result.stderr
    assert out.read_text(encoding="utf-8") == '{"question": "kept?", "answerable": false}\n'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["feedback.sqlite3", "review.jsonl"]
