"""Choosing the passages that answer a question, and the extractive answerer.

Selection ranks the candidates with the fitted ranker, skips those whose document
contradicts a year or figure of the question, and asks the fitted decider whether the
best one answers (see ``assistant.decision``). When it does not, the closest passages are
kept apart as ``related``: offered to the reader, never cited as an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.documents import Document

from assistant.decision import (
    DECIDE_FEATURES,
    RANK_FEATURES,
    Candidates,
    DecisionModel,
    Embedder,
    Question,
    candidate_features,
    decision_features,
    eligible_order,
    sigmoid,
)
from assistant.models import MARKER
from vectorstore.language import content_words, detect_language

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


def select_passages(question: Question, embedder: Embedder, model: DecisionModel, *, max_citations: int) -> Selection:
    """Rank the candidates and decide whether the best one answers."""
    language = detect_language(question.text)
    docs = question.candidates
    if not docs:
        return Selection([], False, 0.0, language, "no passages")
    found = candidate_features(question, embedder)
    logits = model.ranker.logit(found.matrix)
    order, eligible = eligible_order(logits, found.conflict)
    ranked = [docs[i] for i in order]
    scores = [
        {
            "id": docs[i].metadata["id"],
            "document": docs[i].metadata["document"],
            "text": docs[i].page_content[:120],
            "rank_probability": round(float(sigmoid(logits[i])), 4),
            **{name: round(float(v), 4) for name, v in zip(model.ranker.features, found.matrix[i], strict=True)},
            "conflict": bool(found.conflict[i]),
        }
        for i in order[:8]
    ]
    usable = [docs[i] for i in eligible]
    if not eligible:
        reason = "every candidate's document contradicts a year or figure of the question"
        return Selection([], False, 0.0, language, reason, scores, ranked, _related(question, found, model))
    best = eligible[0]
    features = decision_features(question, found, logits, best)
    probability = float(sigmoid(model.decider.logit(features[None, :])[0]))
    named = {name: round(float(v), 4) for name, v in zip(DECIDE_FEATURES, features, strict=True)}
    detail = f"answer probability {probability:.3f} (threshold {model.threshold:.3f})"
    if probability < model.threshold:
        related = _related(question, found, model)
        return Selection(
            [], False, probability, language, "not sure enough: " + detail, scores, ranked, related, named, usable
        )
    chosen = [best]
    for i in eligible[1:]:
        if len(chosen) >= max_citations or logits[i] < logits[best] - model.extra_margin:
            break
        chosen.append(i)
    passages = sorted((docs[i] for i in chosen), key=lambda d: (d.metadata["document"], d.metadata["start"]))
    return Selection(passages, True, probability, language, detail, scores, ranked, [], named, usable)


def _related(question: Question, found: Candidates, model: DecisionModel) -> list[Document]:
    """The closest passages, offered when no answer is sure.

    Ranked as if every passage stated the kind of answer asked for: a question on the
    amount of trade that no passage gives still has passages about that trade. A question
    without a word to look for ("???", an emoji) has none."""
    if not content_words(question.text):
        return []
    docs = question.candidates
    matrix = found.matrix.copy()
    matrix[:, RANK_FEATURES.index("type_missing")] = 0.0
    logits = model.ranker.logit(matrix)
    order = np.argsort(-logits, kind="stable")[:RELATED]
    return [docs[i] for i in order if sigmoid(logits[i]) >= model.related_floor]


def extractive_answer(selection: Selection) -> str:
    """Quote the selected sentences, each followed by its marker; or say it is not there."""
    if not selection.answerable or not selection.passages:
        return NOT_FOUND.get(selection.language, NOT_FOUND["en"])
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
