"""Which passage answers a question, and whether any does: two fitted logistic models.

The ranker scores each candidate passage from what retrieval already measured (cosine,
its margin over the pool, lexical coverage of the question by the passage and by its
document, answer type, conflicting years, figures and names). The decider looks at the
best candidate and the question as a whole (the ranker's confidence and its margin over
the next candidate, the part of the question the passage leaves unmatched, the language
pair, follow-up or not) and gives the probability that the passage answers.

Both are fitted on a calibration question set (`assistant calibrate`); their weights are
a small JSON file kept in the repository (``decision_weights.json``), so a change of
behaviour is a reviewed diff. Scores of the embedding model sit in a narrow band, and a
fixed cut on one of them was a coin toss at the edge; a fitted combination is not.

This module sees the candidates (with their vectors, terms and document facts) and a
small embedder interface, nothing of the store or the index.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from langchain_core.documents import Document

from assistant.answering.answer_types import NAME, NOT_NAMES, YEAR, Facts, asked_type, states_type
from assistant.answering.question_analysis import META_STEMS, Reading, read_question, similar_concepts
from assistant.answering.question_analysis import coverage as concept_coverage
from assistant.models import MARKER
from vectorstore.language import content_words, detect_language, fold, query_terms

WEIGHTS = Path(__file__).resolve().parent / "decision_weights.json"

RANK_FEATURES = (
    "dense",
    "dense_gap",
    "dense_z",
    "coverage",
    "bm25",
    "document_coverage",
    "type_missing",
    "names_missing",
    "repeat",
    "focus",
    "focus_gap",
    "concepts",
    "concepts_document",
    "concepts_gap",
    "concepts_rare",
    "bridged",
    "bridged_gap",
)
DECIDE_FEATURES = (
    "rank_logit",
    "rank_margin",
    "dense",
    "dense_z",
    "coverage",
    "document_coverage",
    "type_asked",
    "type_missing",
    "names_missing",
    "focus",
    "focus_gap",
    "cross_lingual",
    "follow_up",
    "question_words",
    "concepts",
    "concepts_document",
    "concepts_asked",
)
# The features that need the focus's model pass. The quick stage decides without them
# and is trusted where it is sure; only the rest pays for the pass.
FOCUS_FEATURES = ("focus", "focus_gap")
QUICK_RANK_FEATURES = tuple(f for f in RANK_FEATURES if f not in FOCUS_FEATURES)
QUICK_DECIDE_FEATURES = tuple(f for f in DECIDE_FEATURES if f not in FOCUS_FEATURES)
_QUICK_RANK = [RANK_FEATURES.index(f) for f in QUICK_RANK_FEATURES]
_QUICK_DECIDE = [DECIDE_FEATURES.index(f) for f in QUICK_DECIDE_FEATURES]
_FOCUS = [RANK_FEATURES.index(f) for f in FOCUS_FEATURES]
# An earlier answer whose words a passage holds at this share or more counts as said.
REPEAT_FLOOR = 0.5


class Embedder(Protocol):
    """What the decision needs of the embedding model."""

    def query_vector(self, text: str) -> np.ndarray:
        """A question's (normalised) vector."""
        ...

    def passage_vector(self, text: str) -> np.ndarray:
        """A conversational text's (normalised) vector, as a passage."""
        ...


@dataclass
class Question:
    """One question as the decision sees it."""

    text: str
    query: str
    candidates: list[Document]
    previous_question: str = ""
    history_answers: list[str] = field(default_factory=list)

    @property
    def follow_up(self) -> bool:
        """Whether the query was condensed from the conversation."""
        return self.query != self.text


@dataclass
class Logistic:
    """A logistic regression over standardised features."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Log-odds for each row of ``x`` (columns in ``features`` order)."""
        return ((x - self.mean) / self.scale) @ self.weights + self.bias

    @classmethod
    def fit(cls, features: tuple[str, ...], x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> Logistic:
        """Maximum likelihood with an L2 penalty (Newton's method: a few exact steps)."""
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-6] = 1.0
        z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
        w = np.zeros(z.shape[1])
        penalty = np.full(z.shape[1], l2)
        penalty[-1] = 0.0  # the bias is not shrunk
        for _ in range(50):
            p = 1.0 / (1.0 + np.exp(-(z @ w)))
            gradient = z.T @ (p - y) + penalty * w
            hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if float(np.abs(step).max()) < 1e-8:
                break
        return cls(features, mean, scale, w[:-1], float(w[-1]))

    def to_dict(self) -> dict[str, Any]:
        """The model as plain JSON data, rounded for a readable diff."""
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "bias": round(self.bias, 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], expected: tuple[str, ...]) -> Logistic:
        """Read a model back, checking it was fitted on the features computed here."""
        if tuple(data["features"]) != expected:
            raise ValueError(
                f"the weights were fitted on features {data['features']}, this version computes {expected}"
            )
        return cls(
            tuple(data["features"]),
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            np.asarray(data["weights"], dtype=np.float64),
            float(data["bias"]),
        )


@dataclass
class QuickStage:
    """A ranker and decider fitted without the focus features: a decision from the query
    embedding alone, trusted when its probability lies outside ``unsure`` (both ends
    fitted on the calibration split, where trusting it costs no right decision)."""

    ranker: Logistic
    decider: Logistic
    threshold: float
    unsure: tuple[float, float]
    # The quote margin on this ranker's scale (see ``DecisionModel.extra_margin``).
    extra_margin: float = 1.0

    def sure(self, probability: float) -> bool:
        """Whether this probability is outside the band where the focus is needed."""
        return not self.unsure[0] <= probability <= self.unsure[1]

    def to_dict(self) -> dict[str, Any]:
        """The stage as plain JSON data."""
        return {
            "threshold": round(self.threshold, 4),
            "unsure": [round(v, 4) for v in self.unsure],
            "extra_margin": self.extra_margin,
            "ranker": self.ranker.to_dict(),
            "decider": self.decider.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuickStage:
        """Read a stage back, checking its features."""
        low, high = (float(v) for v in data["unsure"])
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"the quick stage's unsure band {data['unsure']} is not an interval of probabilities")
        return cls(
            Logistic.from_dict(data["ranker"], QUICK_RANK_FEATURES),
            Logistic.from_dict(data["decider"], QUICK_DECIDE_FEATURES),
            float(data["threshold"]),
            (low, high),
            float(data.get("extra_margin", 1.0)),
        )


@dataclass
class DecisionModel:
    """The ranker, the decider and the cut on the decider's probability; optionally a
    quick stage that spares the focus's model pass where it is sure."""

    ranker: Logistic
    decider: Logistic
    threshold: float = 0.5
    # Further passages of the best one's document are quoted when the ranker rates them
    # within this many log-odds of it (fitted: see ``calibration.quote_margin``).
    extra_margin: float = 1.0
    # Passages offered as "closest passages" after a refusal need this ranker probability.
    related_floor: float = 0.05
    notes: dict[str, Any] = field(default_factory=dict)
    quick: QuickStage | None = None

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> DecisionModel:
        """The model saved at ``path`` (the bundled weights by default)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                Logistic.from_dict(data["ranker"], RANK_FEATURES),
                Logistic.from_dict(data["decider"], DECIDE_FEATURES),
                float(data["threshold"]),
                float(data.get("extra_margin", 1.0)),
                float(data.get("related_floor", 0.05)),
                data.get("notes", {}),
                QuickStage.from_dict(data["quick"]) if data.get("quick") else None,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read the decision weights {path}: {exc}") from exc

    @classmethod
    def untrained(cls) -> DecisionModel:
        """Rank by cosine, answer everything: only a starting point for calibration."""
        ranker = Logistic(RANK_FEATURES, *_neutral(RANK_FEATURES), 0.0)
        ranker.weights[0] = 1.0
        return cls(ranker, Logistic(DECIDE_FEATURES, *_neutral(DECIDE_FEATURES), 0.0))

    def used(self, *, quick: bool) -> DecisionModel:
        """The model as the chain uses it: with its quick stage only when asked for."""
        return self if quick or self.quick is None else replace(self, quick=None)

    def save(self, path: Path) -> None:
        """Write the model as a small, reviewable JSON file."""
        data = {
            "threshold": round(self.threshold, 4),
            "extra_margin": self.extra_margin,
            "related_floor": self.related_floor,
            "ranker": self.ranker.to_dict(),
            "decider": self.decider.to_dict(),
            "quick": self.quick.to_dict() if self.quick else None,
            "notes": self.notes,
        }
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _neutral(features: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(len(features)), np.ones(len(features)), np.zeros(len(features))


def local_coverage(query: list[frozenset[str]], passages: list[frozenset[str]]) -> np.ndarray:
    """Share of the question's word weight each passage contains, the words weighted by
    how rare they are among these passages.

    Rarity among the candidates, not in the whole corpus: a name that is rare in a large
    corpus but present in every candidate does not tell which candidate answers, and the
    weights then stay the same whatever else the corpus holds."""
    n = len(passages)
    weights = [
        math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for df in (sum(1 for p in passages if alts & p) for alts in query)
    ]
    total = sum(weights)
    if not total:
        return np.zeros(n, dtype=np.float64)
    return np.array(
        [sum(w for alts, w in zip(query, weights, strict=True) if alts & p) / total for p in passages], dtype=np.float64
    )


@dataclass
class Candidates:
    """The candidates' features, computed once per question."""

    dense: np.ndarray
    matrix: np.ndarray  # columns in RANK_FEATURES order
    conflict: np.ndarray  # a year or figure of the question the document never states
    asked: str | None
    # The question's focus when its pass is still to be made (the focus columns then
    # hold the dense ones, as for a question whose focus is the question itself).
    pending_focus: str | None = None

    def with_focus(self, question: Question, embedder: Embedder) -> Candidates:
        """The same features with the focus measured (one model pass, if still needed)."""
        if self.pending_focus is None:
            return self
        vectors = np.stack([d.metadata["vector"] for d in question.candidates])
        focus = vectors @ embedder.query_vector(self.pending_focus)
        matrix = self.matrix.copy()
        matrix[:, _FOCUS] = np.column_stack([focus, focus - focus.max()])
        return Candidates(self.dense, matrix, self.conflict, self.asked)


def candidate_features(question: Question, embedder: Embedder, *, focus: bool = True) -> Candidates:
    """The ranker's features for every candidate: one model pass beyond the query's (the
    question's focus; left pending unless ``focus``), and one more for a follow-up's own
    words."""
    docs = question.candidates
    vectors = np.stack([d.metadata["vector"] for d in docs])
    dense = np.array([d.metadata["dense"] for d in docs], dtype=np.float64)
    bridged = np.array([d.metadata.get("bridged", d.metadata["dense"]) for d in docs], dtype=np.float64)
    if question.follow_up:
        # The condensed query finds what the conversation is about; the question itself
        # says what is wanted now.
        dense = (dense + vectors @ embedder.query_vector(question.text)) / 2
    asked = asked_type(question.text)
    reading = read_question(question.text)
    terms = query_terms(question.text)
    if reading.meta:
        # "selon l'article", "according to the text": words that point at the document.
        terms = [alts for alts in terms if not alts & META_STEMS]
    coverage = local_coverage(terms, [d.metadata["terms"] for d in docs])
    # Plain share, not weighted by rarity among the candidates: when they all come from
    # one document, every word they share would weigh nothing.
    document_coverage = np.array(
        [sum(1 for alts in terms if alts & d.metadata["document_terms"]) / max(1, len(terms)) for d in docs]
    )
    lexical = np.array([d.metadata["lexical"] for d in docs], dtype=np.float64)
    bm25 = lexical / lexical.max() if lexical.max() > 0 else lexical
    repeat = already_said(question.history_answers, [d.metadata["terms"] for d in docs])
    given = Facts.of_question(f"{question.previous_question} {question.text}" if question.follow_up else question.text)
    conflicts = np.array([given.conflicts(d.metadata["facts"]) for d in docs], dtype=np.float64).reshape(-1, 3)
    type_missing = np.array([float(asked is not None and not states_type(asked, d.page_content)) for d in docs])
    spread = float(dense.std()) if len(dense) > 1 else 0.0
    lemmas = [d.metadata.get("lemmas", ()) for d in docs]
    similar = similar_concepts(reading, lemmas)
    concepts = np.array(
        [
            concept_coverage(reading, found, d.metadata["terms"], close)
            for d, found, close in zip(docs, lemmas, similar, strict=True)
        ]
    )
    concepts_document = np.array(
        [
            concept_coverage(reading, d.metadata.get("document_lemmas", frozenset()), d.metadata["document_terms"])
            for d in docs
        ]
    )
    matrix = np.column_stack(
        [
            dense,
            dense - dense.max(),
            (dense - dense.mean()) / (spread + 0.01),
            coverage,
            bm25,
            document_coverage,
            type_missing,
            conflicts[:, 2],
            repeat,
            dense,
            dense - dense.max(),
            concepts,
            concepts_document,
            concepts - concepts.max(),
            rare_concepts(reading, lemmas, [d.metadata["terms"] for d in docs], similar),
            bridged,
            bridged - bridged.max(),
        ]
    )
    found = Candidates(dense, matrix, conflicts[:, :2].max(axis=1) > 0, asked, focus_of(question.text))
    return found.with_focus(question, embedder) if focus else found


def rare_concepts(
    reading: Reading, lemmas: list[tuple[str, ...]], terms: list[frozenset[str]], similar: list[frozenset[str]]
) -> np.ndarray:
    """Concept coverage with each concept weighted by how few of the candidates speak of
    it (as ``local_coverage`` weighs words): a concept every candidate shares tells none
    of them apart."""
    n = len(lemmas)
    if not reading.concepts or not n:
        return np.ones(n)
    hits = np.array(
        [
            [c.match(found, words, close) for c in reading.concepts]
            for found, words, close in zip(lemmas, terms, similar, strict=True)
        ]
    )
    df = (hits > 0).sum(axis=0)
    weights = np.log(1.0 + (n - df + 0.5) / (df + 0.5)) * np.array([c.weight for c in reading.concepts])
    return hits @ weights / weights.sum() if weights.sum() else np.ones(n)


def already_said(answers: list[str], passages: list[frozenset[str]]) -> np.ndarray:
    """How much of an earlier answer each passage holds (0 below REPEAT_FLOOR, 1 when all
    of it): a follow-up ("et à long terme ?") wants the next thing, not what was just said.

    Counted in words, not by cosine: passage vectors carry their document's title, and
    an answer's vector would be as close to every sentence of that document."""
    repeat = np.zeros(len(passages))
    for answer in answers:
        terms = query_terms(MARKER.sub(" ", answer))
        if len(terms) < 2:
            continue
        share = np.array([sum(1 for alts in terms if alts & p) / len(terms) for p in passages])
        repeat = np.maximum(repeat, np.clip((share - REPEAT_FLOOR) / (1 - REPEAT_FLOOR), 0, 1))
    return repeat


def eligible_order(logits: np.ndarray, conflict: np.ndarray) -> tuple[list[int], list[int]]:
    """The candidates best first, and those of them that may answer (no conflict)."""
    order = [int(i) for i in np.argsort(-logits, kind="stable")]
    return order, [i for i in order if not conflict[i]]


def quoted(eligible: list[int], logits: np.ndarray, documents: list[str], margin: float, limit: int) -> list[int]:
    """The candidates an answer quotes: the best eligible one, then those of its document
    that the ranker rates within ``margin`` of it, at most ``limit`` in all.

    Only its document: a sentence from another article (another visit, another year)
    would put that article's details beside the answer."""
    if not eligible:
        return []
    best = eligible[0]
    chosen = [best]
    for i in eligible[1:]:
        if len(chosen) >= limit or logits[i] < logits[best] - margin:
            break
        if documents[i] == documents[best]:
            chosen.append(i)
    return chosen


def decision_features(question: Question, candidates: Candidates, logits: np.ndarray, best: int) -> np.ndarray:
    """The decider's features for the best candidate (no model pass: the ranker's
    features hold the measures it needs)."""
    row = dict(zip(RANK_FEATURES, candidates.matrix[best], strict=True))
    others = np.delete(logits, best)
    margin = float(logits[best] - others.max()) if len(others) else 5.0
    chosen = question.candidates[best]
    language = detect_language(question.text)
    return np.array(
        [
            float(logits[best]),
            min(margin, 5.0),
            row["dense"],
            row["dense_z"],
            row["coverage"],
            row["document_coverage"],
            float(candidates.asked is not None),
            row["type_missing"],
            row["names_missing"],
            row["focus"],
            row["focus_gap"],
            float(chosen.metadata.get("language", language) != language),
            float(question.follow_up),
            math.log1p(len(content_words(question.text))),
            row["concepts"],
            row["concepts_document"],
            math.log1p(len(read_question(question.text).concepts)),
        ]
    )


@dataclass
class Decision:
    """What the decision made of one question's candidates."""

    found: Candidates
    ranker: Logistic
    logits: np.ndarray
    order: list[int]  # every candidate, best first
    eligible: list[int]  # those whose document contradicts nothing the question gives
    features: dict[str, float]  # the decider's, for the best eligible candidate
    probability: float
    threshold: float
    quick: bool  # decided without the focus pass
    extra_margin: float  # how far below the best (on this stage's ranker) a quoted passage may be

    @property
    def answers(self) -> bool:
        """Whether the best eligible candidate answers."""
        return bool(self.eligible) and self.probability >= self.threshold


def related_logits(found: Candidates, ranker: Logistic) -> np.ndarray:
    """The (full) ranker's scores as if every passage stated the kind of answer asked for."""
    matrix = found.matrix.copy()
    matrix[:, RANK_FEATURES.index("type_missing")] = 0.0
    return ranker.logit(matrix)


def decide(question: Question, embedder: Embedder, model: DecisionModel) -> Decision:
    """Rank the candidates and decide whether the best one answers.

    With a quick stage, the question's focus is embedded only when the quick decision is
    unsure: on the calibration split, about two thirds of the questions that have a focus
    are decided from the query embedding alone."""
    if model.quick is not None:
        found = candidate_features(question, embedder, focus=False)
        if found.pending_focus is not None:
            stage = model.quick
            quick = _stage(question, found, stage.ranker, stage.decider, stage.threshold, True, stage.extra_margin)
            if not quick.eligible or model.quick.sure(quick.probability):
                return quick
            found = found.with_focus(question, embedder)
    else:
        found = candidate_features(question, embedder)
    return _stage(question, found, model.ranker, model.decider, model.threshold, False, model.extra_margin)


def _stage(
    question: Question,
    found: Candidates,
    ranker: Logistic,
    decider: Logistic,
    threshold: float,
    quick: bool,
    margin: float,
) -> Decision:
    logits = ranker.logit(found.matrix[:, _QUICK_RANK] if quick else found.matrix)
    order, eligible = eligible_order(logits, found.conflict)
    if not eligible:
        return Decision(found, ranker, logits, order, eligible, {}, 0.0, threshold, quick, margin)
    features = decision_features(question, found, logits, eligible[0])
    names = DECIDE_FEATURES
    if quick:
        features, names = features[_QUICK_DECIDE], QUICK_DECIDE_FEATURES
    probability = float(sigmoid(decider.logit(features[None, :])[0]))
    named = {name: round(float(v), 4) for name, v in zip(names, features, strict=True)}
    return Decision(found, ranker, logits, order, eligible, named, probability, threshold, quick, margin)


def focus_of(question: str) -> str | None:
    """The question without the names and years it gives, or None when that leaves it
    unchanged or empty.

    Names and years say which document a question is about; the rest says which of its
    sentences answers. A question that names Lavrov, Pyongyang and the year is closest,
    as a whole, to the article's opening sentence, which names them all; its focus ("how
    long is the visit?") is closest to the sentence that answers."""
    kept = YEAR.sub(" ", NAME.sub(lambda m: m.group(0) if fold(m.group(0)) in NOT_NAMES else " ", question))
    kept = re.sub(r"\s+", " ", kept).strip()
    if kept == question.strip() or not content_words(kept):
        return None
    return kept


def sigmoid(x: float | np.ndarray) -> Any:
    """The logistic function."""
    return 1.0 / (1.0 + np.exp(-x))
