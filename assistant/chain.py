"""The answer chain, stage by stage:

    condense_question -> retrieve -> select_passages -> answer -> check_citations

Each stage is a named LangChain runnable and leaves a trace step, returned with the
answer when asked for. The answer stage is extractive, or a chat model given the
numbered passages; the model's citations are checked, not trusted, and whenever the
model fails (down, slow, citing nothing it was given) the extractive answer stands in,
marked as a fallback.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda

from assistant import generation
from assistant.answering import NOT_FOUND, extractive_answer, select_passages
from assistant.citations import MarkerFilter, citation, resolve, unsupported_statements
from assistant.config import Settings
from assistant.decision import WEIGHTS, DecisionModel, Question
from assistant.generation import GenerationFailed
from assistant.models import Answer, Citation, Message, TraceStep
from assistant.prompts import load_prompt
from assistant.retrieval import Corpus, HybridRetriever, condense
from vectorstore.language import detect_language

log = logging.getLogger("assistant.chain")

State = dict[str, Any]
LANGUAGE_NAMES = {"fr": "French", "en": "English"}
# The model's way of saying the passages do not hold the answer (see prompts/answer_system.txt).
NOT_FOUND_REPLY = re.compile(r"^\W*NOT[_ ]FOUND\W*$", re.IGNORECASE)


class AnswerChain:
    """Answers a question (with its conversation) from the corpus, with citations."""

    def __init__(
        self,
        corpus: Corpus,
        settings: Settings,
        chat_model: BaseChatModel | None = None,
        decision: DecisionModel | None = None,
    ) -> None:
        self.corpus = corpus
        self.settings = settings
        self.decision = decision or DecisionModel.load(settings.decision_weights or WEIGHTS)
        self.chat_model = chat_model
        self.backend = settings.llm if chat_model is not None else "extractive"
        self.retriever = HybridRetriever(corpus=corpus, k=settings.candidates)
        # "gather" finds the candidates, "prepare" fixes the passages an answer may cite,
        # "finish" writes and checks it. Streaming sends the citable passages between the two.
        self.gather: Runnable[State, State] = (
            _stage("condense_question", self._condense) | _stage("retrieve", self._retrieve)
        ).with_config(run_name="gather")
        self.prepare: Runnable[State, State] = (self.gather | _stage("select_passages", self._select)).with_config(
            run_name="prepare"
        )
        self.finish: Runnable[State, State] = (
            _stage("answer", self._answer) | _stage("check_citations", self._check)
        ).with_config(run_name="finish")
        self.runnable: Runnable[State, State] = (self.prepare | self.finish).with_config(run_name="answer_chain")

    def answer(self, question: str, history: list[Message] | None = None, *, debug: bool = False) -> Answer:
        """Run the chain; ``debug`` adds the trace of every stage to the answer."""
        return self.result(self.runnable.invoke(self.start(question, history)), debug=debug)

    @staticmethod
    def start(question: str, history: list[Message] | None = None) -> State:
        """The chain's input state."""
        return {"question": question, "history": history or [], "trace": []}

    @staticmethod
    def sources(state: State) -> list[Citation]:
        """After ``prepare``: the passages the answer may cite, numbered as the answer's
        markers number them while it streams."""
        return [citation(n, p) for n, p in enumerate(state["passages"], start=1)]

    def stream_answer(self, state: State) -> Iterator[str]:
        """After ``prepare``: the answer's text as it is written; then ``state`` holds the
        checked answer (``result``), which may differ (renumbered, or a fallback)."""
        if self.chat_model is None:
            self.finish.invoke(state)
            yield from text_pieces(state["answer"])
            return
        shown = MarkerFilter(len(state["passages"]))
        draft: list[str] = []
        held: str | None = ""  # the start of a reply that may still be NOT_FOUND is not shown
        try:
            for token in generation.stream(self.chat_model, self._answer_messages(state), self.settings.llm_timeout_s):
                draft.append(token)
                if held is not None:
                    held += token
                    if _may_be_not_found(held):
                        continue
                    token, held = held, None
                if text := shown.feed(token):
                    yield text
            if held and not NOT_FOUND_REPLY.match(held.strip()) and (text := shown.feed(held)):
                yield text
            if text := shown.finish():
                yield text
            state["draft"] = "".join(draft)
            self._trace_answer(state)
        except GenerationFailed as exc:
            self._fall_back(state, str(exc))
        self._check(state)

    @staticmethod
    def result(state: State, *, debug: bool = False) -> Answer:
        """After ``finish``: the answer."""
        return Answer(
            answer=state["answer"],
            found=state["found"],
            citations=state["citations"],
            related=[] if state["found"] else [citation(n, p) for n, p in enumerate(state["selection"].related, 1)],
            fallback=state.get("fallback_used"),
            unsupported=state.get("unsupported"),
            trace=[TraceStep(**step) for step in state["trace"]] if debug else None,
        )

    def _condense(self, state: State) -> State:
        turns = self.settings.max_history_turns
        history: list[Message] = state["history"][-turns:] if turns else []
        query, method = condense(state["question"], history), "extractive"
        if self.chat_model is not None and history:
            prompt = load_prompt("condense").render(history=_conversation(history), question=state["question"])
            try:
                rewritten = generation.invoke(
                    self.chat_model, [HumanMessage(prompt)], self.settings.llm_timeout_s
                ).strip()
                if rewritten and len(rewritten) <= self.settings.max_question_chars:
                    query, method = rewritten.splitlines()[0].strip(), "model"
            except GenerationFailed as exc:
                log.warning("condensing without the model: %s", exc)
        state["query"] = query
        detail = {"query": query, "follow_up": query != state["question"], "method": method}
        state["trace"].append({"stage": "condense_question", "detail": detail})
        return state

    def _retrieve(self, state: State) -> State:
        started = time.perf_counter()
        candidates = self.retriever.invoke(state["query"])
        state["candidates"] = candidates
        state["trace"].append(
            {
                "stage": "retrieve",
                "detail": {
                    "query": state["query"],
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "passages": [
                        {
                            "id": d.metadata["id"],
                            "document": d.metadata["document"],
                            "text": d.page_content[:120],
                            "dense": round(d.metadata["dense"], 4),
                            "lexical": round(d.metadata["lexical"], 3),
                            "fused": round(d.metadata["fused"], 5),
                        }
                        for d in candidates[:10]
                    ],
                },
            }
        )
        return state

    def _select(self, state: State) -> State:
        state["decision_input"] = question = self.decision_input(state)
        selection = select_passages(
            question, self.corpus.store.embeddings, self.decision, max_citations=self.settings.max_citations
        )
        state["selection"] = selection
        # A model is given the best passages and judges them itself; the extractive
        # answerer quotes only those that passed the relevance test.
        if self.chat_model is not None:
            state["passages"] = selection.ranked[: self.settings.llm_passages]
        else:
            state["passages"] = selection.passages
        state["trace"].append(
            {
                "stage": "select_passages",
                "detail": {
                    "answerable": selection.answerable,
                    "relevance": round(selection.relevance, 4),
                    "language": selection.language,
                    "reason": selection.reason,
                    "features": selection.features,
                    "ranked": selection.scores,
                },
            }
        )
        return state

    def decision_input(self, state: State) -> Question:
        """After ``retrieve``: the question as the decision sees it."""
        history: list[Message] = state["history"]
        return Question(
            text=state["question"],
            query=state["query"],
            candidates=state["candidates"],
            previous_question=next((m.content for m in reversed(history) if m.role == "user"), ""),
            history_answers=[m.content for m in history if m.role == "assistant"][-2:],
        )

    def _answer(self, state: State) -> State:
        if self.chat_model is None:
            state["draft"] = extractive_answer(state["selection"])
        else:
            try:
                state["draft"] = generation.invoke(
                    self.chat_model, self._answer_messages(state), self.settings.llm_timeout_s
                )
            except GenerationFailed as exc:
                self._fall_back(state, str(exc))
                return state
        self._trace_answer(state)
        return state

    def _answer_messages(self, state: State) -> list[BaseMessage]:
        language = detect_language(state["question"])
        passages = "\n".join(
            f"[{n}] ({p.metadata['title']}{' — ' + p.metadata['section'] if p.metadata.get('section') else ''}) "
            f"{_one_line(p.page_content)}"
            for n, p in enumerate(state["passages"], start=1)
        )
        system = load_prompt("answer_system").render(language=LANGUAGE_NAMES.get(language, "the question's language"))
        user = load_prompt("answer_user").render(
            passages=passages or "(none)",
            history=_conversation(state["history"][-self.settings.max_history_turns :]) or "(none)",
            question=state["question"],
        )
        return [SystemMessage(system), HumanMessage(user)]

    def _trace_answer(self, state: State) -> None:
        detail = {"backend": self.backend, "draft": state["draft"]}
        if self.chat_model is not None:
            detail["prompt"] = "answer_system + answer_user"
        state["trace"].append({"stage": "answer", "detail": detail})

    def _fall_back(self, state: State, reason: str) -> None:
        """Answer with the extractive backend instead, and say so."""
        log.warning("answering without the model: %s", reason)
        state["fallback_used"] = True
        state["passages"] = state["selection"].passages
        state["draft"] = extractive_answer(state["selection"])
        state["trace"].append({"stage": "answer", "detail": {"backend": "extractive", "fallback": reason}})

    def _check(self, state: State) -> State:
        by_model = self.chat_model is not None and not state.get("fallback_used")
        if by_model and NOT_FOUND_REPLY.match(state["draft"].strip()):
            language = state["selection"].language
            state.update(answer=NOT_FOUND.get(language, NOT_FOUND["en"]), citations=[], found=False)
            state["fallback_used"] = False
            state["trace"].append({"stage": "check_citations", "detail": {"citations": 0, "model": "not found"}})
            return state
        text, citations = resolve(state["draft"], state["passages"])
        if by_model and not citations:
            self._fall_back(state, "the model cited none of the passages it was given")
            text, citations = resolve(state["draft"], state["passages"])
            by_model = False
        state["answer"] = text
        state["citations"] = citations
        state["found"] = bool(citations)
        detail: dict[str, Any] = {"citations": len(citations)}
        if self.chat_model is not None:
            state.setdefault("fallback_used", False)
            if by_model:
                state["unsupported"] = unsupported_statements(text)
                detail["unsupported"] = state["unsupported"]
        state["trace"].append({"stage": "check_citations", "detail": detail})
        return state


def text_pieces(text: str, words: int = 4) -> list[str]:
    """The text in small pieces of a few words, whose concatenation is the text."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def _may_be_not_found(text: str) -> bool:
    """True while a reply could still turn out to be the NOT_FOUND answer."""
    start = re.sub(r"[\s_]+", "_", text.strip().upper())
    return "NOT_FOUND".startswith(start) or bool(NOT_FOUND_REPLY.match(text.strip()))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _conversation(history: list[Message]) -> str:
    return "\n".join(f"{m.role}: {_one_line(m.content)}" for m in history)


def _stage(name: str, func: Any) -> Runnable[State, State]:
    return RunnableLambda(func).with_config(run_name=name)
