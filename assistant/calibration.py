"""Fitting the answer decision on a question set (``assistant calibrate``).

Each question is run through the chain up to retrieval. The ranker learns, over the
candidates of answerable questions, which passage holds the expected support; the
decider learns, over every question, whether the best passage the ranker offers holds
it (an unanswerable question, or a best passage without the support, is a "no"). The
cut on the decider's probability is the one that best balances answering and refusing
on the calibration set; figures on another split say whether it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.chain import AnswerChain
from assistant.decision import (
    DECIDE_FEATURES,
    RANK_FEATURES,
    Candidates,
    DecisionModel,
    Logistic,
    Question,
    candidate_features,
    decision_features,
    eligible_order,
    sigmoid,
)
from assistant.models import Message
from vectorstore.language import fold


@dataclass
class Example:
    """One calibration question with what the chain retrieved for it."""

    item: dict[str, Any]
    question: Question
    found: Candidates
    holds_support: np.ndarray


def gather(chain: AnswerChain, items: list[dict[str, Any]]) -> list[Example]:
    """Run every question up to retrieval and compute the ranker's features."""
    embedder = chain.corpus.store.embeddings
    examples = []
    for item in items:
        history = [Message(**m) for m in item.get("history", [])]
        state = chain.gather.invoke(chain.start(item["question"], history))
        question = chain.decision_input(state)
        if not question.candidates:
            continue
        found = candidate_features(question, embedder)
        support = fold(item.get("support", "")) if item.get("answerable") else ""
        holds = np.array([bool(support) and support in fold(d.page_content) for d in question.candidates])
        examples.append(Example(item, question, found, holds))
    return examples


def fit(examples: list[Example], *, l2: float = 1.0) -> DecisionModel:
    """Fit the ranker, then the decider on the ranker's choices, then the cut."""
    ranked = [e for e in examples if e.holds_support.any()]
    if not ranked:
        raise ValueError("no answerable question has its support among the retrieved passages")
    ranker = Logistic.fit(
        RANK_FEATURES,
        np.vstack([e.found.matrix for e in ranked]),
        np.concatenate([e.holds_support for e in ranked]).astype(np.float64),
        l2,
    )
    rows, labels = [], []
    for e in examples:
        logits = ranker.logit(e.found.matrix)
        _, eligible = eligible_order(logits, e.found.conflict)
        if not eligible:
            continue
        best = eligible[0]
        rows.append(decision_features(e.question, e.found, logits, best))
        labels.append(float(e.holds_support[best]))
    y = np.array(labels)
    if y.min() == y.max():
        raise ValueError("the calibration set needs both questions the documents answer and questions they do not")
    decider = Logistic.fit(DECIDE_FEATURES, np.vstack(rows), y, l2)
    probabilities = sigmoid(decider.logit(np.vstack(rows)))
    threshold = best_threshold(probabilities, y)
    notes = {
        "calibration_questions": len(examples),
        "answerable_with_support_retrieved": len(ranked),
        "decided_yes": int(y.sum()),
        "decided_no": int(len(y) - y.sum()),
    }
    return DecisionModel(ranker, decider, threshold, notes=notes)


def best_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The cut with the best balanced accuracy (answers right, refusals right); of equal
    ones, the nearest to 0.5."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    positives = labels == 1
    scores = [((probabilities[positives] >= t).mean() + (probabilities[~positives] < t).mean()) / 2 for t in grid]
    top = max(scores)
    return float(min((t for t, s in zip(grid, scores, strict=True) if s >= top - 1e-9), key=lambda t: abs(t - 0.5)))
