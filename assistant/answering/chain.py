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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda

from assistant.answering import generation
from assistant.answering.citations import (
    MARKER,
    STATEMENT_END,
    SupportCheck,
    Verdict,
    citation,
    resolve,
    split_statements,
)
from assistant.answering.condensing import condense, follow_up_kind
from assistant.answering.decision import WEIGHTS, DecisionModel, Question, focus_of
from assistant.answering.generation import GenerationFailed
from assistant.answering.index import Corpus
from assistant.answering.prompts import load_prompt
from assistant.answering.retrieval import HybridRetriever
from assistant.answering.selection import NOT_FOUND, Selection, extractive_answer, select_passages
from assistant.config import Settings
from assistant.models import Answer, Citation, Message, TraceStep
from vectorstore.embeddings import queries_ahead
from vectorstore.language import detect_language

log = logging.getLogger("assistant.answering.chain")

LANGUAGE_NAMES = {"fr": "French", "en": "English"}
# The model's way of saying the passages do not hold the answer (see prompts/answer_system.txt).
NOT_FOUND_REPLY = re.compile(r"^\W*NOT[_ ]FOUND\W*$", re.IGNORECASE)


@dataclass
class ChainState:
    """What the stages hand on to each other, filled in as the chain runs.

    ``start`` gives the question and the conversation; ``condense_question`` adds the
    query, ``retrieve`` the candidates, ``select_passages`` the selection and the passages
    the answer may cite (numbered from 1 in this order), ``answer`` the draft, and
    ``check_citations`` the answer with its citations. Every stage appends what it did to
    ``trace``. With a language model, ``fallback`` says whether the extractive answer stands
    in for the model's, and ``unsupported`` lists the statements of its reply left out.
    """

    question: str
    history: list[Message] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    query: str = ""
    candidates: list[Document] = field(default_factory=list)
    decision_input: Question | None = None
    selection: Selection | None = None
    passages: list[Document] = field(default_factory=list)
    draft: str = ""
    answer: str = ""
    citations: list[Citation] = field(default_factory=list)
    found: bool = False
    # Both stay None without a language model, as the answer's fields of the same names do.
    fallback: bool | None = None
    unsupported: list[str] | None = None

    @property
    def selected(self) -> Selection:
        """The selection, once ``select_passages`` has run."""
        if self.selection is None:
            raise RuntimeError("the passages have not been selected yet")
        return self.selection


@dataclass(frozen=True)
class Sources:
    """The passages the answer may cite, numbered as its markers number them."""

    citations: list[Citation]


@dataclass(frozen=True)
class Delta:
    """A piece of the answer's text; the pieces joined are the answer's text."""

    text: str


@dataclass(frozen=True)
class Done:
    """The checked answer."""

    answer: Answer


Event = Sources | Delta | Done


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
        model = decision or DecisionModel.load(settings.decision_weights or WEIGHTS)
        self.decision = model.used(quick=settings.quick_decisions)
        self.chat_model = chat_model
        self.backend = settings.llm if chat_model is not None else "extractive"
        self.retriever = HybridRetriever(corpus=corpus, k=settings.candidates)
        # "gather" finds the candidates, "prepare" fixes the passages an answer may cite,
        # "finish" writes and checks it. Streaming sends the citable passages between the two.
        self.gather: Runnable[ChainState, ChainState] = (
            _stage("condense_question", self._condense) | _stage("retrieve", self._retrieve)
        ).with_config(run_name="gather")
        self.prepare: Runnable[ChainState, ChainState] = (
            self.gather | _stage("select_passages", self._select)
        ).with_config(run_name="prepare")
        self.finish: Runnable[ChainState, ChainState] = (
            _stage("answer", self._answer) | _stage("check_citations", self._check)
        ).with_config(run_name="finish")
        self.runnable: Runnable[ChainState, ChainState] = (self.prepare | self.finish).with_config(
            run_name="answer_chain"
        )

    def answer(self, question: str, history: list[Message] | None = None, *, debug: bool = False) -> Answer:
        """Run the chain; ``debug`` adds the trace of every stage to the answer."""
        return self.result(self.runnable.invoke(self.start(question, history)), debug=debug)

    def stream(self, question: str, history: list[Message] | None = None, *, debug: bool = False) -> Iterator[Event]:
        """Run the chain as events: ``Sources`` once the passages are chosen, ``Delta``s as
        the text is written (only text that checked out), then ``Done`` with the answer,
        whose text is the deltas joined. A route only translates these to its wire format."""
        state = self.prepare.invoke(self.start(question, history))
        yield Sources(self.sources(state))
        for piece in self.stream_answer(state):
            yield Delta(piece)
        yield Done(self.result(state, debug=debug))

    @staticmethod
    def start(question: str, history: list[Message] | None = None) -> ChainState:
        """The chain's input state."""
        return ChainState(question=question, history=history or [])

    @staticmethod
    def sources(state: ChainState) -> list[Citation]:
        """After ``prepare``: the passages the answer may cite, numbered as the answer's
        markers number them while it streams."""
        return [citation(n, p) for n, p in enumerate(state.passages, start=1)]

    def stream_answer(self, state: ChainState) -> Iterator[str]:
        """After ``prepare``: the answer's text as it is written; then ``state`` holds the
        checked answer (``result``), whose text is exactly what was yielded.

        A model's reply is shown statement by statement, each once it is complete and its
        citations check out; what fails is never shown. When nothing is left to show (the
        model failed, cited nothing that supports it, or found nothing where the passages
        answer), the extractive answer is yielded instead."""
        if self.chat_model is None:
            self.finish.invoke(state)
            yield from text_pieces(state.answer)
            return
        checker = self._checker(state)
        draft: list[str] = []
        taken = 0  # characters of the draft already cut into statements
        pending = ""
        verdicts: list[Verdict] = []
        # Where the passages were judged to answer, statements wait until one of them uses
        # the passage judged to answer (see ``_conclude``).
        anchored = not state.selected.passages
        held: list[str] = []
        yielded = False

        def show(verdict: Verdict) -> Iterator[str]:
            nonlocal anchored, held, yielded
            if not verdict.shown:
                return
            held.append(verdict.shown)
            anchored = anchored or self._anchored(state, verdict.shown)
            if anchored:
                for text in held:
                    yield (" " if yielded else "") + text
                    yielded = True
                held = []

        try:
            for token in generation.stream(self.chat_model, self._answer_messages(state), self.settings.llm_timeout_s):
                draft.append(token)
                written = "".join(draft)
                if _may_be_not_found(written):
                    continue
                complete, pending = take_statements(written[taken:])
                taken = len(written) - len(pending)
                for statement in complete:
                    verdicts.append(verdict := checker.check(statement))
                    yield from show(verdict)
            state.draft = "".join(draft)
            self._trace_answer(state)
            if not NOT_FOUND_REPLY.match(state.draft.strip()) and pending.strip():
                verdicts.append(verdict := checker.check(pending.strip()))
                yield from show(verdict)
        except GenerationFailed as exc:
            if not yielded:
                self._fall_back(state, str(exc))
                self._check(state)
                yield from text_pieces(state.answer)
                return
            # What was shown checked out: it stands, cut where the model stopped.
            state.draft = "".join(draft)
            state.trace.append({"stage": "answer", "detail": {"backend": self.backend, "stopped": str(exc)}})
        self._conclude(state, verdicts)
        if state.fallback or not yielded:
            yield from text_pieces(state.answer)

    @staticmethod
    def result(state: ChainState, *, debug: bool = False) -> Answer:
        """After ``finish``: the answer."""
        return Answer(
            answer=state.answer,
            found=state.found,
            citations=state.citations,
            related=[] if state.found else [citation(n, p) for n, p in enumerate(state.selected.related, 1)],
            fallback=state.fallback,
            # What the model wrote and the check left out is never shown to a public client.
            unsupported=state.unsupported if debug else None,
            trace=[TraceStep(**step) for step in state.trace] if debug else None,
        )

    def _condense(self, state: ChainState) -> ChainState:
        turns = self.settings.max_history_turns
        history: list[Message] = state.history[-turns:] if turns else []
        query, method = condense(state.question, history), "extractive"
        # The built-in rewrite is trusted when the question says what it refers back to
        # ("et pourquoi ?", a pronoun); a short question that does not is where a model's
        # rewrite helps, and it is added to the built-in one, never put in its place.
        if self.chat_model is not None and history and follow_up_kind(state.question) == "short":
            prompt = load_prompt("condense").render(history=_conversation(history), question=state.question)
            try:
                rewritten = generation.invoke(
                    self.chat_model, [HumanMessage(prompt)], self.settings.llm_condense_timeout_s
                ).strip()
                rewritten = rewritten.splitlines()[0].strip() if rewritten else ""
                if rewritten and len(rewritten) <= self.settings.max_question_chars and rewritten not in query:
                    query, method = f"{query} {rewritten}", "extractive + model"
            except GenerationFailed as exc:
                log.warning("condensing without the model: %s", exc)
        state.query = query
        detail = {"query": query, "follow_up": query != state.question, "method": method}
        state.trace.append({"stage": "condense_question", "detail": detail})
        return state

    def _retrieve(self, state: ChainState) -> ChainState:
        started = time.perf_counter()
        # What the decision embeds after the query's passes: a follow-up's own words and,
        # unless a quick stage may go without it, the question's focus.
        ahead = [state.question] if state.query != state.question else []
        if self.decision.quick is None and (focus := focus_of(state.question)) is not None:
            ahead.append(focus)
        with queries_ahead(ahead):
            candidates = self.retriever.invoke(state.query)
        state.candidates = candidates
        state.trace.append(
            {
                "stage": "retrieve",
                "detail": {
                    "query": state.query,
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

    def _select(self, state: ChainState) -> ChainState:
        state.decision_input = question = self.decision_input(state)
        selection = select_passages(
            question, self.corpus.store.embeddings, self.decision, max_citations=self.settings.max_citations
        )
        state.selection = selection
        # A model is given the best passages and judges them itself; the extractive
        # answerer quotes only those that passed the relevance test.
        if self.chat_model is not None:
            state.passages = by_document(selection.eligible[: self.settings.llm_passages])
        else:
            state.passages = selection.passages
        state.trace.append(
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

    def decision_input(self, state: ChainState) -> Question:
        """After ``retrieve``: the question as the decision sees it."""
        history: list[Message] = state.history
        return Question(
            text=state.question,
            query=state.query,
            candidates=state.candidates,
            previous_question=next((m.content for m in reversed(history) if m.role == "user"), ""),
            history_answers=[m.content for m in history if m.role == "assistant"][-2:],
        )

    def _answer(self, state: ChainState) -> ChainState:
        if self.chat_model is None:
            state.draft = extractive_answer(state.selected)
        else:
            try:
                state.draft = generation.invoke(
                    self.chat_model, self._answer_messages(state), self.settings.llm_timeout_s
                )
            except GenerationFailed as exc:
                self._fall_back(state, str(exc))
                return state
        self._trace_answer(state)
        return state

    def _answer_messages(self, state: ChainState) -> list[BaseMessage]:
        # Stable text first (the system prompt never changes, so a model server's prompt
        # cache keeps it), the question's own text last; each document's title once.
        language = detect_language(state.question)
        lines: list[str] = []
        title = None
        for n, p in enumerate(state.passages, start=1):
            if p.metadata["title"] != title:
                title = p.metadata["title"]
                lines.append(f"Document: {title}")
            section = f"({p.metadata['section']}) " if p.metadata.get("section") else ""
            lines.append(f"[{n}] {section}{_one_line(p.page_content)}")
        user = load_prompt("answer_user").render(
            passages="\n".join(lines) or "(none)",
            history=_conversation(state.history[-self.settings.max_history_turns :]) or "(none)",
            question=state.question,
            language=LANGUAGE_NAMES.get(language, "the question's language"),
        )
        return [SystemMessage(load_prompt("answer_system").render()), HumanMessage(user)]

    def _trace_answer(self, state: ChainState) -> None:
        detail = {"backend": self.backend, "draft": state.draft}
        if self.chat_model is not None:
            detail["prompt"] = "answer_system + answer_user"
        state.trace.append({"stage": "answer", "detail": detail})

    def _fall_back(self, state: ChainState, reason: str) -> None:
        """Answer with the extractive backend instead, and say so."""
        log.warning("answering without the model: %s", reason)
        state.fallback = True
        state.passages = state.selected.passages
        state.draft = extractive_answer(state.selected)
        state.trace.append({"stage": "answer", "detail": {"backend": "extractive", "fallback": reason}})

    def _check(self, state: ChainState) -> ChainState:
        if self.chat_model is None or state.fallback:
            return self._resolve(state)
        if NOT_FOUND_REPLY.match(state.draft.strip()):
            return self._conclude(state, [])
        checker = self._checker(state)
        return self._conclude(state, [checker.check(s) for s in split_statements(state.draft)])

    def _checker(self, state: ChainState) -> SupportCheck:
        return SupportCheck(
            state.question,
            state.passages,
            self.corpus.store.embeddings,
            must_address=not state.selected.answerable,
        )

    def _conclude(self, state: ChainState, verdicts: list[Verdict]) -> ChainState:
        """The model's answer made of the statements that checked out; or, with none, the
        extractive answer (a refusal when the passages were judged not to answer)."""
        state.unsupported = [v.statement for v in verdicts if not v.shown]
        kept = [v.shown for v in verdicts if v.shown]
        unanchored = bool(kept) and bool(state.selected.passages)
        unanchored = unanchored and not any(self._anchored(state, statement) for statement in kept)
        if unanchored:
            # Supported statements, but none uses the passage judged to answer: a small model
            # citing "the visit lasts three days" for "is it only a protocol visit?". The
            # extractive answer, which quotes the passage judged to answer, stands instead.
            state.unsupported = [v.statement for v in verdicts]
            kept = []
        if not kept:
            said_not_found = NOT_FOUND_REPLY.match(state.draft.strip()) is not None
            if said_not_found and (not state.selected.answerable or self.settings.llm_decides):
                language = state.selected.language
                state.answer = NOT_FOUND.get(language, NOT_FOUND["en"])
                state.citations = []
                state.found = False
                state.fallback = False
                state.trace.append({"stage": "check_citations", "detail": {"citations": 0, "model": "not found"}})
                return state
            if unanchored:
                reason = "no statement of the model's reply uses the passage judged to answer"
            elif said_not_found:
                reason = "the model found nothing where the passages answer"
            else:
                reason = "no statement of the model's reply is supported by a passage it cites"
            self._fall_back(state, reason)
            return self._resolve(state)
        text = " ".join(kept)
        used = list(dict.fromkeys(n for statement in kept for n in _marker_numbers(statement)))
        state.answer = text
        state.citations = [citation(n, state.passages[n - 1]) for n in used]
        state.found = True
        state.fallback = False
        left_out = [{"statement": v.statement, "why": v.reason} for v in verdicts if not v.shown]
        detail = {"citations": len(used), "left_out": left_out}
        state.trace.append({"stage": "check_citations", "detail": detail})
        return state

    @staticmethod
    def _anchored(state: ChainState, statement: str) -> bool:
        """Whether a checked statement cites the passage the selection judged to answer: the
        best one (those quoted beside it in an extractive answer are only near it)."""
        answering = {p.metadata["id"] for p in state.selected.passages[:1]}
        return any(
            state.passages[n - 1].metadata["id"] in answering
            for n in _marker_numbers(statement)
            if 1 <= n <= len(state.passages)
        )

    def _resolve(self, state: ChainState) -> ChainState:
        """Markers of an extractive answer checked against its passages."""
        text, citations = resolve(state.draft, state.passages)
        state.answer = text
        state.citations = citations
        state.found = bool(citations)
        if self.chat_model is not None:
            if state.fallback is None:
                state.fallback = False
            if state.unsupported is None:
                state.unsupported = []
        state.trace.append({"stage": "check_citations", "detail": {"citations": len(citations)}})
        return state


def by_document(passages: list[Document]) -> list[Document]:
    """The passages grouped by document (documents in order of their best passage), so
    that the prompt names each document once."""
    first: dict[str, int] = {}
    for rank, p in enumerate(passages):
        first.setdefault(p.metadata["document"], rank)
    return sorted(passages, key=lambda p: first[p.metadata["document"]])


def take_statements(pending: str) -> tuple[list[str], str]:
    """The complete statements at the start of a reply being written, and the rest."""
    complete, start = [], 0
    for match in STATEMENT_END.finditer(pending):
        complete.append(pending[start : match.end()].strip())
        start = match.end()
    return [c for c in complete if c], pending[start:]


def _marker_numbers(text: str) -> list[int]:
    return [int(n) for group in MARKER.findall(text) for n in group.split(",")]


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


def _stage(name: str, func: Callable[[ChainState], ChainState]) -> Runnable[ChainState, ChainState]:
    return RunnableLambda(func).with_config(run_name=name)
