"""Choosing the passages that answer a question, and the extractive answerer.

Selection decides whether the documents hold an answer at all. A passage must be close
to the question (cosine), and close to what the question asks beyond the words it
shares with the passage: "What is Lavrov's salary?" shares "Lavrov" with many sentences,
but none of them is about a salary. Quantity questions need a quantity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.documents import Document

from assistant.retrieval import Corpus
from vectorstore.language import content_words, detect_language, fold, query_terms, stem, words

# How much lexical coverage of the question adds to a passage's cosine when ranking.
COVERAGE_WEIGHT = 0.05
# A follow-up wants something new: passages already quoted in the conversation rank lower.
REPEAT_PENALTY = 0.05
# Weight of the plain cosine against the cosine of the question's unmatched remainder.
DENSE_WEIGHT = 0.6
# Further sentences are quoted only when nearly as good as the best one.
EXTRA_MARGIN = 0.01

NOT_FOUND = {
    "fr": "Je ne trouve pas la réponse à cette question dans les documents.",
    "en": "I could not find the answer to this question in the documents.",
}

_QUANTITY = re.compile(
    r"\b(combien|how (many|much|long|old)|quel(le)?s? (est|sont )?(l'|le |la )?"
    r"(age|nombre|montant|prix|cout|salaire|population|taille|duree|budget)|"
    r"what (is|was|are) (the )?(age|number|amount|price|cost|salary|population|size|budget))\b"
)
_NUMBER = re.compile(
    r"\d|\b(deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|quinze|vingt|trente|quarante|"
    r"cinquante|soixante|cent|cents|mille|million|millions|milliard|milliards|dizaine|dizaines|"
    r"centaine|centaines|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"thirty|forty|fifty|hundred|hundreds|thousand|thousands|million|millions|billion|billions|dozen)\b"
)


@dataclass
class Selection:
    """The passages the answer stage may cite (numbered from 1), and whether they answer."""

    passages: list[Document]
    answerable: bool
    relevance: float
    language: str
    reason: str
    scores: list[dict[str, Any]] = field(default_factory=list)


def asks_quantity(question: str) -> bool:
    """Whether the question asks for a number, an amount or a duration."""
    return bool(_QUANTITY.search(fold(question)))


def has_quantity(text: str) -> bool:
    """Whether a passage states a number."""
    return bool(_NUMBER.search(fold(text)))


def residual_question(question: str, passage_terms: frozenset[str]) -> str | None:
    """The question without the words the passage already contains, or None when
    nothing is left to judge (no word matched, or every content word did)."""
    kept: list[str] = []
    removed = 0
    for piece in re.findall(r"\w+|\W+", question):
        folded = fold(piece)
        tokens = words(folded)
        if tokens and tokens[0] in content_words(folded) and {stem(tokens[0], "fr"), stem(tokens[0], "en")} & passage_terms:
            removed += 1
            continue
        kept.append(piece)
    residual = "".join(kept)
    if not removed or not content_words(residual):
        return None
    return residual


def select_passages(
    question: str,
    history_answers: list[str],
    candidates: list[Document],
    corpus: Corpus,
    *,
    min_relevance: float,
    min_relevance_cross_lingual: float,
    max_citations: int,
) -> Selection:
    """Rank candidates for answering and decide whether the best one answers."""
    language = detect_language(question)
    if not candidates:
        return Selection([], False, 0.0, language, "no passages")
    index = corpus.index()
    terms = query_terms(question)
    seen_terms = {stem(w, "fr") for answer in history_answers for w in content_words(answer)}
    ranked: list[tuple[float, Document, float, float]] = []
    for document in candidates:
        position = corpus.position(document.metadata["id"])
        coverage = index.coverage(terms, position) if position is not None else 0.0
        repeat = 0.0
        if seen_terms and position is not None and index.terms[position]:
            overlap = len(index.terms[position] & seen_terms) / len(index.terms[position])
            repeat = REPEAT_PENALTY * overlap
        score = document.metadata["dense"] + COVERAGE_WEIGHT * coverage - repeat
        ranked.append((score, document, coverage, repeat))
    ranked.sort(key=lambda item: -item[0])
    best_score, best, best_coverage, _ = ranked[0]
    dense = best.metadata["dense"]

    position = corpus.position(best.metadata["id"])
    residual = residual_question(question, index.terms[position]) if position is not None else None
    residual_relevance = dense
    if residual is not None:
        vectors = corpus.store.vectors([best.metadata["id"]])
        if best.metadata["id"] in vectors:
            query_vector = np.asarray(corpus.store.embeddings.embed_query(residual), dtype=np.float32)
            residual_relevance = float(vectors[best.metadata["id"]] @ query_vector)
    relevance = DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * residual_relevance
    cross_lingual = best.metadata.get("language", language) != language
    threshold = min_relevance_cross_lingual if cross_lingual else min_relevance

    scores = [
        {
            "id": d.metadata["id"],
            "text": d.page_content[:120],
            "dense": round(d.metadata["dense"], 4),
            "lexical": round(d.metadata["lexical"], 3),
            "coverage": round(cov, 3),
            "repeat_penalty": round(rep, 3),
            "score": round(s, 4),
        }
        for s, d, cov, rep in ranked[:8]
    ]
    if relevance < threshold:
        reason = f"best passage relevance {relevance:.3f} below {threshold:.3f}"
        return Selection([], False, relevance, language, reason, scores)
    if asks_quantity(question) and not has_quantity(best.page_content):
        return Selection([], False, relevance, language, "quantity asked, none stated", scores)

    chosen = [best]
    for score, document, _, _ in ranked[1:]:
        if len(chosen) >= max_citations or score < best_score - EXTRA_MARGIN:
            break
        chosen.append(document)
    chosen.sort(key=lambda d: (d.metadata["document"], d.metadata["start"]))
    reason = f"best passage relevance {relevance:.3f} (residual {residual!r}: {residual_relevance:.3f})"
    return Selection(chosen, True, relevance, language, reason, scores)


def extractive_answer(selection: Selection) -> str:
    """Quote the selected sentences, each followed by its marker; or say it is not there."""
    if not selection.answerable or not selection.passages:
        return NOT_FOUND.get(selection.language, NOT_FOUND["en"])
    return " ".join(f"{p.page_content} [{i}]" for i, p in enumerate(selection.passages, start=1))
