"""Generated answers from a real model server: llama.cpp's OpenAI-compatible server with a
small instruct model (bench/llm_server.py), through ``ASSISTANT_LLM=openai``.

A weak model fails in ways no scripted fake thinks of; whatever it writes, the chain must
return cited statements that resolve to stored passages, or fall back to the extractive
answer, or refuse. These tests run only with ASSISTANT_LLM_SERVER_TESTS=1 (`make eval-llm`
sets it, after building the server and fetching the model into .cache/llm); each answer
takes 10-20 s on 2 cores.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import HumanMessage

from assistant.answering import generation
from assistant.answering.chain import Delta, Done
from assistant.answering.generation import GenerationFailed, make_chat_model
from assistant.config import Settings
from assistant.models import Answer, Message
from assistant.runtime import Runtime, build_runtime
from bench import llm_server
from tests.conftest import ANSWERED, NEAR_MISS, ServerProcess, seeded_data, wait_until
from vectorstore.language import fold
from vectorstore.store import PassageStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("ASSISTANT_LLM_SERVER_TESTS") != "1",
        reason="needs a real model server: ASSISTANT_LLM_SERVER_TESTS=1 (make eval-llm)",
    ),
]

MARKER = re.compile(r"\[(\d+)\]")
WORD = re.compile(r"\w+")
SENTENCE_END = re.compile(r"(?<=[a-zà-ÿ0-9\]][.!?])\s+")
POINTERS = {"voir", "see", "cf", "source", "sources", "passage", "passages", "document", "reference"}
COUNTING = [{"role": "user", "content": "Count from 1 to 1000, one number per line, nothing else."}]
# Questions on which this model, before the chain checked what it wrote, gave a bare "[1]"
# as a cited answer (answerable or not), or streamed text the answer then dropped; and a
# follow-up, which takes a second model call.
QUESTIONS = {
    "typo-fr": ("combien de jour dure la visite de lavrov en coree du nord", []),
    "typo-en": ("how many days is lavrov stayng in north corea?", []),
    "yes-no": ("Is Lavrov's trip to Pyongyang merely a protocol visit?", []),
    "off-corpus": ("List the permanent members of the UN Security Council.", []),
    "wrong-year": ("How long did Lavrov's 2018 visit to Pyongyang last?", []),
    "near-miss": (NEAR_MISS, []),
    "follow-up": (
        "Combien de temps y reste-t-il ?",
        [
            Message(role="user", content="Qui se rend à Pyongyang cette semaine ?"),
            Message(role="assistant", content="Sergueï Lavrov, le ministre russe des Affaires étrangères [1]."),
        ],
    ),
    "context": ("How does the article describe the regional geopolitical context of the mission?", []),
    "ties": ("De quoi la visite témoigne-t-elle entre Moscou et Pyongyang ?", []),
    "not-said": ("who does lavrov meet in pyongyang during his 3 day vist", []),
}
STREAMED = ["context", "ties", "not-said"]


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    if not llm_server.is_ready():
        pytest.fail(f"no model server in {llm_server.CACHE}: run `make eval-llm` once to build it")


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The llama.cpp server's OpenAI base URL."""
    with llm_server.running(tmp_path_factory.mktemp("llm") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def generated_runtime(model_server: str, seeded_settings: Settings, seeded_store: PassageStore) -> Runtime:
    """The chain answering with the real model over the seeded store, with a budget no
    answer of this model runs out of (timing out is tested below)."""
    settings = Settings(
        data_dir=seeded_settings.data_dir,
        llm="openai",
        llm_url=model_server,
        llm_model=llm_server.MODEL_ALIAS,
        llm_timeout_s=90.0,
        request_timeout_s=300.0,
    )
    return build_runtime(settings, seeded_store)


def says_something(question: str, answer: str) -> bool:
    """The answer holds a word that is neither a marker, nor a pointer at a source, nor the question's."""
    said = set(WORD.findall(fold(MARKER.sub(" ", answer))))
    return bool(said - set(WORD.findall(fold(question))) - POINTERS)


def statements(text: str) -> list[str]:
    """The sentences of a text; split only after a lower-case word or a marker ("M. Lavrov" stays whole)."""
    return [part for part in SENTENCE_END.split(text) if WORD.search(MARKER.sub(" ", part))]


def plain(text: str) -> str:
    return " ".join(fold(MARKER.sub(" ", text)).split())


def check_answer(question: str, answer: Answer, store: PassageStore) -> None:
    """What any answer promises, whoever wrote it."""
    assert answer.fallback is not None, "a generated answer says whether the extractive one stood in"
    assert says_something(question, answer.answer), f"an answer made only of markers: {answer.answer!r}"
    if not answer.found:
        assert answer.citations == []
        return
    ids = [c.id for c in answer.citations]
    assert ids == list(range(1, len(ids) + 1)), ids
    markers = {int(n) for n in MARKER.findall(answer.answer)}
    assert markers and markers <= set(ids), (answer.answer, ids)
    for cited in answer.citations:
        text = store.document_text(cited.document)
        assert text is not None and text[cited.start : cited.end] == cited.text
    if not answer.fallback:
        uncited = [s for s in statements(answer.answer) if not MARKER.search(s)]
        assert not uncited, f"statements of the model's answer without a marker: {uncited}"


@pytest.mark.parametrize("name", [name for name in QUESTIONS if name not in STREAMED])
def test_an_answer_from_a_real_model_is_cited_falls_back_or_refuses(
    name: str, generated_runtime: Runtime, seeded_store: PassageStore
) -> None:
    question, history = QUESTIONS[name]
    answer = generated_runtime.chain.answer(question, history)
    check_answer(question, answer, seeded_store)


@pytest.mark.parametrize("name", STREAMED)
def test_streamed_text_is_only_what_the_answer_keeps(
    name: str, generated_runtime: Runtime, seeded_store: PassageStore
) -> None:
    question, history = QUESTIONS[name]
    events = list(generated_runtime.chain.stream(question, history))
    shown = "".join(e.text for e in events if isinstance(e, Delta))
    answer = next(e.answer for e in events if isinstance(e, Done))
    check_answer(question, answer, seeded_store)
    kept = plain(answer.answer)
    for statement in statements(shown):
        assert plain(statement) in kept, f"shown, then dropped: {statement!r} (answer: {answer.answer!r})"


class BusyServer:
    """Another client of the model server, keeping it generating until closed: the model may
    not end its reply (its end-of-text tokens are banned), so it writes up to ``max_tokens``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.busy = threading.Event()
        self.done = threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._generate()
        except Exception as exc:
            self.error = exc

    def _generate(self) -> None:
        tokenize = f"{self.url.removesuffix('/v1')}/extras/tokenize"
        ends = httpx.post(tokenize, json={"input": "<|im_end|><|endoftext|>"}, timeout=60).json()["tokens"]
        body = {
            "model": llm_server.MODEL_ALIAS,
            "messages": COUNTING,
            "max_tokens": 3000,
            "logit_bias": {str(token): -100 for token in ends},
            "stream": True,
        }
        with httpx.stream("POST", f"{self.url}/chat/completions", json=body, timeout=60) as response:
            for _ in response.iter_lines():
                self.busy.set()
                if self.done.is_set():
                    return

    def __enter__(self) -> BusyServer:
        self.thread.start()
        assert self.busy.wait(120), f"the model server never started generating: {self.error!r}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(60)


def test_a_busy_model_leaves_the_extractive_answer_within_the_request_budget(tmp_path: Path, runtime: Runtime) -> None:
    # The default budgets, a model server busy with another client's long generation: the
    # model cannot answer in time, and the request's budget must leave room for the fallback.
    with llm_server.running(tmp_path / "llm.log") as url:
        server = ServerProcess(
            seeded_data(tmp_path / "data"),
            ASSISTANT_LLM="openai",
            ASSISTANT_LLM_URL=url,
            ASSISTANT_LLM_MODEL=llm_server.MODEL_ALIAS,
        ).start()
        try:
            with BusyServer(url):
                response = httpx.post(f"{server.url}/api/answer", json={"question": ANSWERED}, timeout=300)
        finally:
            server.stop()
    assert response.status_code == 200, response.text
    body, expected = response.json(), runtime.chain.answer(ANSWERED)
    assert body["fallback"] is True
    assert (body["answer"], body["found"]) == (expected.answer, expected.found)


def test_the_model_server_sees_an_abandoned_generation_end(tmp_path: Path) -> None:
    log = tmp_path / "server.log"  # a server of its own: no other request's end is in its log
    with llm_server.running(log) as url:
        settings = Settings(
            llm="openai", llm_url=url, llm_model=llm_server.MODEL_ALIAS, llm_timeout_s=5.0, request_timeout_s=300.0
        )
        # The first numbers come within a second or two; this model's count takes some 300
        # tokens, 20 s or more: the budget runs out while the model is streaming.
        with pytest.raises(GenerationFailed):
            generation.invoke(make_chat_model(settings), [HumanMessage(COUNTING[0]["content"])], settings.llm_timeout_s)
        # llama.cpp's server logs a stream whose client went away (it notices at its next
        # token). Left running, the generation would end on its own without that line,
        # keeping a server that serves one request at a time busy for nobody.
        wait_until(
            lambda: "Disconnected from client" in log.read_text(errors="replace"),
            what="the model server to log that the client went away (it kept generating for nobody)",
            timeout=120,
            interval=0.5,
        )
