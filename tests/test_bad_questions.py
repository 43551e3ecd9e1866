"""Odd questions (a lone word, punctuation, a name, the length limit, other languages, emoji,
one word over and over) get an answer or a refusal, never an error: over HTTP from a real
server, and from the chain itself."""

import re

import httpx
import pytest

from assistant.answering.selection import NOT_FOUND
from assistant.models import Answer, Message
from assistant.runtime import Runtime

LIMIT = 2000  # ASSISTANT_MAX_QUESTION_CHARS, by default
AT_LIMIT = ("Combien de jours dure la visite de Sergueï Lavrov en Corée du Nord ? " * 30)[: LIMIT - 1] + "?"

ODD_QUESTIONS = {
    "one word": "Pourquoi ?",
    "punctuation": "???",
    "punctuation, mixed": "...!",
    "only a name": "Lavrov ?",
    "at the limit": AT_LIMIT,
    "german": "Wie lange dauert Lawrows Besuch in Nordkorea?",
    "russian": "Сколько дней продлится визит Лаврова?",
    "emoji only": "🤔🤔🤔 🙂",
    "one word 500 times": " ".join(["Kim"] * 500),
}
MARKER = re.compile(r"\[(\d+)\]")


def test_the_odd_questions_are_what_they_claim() -> None:
    assert len(AT_LIMIT) == len(AT_LIMIT.strip()) == LIMIT
    assert len(ODD_QUESTIONS["one word 500 times"]) <= LIMIT


def check_invariants(answer: Answer) -> None:
    """An answer cites what it marks; a refusal says so, cites nothing and may offer passages."""
    markers = {int(n) for n in MARKER.findall(answer.answer)}
    assert markers <= {c.id for c in answer.citations}, answer.answer
    assert answer.found == bool(answer.citations)
    if answer.found:
        assert markers and answer.related == []
    else:
        assert answer.answer in NOT_FOUND.values() and answer.citations == [] and not markers
    assert "Traceback" not in answer.answer


@pytest.mark.parametrize("question", list(ODD_QUESTIONS.values()), ids=list(ODD_QUESTIONS))
def test_the_api_answers_or_refuses(server: str, question: str) -> None:
    response = httpx.post(f"{server}/api/answer", json={"question": question}, timeout=60)
    assert response.status_code == 200, response.text
    assert "Traceback" not in response.text
    check_invariants(Answer.model_validate(response.json()))


def test_one_character_over_the_limit_is_a_422(server: str) -> None:
    response = httpx.post(f"{server}/api/answer", json={"question": "x" + AT_LIMIT}, timeout=60)
    assert response.status_code == 422
    assert f"limit is {LIMIT}" in response.json()["error"]["message"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize("question", list(ODD_QUESTIONS.values()), ids=list(ODD_QUESTIONS))
def test_the_chain_answers_or_refuses(runtime: Runtime, question: str) -> None:
    answer = runtime.chain.answer(question)
    check_invariants(answer)
    # Citations, and the passages a refusal offers, are exact spans of their documents.
    for passage in [*answer.citations, *answer.related]:
        text = runtime.store.document_text(passage.document)
        assert text is not None and text[passage.start : passage.end] == passage.text
    if not answer.found:
        assert [c.id for c in answer.related] == list(range(1, len(answer.related) + 1))


@pytest.mark.parametrize("question", ["???", "...!", "🙂🙂🙂"])
def test_a_question_without_words_is_refused_without_closest_passages(runtime: Runtime, question: str) -> None:
    answer = runtime.chain.answer(question)
    assert not answer.found and answer.citations == [] and answer.related == []


@pytest.mark.parametrize(
    ("question", "offers_passages"),
    [("Сколько лет Сергею Лаврову?", True), ("Pourquoi ?", False), ("Why?", False)],
    ids=["another script", "a question word, French", "a question word, English"],
)
def test_a_question_with_no_word_it_can_read_is_refused(runtime: Runtime, question: str, offers_passages: bool) -> None:
    """Nothing of it can be checked against a passage (what it asks, what it names), so it
    answers nothing; one written in words of another script still gets the closest passages."""
    answer = runtime.chain.answer(question, debug=True)
    assert not answer.found and answer.citations == []
    reason = next(step.detail["reason"] for step in answer.trace or [] if step.stage == "select_passages")
    assert "no word of the question" in reason
    assert bool(answer.related) == offers_passages


def test_a_follow_up_without_words_of_its_own_is_still_read_with_its_conversation(runtime: Runtime) -> None:
    history = [
        Message(role="user", content="Combien de jours dure la visite de Lavrov ?"),
        Message(role="assistant", content="Une visite officielle de trois jours [1]."),
    ]
    answer = runtime.chain.answer("Et pourquoi ?", history, debug=True)
    reason = next(step.detail["reason"] for step in answer.trace or [] if step.stage == "select_passages")
    assert "no word of the question" not in reason
