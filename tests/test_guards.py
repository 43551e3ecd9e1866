"""Keys, rate limits, body size, time budget, health, CORS."""

import threading
import time

import pytest
from langchain_core.runnables import RunnableLambda

from assistant.http.guards import RateLimiter
from assistant.runtime import Runtime
from tests.conftest import app_client, wait_until, with_own_chain

ASK = {"question": "Qui est Sergueï Lavrov ?"}
NOTE = (
    "files",
    ("note.md", "# Note\n\nUne note assez longue pour former un passage à elle seule.".encode(), "text/markdown"),
)


def keyed(runtime: Runtime):
    return app_client(runtime, api_keys="reader-key, other-key", admin_keys="admin-key")


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/answer"), ("post", "/api/answer/stream"), ("get", "/v1/models"), ("get", "/api/documents")],
)
def test_keys_are_required_on_api_and_v1_routes(runtime: Runtime, method: str, path: str) -> None:
    with keyed(runtime) as client:
        kwargs = {"json": ASK} if method == "post" else {}
        missing = getattr(client, method)(path, **kwargs)
        wrong = getattr(client, method)(path, headers={"Authorization": "Bearer nope"}, **kwargs)
        right = getattr(client, method)(path, headers={"Authorization": "Bearer other-key"}, **kwargs)
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "unauthorized" and "nope" not in wrong.text
    assert right.status_code == 200


def test_health_routes_stay_open(runtime: Runtime) -> None:
    with keyed(runtime) as client:
        assert client.get("/healthz").status_code == 200
        status = client.get("/readyz").json()
        ready = client.get("/readyz", headers={"Authorization": "Bearer reader-key"}).json()
    assert status == {"status": "ready"}  # the details need a key
    assert ready["status"] == "ready" and ready["passages"] > 0 and ready["documents"] == 1
    assert ready["embedding_model"] == "multilingual-e5-small-q4"


def test_changing_documents_needs_an_admin_key(isolated_runtime: Runtime) -> None:
    with keyed(isolated_runtime) as client:
        as_reader = client.post("/api/documents", files=[NOTE], headers={"Authorization": "Bearer reader-key"})
        delete_as_reader = client.delete("/api/documents/note.md", headers={"Authorization": "Bearer reader-key"})
        as_admin = client.post("/api/documents", files=[NOTE], headers={"Authorization": "Bearer admin-key"})
        admin_reads = client.get("/api/documents/note.md", headers={"Authorization": "Bearer admin-key"})
    assert as_reader.status_code == delete_as_reader.status_code == 403
    assert as_reader.json()["error"]["type"] == "forbidden"
    assert as_admin.status_code == 201 and admin_reads.status_code == 200


def test_open_server_logs_that_it_is_open(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="assistant.http.app"), app_client(runtime) as client:
        client.get("/healthz")
    assert any("open to anyone" in r.message for r in caplog.records)
    with caplog.at_level("DEBUG"), keyed(runtime) as client:
        client.post("/api/answer", json=ASK, headers={"Authorization": "Bearer reader-key"})
    assert not any("reader-key" in r.getMessage() for r in caplog.records)


def test_rate_limit_answers_429_with_retry_after(runtime: Runtime) -> None:
    with app_client(runtime, rate_limit_per_minute=3) as client:
        codes = [client.get("/v1/models").status_code for _ in range(4)]
        limited = client.get("/v1/models")
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    assert limited.json()["error"]["type"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1


def test_rate_limiter_refills_over_time() -> None:
    limiter = RateLimiter(per_minute=600)  # ten a second
    assert all(limiter.check("a") == 0 for _ in range(600))
    assert limiter.check("a") > 0 and limiter.check("b") == 0
    # A refused check takes nothing: "a" gets a token again once one has refilled.
    wait_until(lambda: limiter.check("a") == 0, what="a token to refill", timeout=5, interval=0.02)


def test_oversized_bodies_are_a_413(runtime: Runtime) -> None:
    with app_client(runtime, max_body_bytes=2048) as client:
        response = client.post(
            "/api/answer", json={"question": "x" * 1000, "history": [{"role": "user", "content": "y" * 3000}]}
        )
    assert response.status_code == 413 and response.json()["error"]["type"] == "too_large"


def test_non_utf8_and_non_json_bodies_are_a_400(runtime: Runtime) -> None:
    with app_client(runtime) as client:
        for body in (b'{"question": "caf\xe9"}', b"\xff\xfe\x00garbage", b"question=qui"):
            response = client.post("/api/answer", content=body, headers={"content-type": "application/json"})
            assert response.status_code in (400, 422), body
            assert "error" in response.json() and "Traceback" not in response.text


@pytest.mark.parametrize(
    ("history", "fragment"),
    [
        ([{"role": "user", "content": "x"}] * 21, "limit is 20"),
        ([{"role": "user", "content": " "}], "empty"),
        ([{"role": "user", "content": "z" * 8001}], "limit is 8000"),
        ([{"role": "robot", "content": "x"}], "role"),
    ],
)
def test_history_limits(runtime: Runtime, history: list, fragment: str) -> None:
    with app_client(runtime) as client:
        response = client.post("/api/answer", json={"question": "Qui ?", "history": history})
    assert response.status_code == 422 and fragment in response.json()["error"]["message"]


def test_answer_over_its_time_budget_is_a_503(runtime: Runtime, monkeypatch) -> None:
    rt = with_own_chain(runtime)
    answer = rt.chain.runnable
    abandoned = threading.Event()

    def slower(state: dict) -> dict:
        time.sleep(0.5)  # deliberately past the 0.1 s budget
        try:
            return answer.invoke(state)
        finally:
            abandoned.set()

    monkeypatch.setattr(rt.chain, "runnable", RunnableLambda(slower))
    with app_client(rt, request_timeout_s=0.1) as client:
        response = client.post("/api/answer", json=ASK)
    assert response.status_code == 503 and response.json()["error"]["type"] == "timeout"
    assert response.headers["retry-after"]
    # The abandoned work goes on in its thread: let it end before the next test.
    wait_until(abandoned.is_set, what="the abandoned answer to end", timeout=30)


def test_store_failure_is_a_503_and_readyz_says_why(isolated_runtime: Runtime, monkeypatch) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("store down")

    monkeypatch.setattr(isolated_runtime.store, "count", down)
    monkeypatch.setattr(isolated_runtime.store, "version", down)
    isolated_runtime.corpus.invalidate()  # the next question looks at the store
    with app_client(isolated_runtime) as client:
        answer = client.post("/api/answer", json=ASK)
        ready = client.get("/readyz")
    assert answer.status_code == 503 and answer.json()["error"]["type"] == "store_unavailable"
    assert ready.status_code == 503 and ready.json()["error"]["type"] == "not_ready"


def test_cors_is_off_by_default_and_follows_the_setting(runtime: Runtime) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with app_client(runtime) as client:
        assert "access-control-allow-origin" not in client.options("/api/answer", headers=preflight).headers
    with app_client(runtime, cors_origins="https://app.example") as client:
        allowed = client.options("/api/answer", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
