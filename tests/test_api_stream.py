"""The Server-Sent Events stream: order of events, equality with the JSON answer, errors,
and a client that goes away."""

import contextlib
import threading
import time

import httpx
from langchain_core.runnables import RunnableLambda

from assistant.http.app import create_app
from assistant.runtime import Runtime
from tests.conftest import (
    ANSWERED,
    NEAR_MISS,
    ThreadServer,
    app_client,
    assert_refusal_with_related,
    document_getter,
    sse_events,
    wait_until,
    with_own_chain,
)


def test_stream_sends_sources_then_deltas_then_done_equal_to_the_json_answer(runtime: Runtime) -> None:
    question = {"question": ANSWERED}
    with app_client(runtime) as client:
        streamed = client.post("/api/answer/stream", json=question)
        plain = client.post("/api/answer", json=question).json()
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    got = sse_events(streamed.text)
    names = [name for name, _ in got]
    assert names[0] == "sources" and names[-1] == "done" and set(names[1:-1]) == {"delta"}
    assert got[-1][1] == plain
    assert "".join(data["text"] for name, data in got if name == "delta") == plain["answer"]
    assert got[0][1]["citations"] == plain["citations"]
    assert plain["found"] is True and plain["related"] == []


def test_stream_of_a_refusal_carries_the_closest_passages_in_done(runtime: Runtime) -> None:
    with app_client(runtime) as client:
        got = sse_events(client.post("/api/answer/stream", json={"question": NEAR_MISS}).text)
        plain = client.post("/api/answer", json={"question": NEAR_MISS}).json()
        name, done = got[-1]
        assert name == "done" and done == plain
        assert_refusal_with_related(
            done["answer"], done["found"], done["citations"], done["related"], document_getter(client.get)
        )
    # The closest passages are not offered as citable sources.
    assert got[0] == ("sources", {"citations": []})


def test_stream_of_an_unanswerable_question_ends_with_found_false(runtime: Runtime) -> None:
    with app_client(runtime) as client:
        got = sse_events(client.post("/api/answer/stream", json={"question": "Quel temps fera-t-il ?"}).text)
    assert got[0] == ("sources", {"citations": []})
    assert got[-1][0] == "done" and got[-1][1]["found"] is False


def test_bad_question_is_refused_before_the_stream_starts(runtime: Runtime) -> None:
    with app_client(runtime) as client:
        response = client.post("/api/answer/stream", json={"question": " "})
    assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_request"


def test_failure_after_the_stream_began_is_an_error_event(runtime: Runtime, monkeypatch) -> None:
    def broken(state: dict) -> dict:
        raise RuntimeError("the answer stage broke")

    rt = with_own_chain(runtime)
    monkeypatch.setattr(rt.chain, "finish", RunnableLambda(broken))
    with app_client(rt) as client:
        got = sse_events(client.post("/api/answer/stream", json={"question": "Qui est Sergueï Lavrov ?"}).text)
    assert [name for name, _ in got] == ["sources", "error"]
    assert got[-1][1] == {"type": "internal_error", "message": "the answer failed"}


def test_a_client_that_goes_away_stops_the_work(runtime: Runtime, monkeypatch) -> None:
    rt = with_own_chain(runtime)
    prepared = rt.chain.prepare
    chosen = threading.Event()
    finished = threading.Event()

    def slow_prepare(state: dict) -> dict:
        time.sleep(1.0)  # deliberately slow, so that the client leaves while the passages are chosen
        state = prepared.invoke(state)
        chosen.set()
        return state

    def recording_finish(state: dict) -> dict:
        finished.set()
        return state

    monkeypatch.setattr(rt.chain, "prepare", RunnableLambda(slow_prepare))
    monkeypatch.setattr(rt.chain, "finish", RunnableLambda(recording_finish))
    server = ThreadServer(create_app(rt.settings, rt))
    with server as url:
        # The client gives up and closes the connection while the answer is prepared.
        with contextlib.suppress(httpx.ReadTimeout):
            httpx.post(f"{url}/api/answer/stream", json={"question": "Qui est Sergueï Lavrov ?"}, timeout=0.3)
        # Once the passages are chosen and the server has dropped the request, nothing is
        # left that could write the answer.
        wait_until(chosen.is_set, what="the passages to be chosen", timeout=30)
        wait_until(server.idle, what="the server to drop the abandoned request", timeout=30)
    assert not finished.is_set(), "the answer was still written after the client left"


def test_debug_returns_the_trace_of_every_stage(runtime: Runtime) -> None:
    history = [
        {"role": "user", "content": "Dans quelle ville se rend Sergueï Lavrov ?"},
        {"role": "assistant", "content": "À Pyongyang [1]."},
    ]
    with app_client(runtime) as client:
        body = client.post(
            "/api/answer", json={"question": "Et combien de temps y reste-t-il ?", "history": history, "debug": True}
        ).json()
    stages = {step["stage"]: step["detail"] for step in body["trace"]}
    assert list(stages) == ["condense_question", "retrieve", "select_passages", "answer", "check_citations"]
    assert "Dans quelle ville" in stages["condense_question"]["query"]
    assert stages["retrieve"]["passages"] and {"dense", "lexical", "fused"} <= set(stages["retrieve"]["passages"][0])
    with app_client(runtime) as client:
        assert "trace" not in client.post("/api/answer", json={"question": "Qui est Sergueï Lavrov ?"}).json()
