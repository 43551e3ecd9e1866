"""The answer chain, stage by stage:

    condense_question -> retrieve -> select_passages -> answer -> check_citations

Each stage is a named LangChain runnable and leaves a trace step, returned with the
answer when asked for.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda

from assistant.answering import extractive_answer, select_passages
from assistant.citations import citation, resolve
from assistant.config import Settings
from assistant.models import Answer, Citation, Message, TraceStep
from assistant.retrieval import Corpus, HybridRetriever, condense

log = logging.getLogger("assistant.chain")

State = dict[str, Any]


class AnswerChain:
    """Answers a question (with its conversation) from the corpus, with citations."""

    def __init__(self, corpus: Corpus, settings: Settings) -> None:
        self.corpus = corpus
        self.settings = settings
        self.retriever = HybridRetriever(corpus=corpus, k=settings.candidates)
        # "prepare" fixes the passages an answer may cite; "finish" writes and checks it.
        # Streaming sends the citable passages between the two.
        self.prepare: Runnable[State, State] = (
            _stage("condense_question", self._condense)
            | _stage("retrieve", self._retrieve)
            | _stage("select_passages", self._select)
        ).with_config(run_name="prepare")
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
        """After ``prepare``: the passages the answer may cite, numbered as it will cite them."""
        return [citation(n, p) for n, p in enumerate(state["selection"].passages, start=1)]

    @staticmethod
    def result(state: State, *, debug: bool = False) -> Answer:
        """After ``finish``: the answer."""
        return Answer(
            answer=state["answer"],
            found=state["found"],
            citations=state["citations"],
            trace=[TraceStep(**step) for step in state["trace"]] if debug else None,
        )

    def _condense(self, state: State) -> State:
        history: list[Message] = (
            state["history"][-self.settings.max_history_turns :] if self.settings.max_history_turns else []
        )
        query = condense(state["question"], history)
        state["query"] = query
        state["trace"].append(
            {"stage": "condense_question", "detail": {"query": query, "follow_up": query != state["question"]}}
        )
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
        previous = [m.content for m in state["history"] if m.role == "assistant"][-2:]
        selection = select_passages(
            state["question"],
            previous,
            state["candidates"],
            self.corpus,
            follow_up=state["query"] != state["question"],
            previous_question=next((m.content for m in reversed(state["history"]) if m.role == "user"), ""),
            min_relevance=self.settings.min_relevance,
            min_relevance_cross_lingual=self.settings.min_relevance_cross_lingual,
            max_citations=self.settings.max_citations,
        )
        state["selection"] = selection
        state["trace"].append(
            {
                "stage": "select_passages",
                "detail": {
                    "answerable": selection.answerable,
                    "relevance": round(selection.relevance, 4),
                    "language": selection.language,
                    "reason": selection.reason,
                    "ranked": selection.scores,
                },
            }
        )
        return state

    def _answer(self, state: State) -> State:
        state["draft"] = extractive_answer(state["selection"])
        state["trace"].append({"stage": "answer", "detail": {"backend": "extractive", "draft": state["draft"]}})
        return state

    def _check(self, state: State) -> State:
        passages = state["selection"].passages
        text, citations = resolve(state["draft"], passages)
        state["answer"] = text
        state["citations"] = citations
        state["found"] = bool(citations)
        state["trace"].append({"stage": "check_citations", "detail": {"citations": len(citations)}})
        return state


def _stage(name: str, func: Any) -> Runnable[State, State]:
    return RunnableLambda(func).with_config(run_name=name)
