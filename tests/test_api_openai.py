"""The OpenAI-compatible endpoint, through the official `openai` client and LangChain's
ChatOpenAI, against a real server."""

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI

from assistant.runtime import Runtime
from tests.conftest import NEAR_MISS, app_client, assert_refusal_with_related, document_getter

MODEL = "document-assistant"


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_completion_carries_the_answer_and_its_citations(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You answer from the documents."},
            {"role": "user", "content": "Which countries hold joint military exercises in the region?"},
        ],
    )
    content = completion.choices[0].message.content
    citations = completion.model_extra["citations"]
    assert "Japon" in content and "[1]" in content
    assert citations[0]["id"] == 1 and citations[0]["end"] > citations[0]["start"]
    assert completion.choices[0].finish_reason == "stop" and completion.model_extra["found"] is True
    assert completion.model_extra["related"] == []


def test_earlier_messages_are_the_history(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "Quelles retombées la visite pourrait-elle avoir à court terme ?"},
            {"role": "assistant", "content": "Une intensification des échanges bilatéraux [1]."},
            {"role": "user", "content": [{"type": "text", "text": "Et à long terme ?"}]},
        ],
    )
    # Answered or not (the decision's call), what it cites or offers first as the closest
    # passage is the sentence on the long run: the earlier messages steered the search.
    reply = completion.choices[0].message.content
    related = completion.model_extra["related"]
    assert "multipolaire" in reply or (related and "multipolaire" in related[0]["text"])


def test_streamed_completion_ends_with_citations_and_done(client: openai.OpenAI, server: str) -> None:
    question = {"role": "user", "content": "What role could Russia play in denuclearization talks?"}
    chunks = list(client.chat.completions.create(model=MODEL, messages=[question], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    plain = client.chat.completions.create(model=MODEL, messages=[question])
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"] == plain.model_extra["citations"]
    assert chunks[-1].model_extra["related"] == plain.model_extra["related"] == []
    raw = httpx.post(f"{server}/v1/chat/completions", json={"model": MODEL, "messages": [question], "stream": True})
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_refusal_carries_the_closest_passages_plain_and_streamed(client: openai.OpenAI, server: str) -> None:
    question = {"role": "user", "content": NEAR_MISS}
    plain = client.chat.completions.create(model=MODEL, messages=[question])
    chunks = list(client.chat.completions.create(model=MODEL, messages=[question], stream=True))
    last = chunks[-1].model_extra
    with httpx.Client(base_url=server, timeout=30) as http:
        document = document_getter(http.get)
        extra = plain.model_extra
        assert_refusal_with_related(
            plain.choices[0].message.content, extra["found"], extra["citations"], extra["related"], document
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert_refusal_with_related(text, last["found"], last["citations"], last["related"], document)
    assert last["related"] == extra["related"]
    # Only the last chunk carries them, as it does the citations.
    assert all("related" not in c.model_extra for c in chunks[:-1])


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Qui ?"}])
    assert raised.value.body["type"] == "model_not_found"


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([{"role": "tool", "content": "x"}, {"role": "user", "content": "Qui ?"}], "role"),
        ([{"role": "user", "content": "Qui ?"}, {"role": "assistant", "content": "Lui."}], "last message"),
        ([{"role": "system", "content": "Be brief."}], "last message"),
        ([{"role": "user", "content": "  "}], "empty"),
        ([{"role": "user"}], "empty"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "empty"),
    ],
)
def test_unusable_conversations_are_a_422(client: openai.OpenAI, messages: list, fragment: str) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        client.chat.completions.create(model=MODEL, messages=messages)
    assert fragment in raised.value.body["message"]


def test_langchain_chat_openai_invokes_and_streams(server: str) -> None:
    llm = ChatOpenAI(base_url=f"{server}/v1", api_key="unused", model=MODEL, max_retries=0)
    reply = llm.invoke("What alternative payment mechanisms could be used?")
    assert "cryptomonnaies" in reply.content
    streamed = "".join(chunk.content for chunk in llm.stream("What alternative payment mechanisms could be used?"))
    assert streamed == reply.content


def test_empty_messages_list_is_a_422(runtime: Runtime) -> None:
    with app_client(runtime) as client:
        response = client.post("/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_request"
