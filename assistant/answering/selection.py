"""Choosing the passages that answer a question, and the extractive answerer.

Selection ranks the candidates with the fitted ranker, skips those whose document
contradicts a year or figure of the question, and asks the fitted decider whether the
best one answers (see ``assistant.answering.decision``). When it does not, the closest passages are
kept apart as ``related``: offered to the reader, never cited as an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.documents import Document

from assistant.answering.decision import (
    RANK_FEATURES,
    Decision,
    DecisionModel,
    Embedder,
    Question,
    decide,
    quoted,
    related_logits,
    sigmoid,
)
from assistant.answering.question_analysis import read_question
from assistant.models import MARKER
from vectorstore.language import content_words, detect_language, words

NOT_FOUND = {
    "fr": "Je ne trouve pas la réponse à cette question dans les documents.",
    "en": "I could not find the answer to this question in the documents.",
}
RELATED = 3


@dataclass
class Selection:
    """The passages the answer stage may cite (numbered from 1), and whether they answer."""

    passages: list[Document]
    answerable: bool
    relevance: float
    language: str
    reason: str
    scores: list[dict[str, Any]] = field(default_factory=list)
    ranked: list[Document] = field(default_factory=list)
    related: list[Document] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    # The ranked candidates whose document does not contradict the question (a year or
    # figure it gives): those a language model may be given.
    eligible: list[Document] = field(default_factory=list)
    # The title of the document a question about the document itself asks of ("De quoi
    # parle l'article ?"): the answer names it before quoting its opening.
    about: str = ""


def select_passages(question: Question, embedder: Embedder, model: DecisionModel, *, max_citations: int) -> Selection:
    """Rank the candidates and decide whether the best one answers."""
    language = detect_language(question.text)
    docs = question.candidates
    if not docs:
        return Selection([], False, 0.0, language, "no passages")
    if not question.follow_up and not content_words(question.text):
        # Nothing of it reads as a word of ours ("???", "Pourquoi ?" alone, a question in
        # another script): the decision could not check what it asks, so it answers nothing.
        # A question in another script still gets the closest passages (the embedding model
        # reads it); one of punctuation or question words alone asks about nothing.
        other_script = not words(question.text) and any(c.isalpha() for c in question.text)
        related = _related(question, decide(question, embedder, model), model) if other_script else []
        reason = "no word of the question can be read as French or English"
        return Selection([], False, 0.0, language, reason, related=related)
    decision = decide(question, embedder, model)
    logits, order, eligible = decision.logits, decision.order, decision.eligible
    if not question.follow_up and read_question(question.text).about_document and eligible:
        # What the article is about is what it says first: its title and opening sentence,
        # in the document the question is closest to.
        document = docs[eligible[0]].metadata["document"]
        opening = min((d for d in docs if d.metadata["document"] == document), key=lambda d: d.metadata["position"])
        reason = "the question asks what the document is about: its title and opening"
        return Selection([opening], True, 1.0, language, reason, eligible=[opening], about=opening.metadata["title"])
    ranked = [docs[i] for i in order]
    columns = decision.ranker.features
    matrix = decision.found.matrix
    scores = [
        {
            "id": docs[i].metadata["id"],
            "document": docs[i].metadata["document"],
            "text": docs[i].page_content[:120],
            "rank_probability": round(float(sigmoid(logits[i])), 4),
            **{name: round(float(matrix[i, RANK_FEATURES.index(name)]), 4) for name in columns},
            "conflict": bool(decision.found.conflict[i]),
        }
        for i in order[:8]
    ]
    usable = [docs[i] for i in eligible]
    if not eligible:
        reason = "every candidate's document contradicts a year or figure of the question"
        return Selection([], False, 0.0, language, reason, scores, ranked, _related(question, decision, model))
    stage = "quick stage, no focus pass: " if decision.quick else ""
    detail = f"{stage}answer probability {decision.probability:.3f} (threshold {decision.threshold:.3f})"
    if not decision.answers:
        related = _related(question, decision, model)
        return Selection(
            [],
            False,
            decision.probability,
            language,
            "not sure enough: " + detail,
            scores,
            ranked,
            related,
            decision.features,
            usable,
        )
    documents = [d.metadata["document"] for d in docs]
    chosen = quoted(eligible, logits, documents, decision.extra_margin, max_citations)
    # Best first: the sentence most likely to answer is the one read first.
    passages = [docs[i] for i in chosen]
    return Selection(
        passages, True, decision.probability, language, detail, scores, ranked, [], decision.features, usable
    )


def _related(question: Question, decision: Decision, model: DecisionModel) -> list[Document]:
    """The closest passages, offered when no answer is sure.

    Ranked by the full ranker, as if every passage stated the kind of answer asked for: a
    question on the amount of trade that no passage gives still has passages about that
    trade. After a refusal by the quick stage the focus is not measured, and the ranker
    reads the whole question's cosine in its place (as for a question without a focus):
    measured on validation, that ranked them better than the quick ranker's own order
    (the support offered for 0.64 of the answerable questions refused, against 0.60);
    measuring the focus would cost its model pass on every refusal."""
    docs = question.candidates
    logits = related_logits(decision.found, model.ranker)
    order = np.argsort(-logits, kind="stable")[:RELATED]
    return [docs[i] for i in order if sigmoid(logits[i]) >= model.related_floor]


def extractive_answer(selection: Selection) -> str:
    """Quote the selected sentences, each followed by its marker; or say it is not there."""
    if not selection.answerable or not selection.passages:
        return NOT_FOUND.get(selection.language, NOT_FOUND["en"])
    if selection.about:
        colon = " :" if selection.language == "fr" else ":"
        return f"{selection.about}{colon} {_cite(selection.passages[0].page_content, 1)}"
    return " ".join(_cite(p.page_content, i) for i, p in enumerate(selection.passages, start=1))


def _cite(sentence: str, number: int) -> str:
    """The sentence with its marker before the closing punctuation: "… région [1].".

    Brackets the document itself uses ("… 40 megawatts [2].") become parentheses, so that
    the only markers in an answer are its own citations."""
    sentence = MARKER.sub(lambda m: f"({m.group(1)})", sentence)
    match = re.search(r"[.!?…]+[»\"”’)]*$", sentence)
    if not match:
        return f"{sentence} [{number}]"
    return f"{sentence[: match.start()].rstrip()} [{number}]{match.group(0)}"
