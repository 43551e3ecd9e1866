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

from assistant.answering.chain import AnswerChain
from assistant.answering.decision import (
    DECIDE_FEATURES,
    QUICK_DECIDE_FEATURES,
    QUICK_RANK_FEATURES,
    RANK_FEATURES,
    Candidates,
    DecisionModel,
    Logistic,
    Question,
    QuickStage,
    candidate_features,
    decision_features,
    eligible_order,
    focus_of,
    quoted,
    sigmoid,
)
from assistant.models import Message
from vectorstore.language import fold

_BAND_STEP = 0.05
# Grid steps (of 0.01) on each side over which balanced accuracy is averaged.
_THRESHOLD_WINDOW = 5
# Candidate margins for quoting further passages beside the best (ranker log-odds); the
# last quotes every passage of the best one's document, up to the limit.
MARGINS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 100.0)


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


def fit(examples: list[Example], *, l2: float = 1.0, quote_limit: int = 3) -> DecisionModel:
    """Fit the ranker, then the decider on the ranker's choices, then the cut; then the
    same without the focus features, and the band where that quick decision is unsure;
    then how close to the best passage another must be to be quoted beside it (an answer
    quotes at most ``quote_limit``)."""
    ranked = [e for e in examples if e.holds_support.any()]
    if not ranked:
        raise ValueError("no answerable question has its support among the retrieved passages")
    full = _fit_stage(examples, RANK_FEATURES, DECIDE_FEATURES, l2)
    quick = _fit_stage(examples, QUICK_RANK_FEATURES, QUICK_DECIDE_FEATURES, l2)
    y = full.labels
    notes = {
        "calibration_questions": len(examples),
        "answerable_with_support_retrieved": len(ranked),
        "decided_yes": int(y.sum()),
        "decided_no": int(len(y) - y.sum()),
    }
    # Only a question with a focus of its own has a model pass to spare.
    with_focus = np.array([focus_of(e.question.text) is not None for e in examples])
    answerable = np.array([bool(e.item.get("answerable")) for e in examples])
    unsure = unsure_band(full, quick, with_focus, answerable)
    sure = with_focus & ((quick.probabilities < unsure[0]) | (quick.probabilities > unsure[1]))
    notes["decided_without_the_focus_pass"] = round(float(sure.sum() / max(1, with_focus.sum())), 3)
    margin = quote_margin(examples, full, limit=quote_limit)
    notes["answers_quoting_the_support"] = round(_quoting_support(examples, full, margin, quote_limit), 3)
    quick_margin = quote_margin(examples, quick, limit=quote_limit)
    stage = QuickStage(quick.ranker, quick.decider, quick.threshold, unsure, quick_margin)
    return DecisionModel(full.ranker, full.decider, full.threshold, extra_margin=margin, notes=notes, quick=stage)


def quote_margin(examples: list[Example], stage: _Stage, *, limit: int) -> float:
    """How far below the best passage (in the ranker's log-odds) a passage of the same
    document may be and still be quoted beside it: the narrowest margin on a grid whose
    answers quote the support as often, on the calibration questions, as the widest (every
    passage of the document up to ``limit``).

    A wider margin only adds sentences, so it never quotes the support less often; past
    this one it adds sentences that did not hold the support for any calibration question."""
    shares = [_quoting_support(examples, stage, m, limit) for m in MARGINS]
    return next(m for m, share in zip(MARGINS, shares, strict=True) if share >= max(shares) - 1e-9)


def _quoting_support(examples: list[Example], stage: _Stage, margin: float, limit: int) -> float:
    """Share of the answerable calibration questions answered with the support among
    the quoted passages."""
    hits, answerable = 0, 0
    for e, probability in zip(examples, stage.probabilities, strict=True):
        if not e.item.get("answerable"):
            continue
        answerable += 1
        if probability < stage.threshold:
            continue
        logits = stage.logits(e.found)
        _, eligible = eligible_order(logits, e.found.conflict)
        documents = [d.metadata["document"] for d in e.question.candidates]
        hits += bool(e.holds_support[quoted(eligible, logits, documents, margin, limit)].any())
    return hits / max(1, answerable)


@dataclass
class _Stage:
    """A fitted ranker and decider, with what they decide on every calibration question."""

    ranker: Logistic
    decider: Logistic
    threshold: float
    probabilities: np.ndarray  # the decider's, 0 where no candidate may answer
    labels: np.ndarray  # whether the best eligible candidate holds the support
    rank_columns: list[int] | None = None  # the ranker's columns of the features, None for all

    def logits(self, found: Candidates) -> np.ndarray:
        """The ranker's scores of one question's candidates."""
        return self.ranker.logit(found.matrix if self.rank_columns is None else found.matrix[:, self.rank_columns])

    def outcomes(self, answerable: np.ndarray) -> np.ndarray:
        """Per question, what the figures count: an answer from the support where the
        question is answerable, a refusal where it is not."""
        answered = self.probabilities >= self.threshold
        return np.where(answerable, answered & (self.labels == 1), ~answered)


def _fit_stage(examples: list[Example], rank: tuple[str, ...], decide: tuple[str, ...], l2: float) -> _Stage:
    rank_columns = [RANK_FEATURES.index(f) for f in rank]
    decide_columns = [DECIDE_FEATURES.index(f) for f in decide]
    ranked = [e for e in examples if e.holds_support.any()]
    ranker = Logistic.fit(
        rank,
        np.vstack([e.found.matrix[:, rank_columns] for e in ranked]),
        np.concatenate([e.holds_support for e in ranked]).astype(np.float64),
        l2,
    )
    rows, labels, kept = [], [], []
    for n, e in enumerate(examples):
        logits = ranker.logit(e.found.matrix[:, rank_columns])
        _, eligible = eligible_order(logits, e.found.conflict)
        if not eligible:
            continue
        best = eligible[0]
        rows.append(decision_features(e.question, e.found, logits, best)[decide_columns])
        labels.append(float(e.holds_support[best]))
        kept.append(n)
    y = np.array(labels)
    if y.min() == y.max():
        raise ValueError("the calibration set needs both questions the documents answer and questions they do not")
    decider = Logistic.fit(decide, np.vstack(rows), y, l2)
    probabilities = sigmoid(decider.logit(np.vstack(rows)))
    all_probabilities = np.zeros(len(examples))
    all_labels = np.zeros(len(examples))
    all_probabilities[kept] = probabilities
    all_labels[kept] = y
    return _Stage(ranker, decider, best_threshold(probabilities, y), all_probabilities, all_labels, rank_columns)


def unsure_band(full: _Stage, quick: _Stage, with_focus: np.ndarray, answerable: np.ndarray) -> tuple[float, float]:
    """The band of quick probabilities outside which the quick decision is trusted: of the
    bands whose trust loses neither answers from the support nor refusals on the
    calibration questions, the one that decides the most of them quickly (the first found,
    from the lowest edges up, when several do), widened by one step on each side. (0, 1),
    never trusting it, when every band loses.
    """

    def rates(good: np.ndarray) -> tuple[float, float]:
        answered = float(good[answerable].mean()) if answerable.any() else 1.0
        refused = float(good[~answerable].mean()) if (~answerable).any() else 1.0
        return answered, refused

    full_good, quick_good = full.outcomes(answerable), quick.outcomes(answerable)
    floor = rates(full_good)
    best, most = (0.0, 1.0), 0.0
    for low in np.round(np.arange(0.0, 0.5 + 1e-9, _BAND_STEP), 2):
        for high in np.round(np.arange(0.5, 1.0 + 1e-9, _BAND_STEP), 2):
            sure = with_focus & ((quick.probabilities < low) | (quick.probabilities > high))
            answered, refused = rates(np.where(sure, quick_good, full_good))
            share = float(sure.mean())
            if answered >= floor[0] - 1e-9 and refused >= floor[1] - 1e-9 and share > most:
                best, most = (float(low), float(high)), share
    # One step wider on each side: the narrowest band that lost nothing sits on the edge
    # of the questions it was fitted on.
    return max(0.0, best[0] - _BAND_STEP), min(1.0, best[1] + _BAND_STEP)


def best_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The cut with the best balanced accuracy (answers right, refusals right), averaged
    over a window of 0.05 on each side; of equal ones, the nearest to 0.5.

    Balanced accuracy is flat near its best: unsmoothed, a change of one question moved
    the cut from 0.43 to 0.52, and validation answers with it by 0.1. The middle of the
    best region is the cut that holds."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    positives = labels == 1
    scores = np.array(
        [((probabilities[positives] >= t).mean() + (probabilities[~positives] < t).mean()) / 2 for t in grid]
    )
    window = _THRESHOLD_WINDOW
    padded = np.pad(scores, window, mode="edge")
    smooth = np.convolve(padded, np.ones(2 * window + 1) / (2 * window + 1), mode="valid")
    top = smooth.max()
    return float(min((t for t, s in zip(grid, smooth, strict=True) if s >= top - 1e-9), key=lambda t: abs(t - 0.5)))
