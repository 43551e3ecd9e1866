"""Choosing the passages that answer a question, and the extractive answerer.

Selection decides whether the documents hold an answer at all. A passage must be close
to the question (cosine), and close to what the question asks beyond the words it
shares with the passage: "What is Lavrov's salary?" shares "Lavrov" with many sentences,
but none of them is about a salary. Quantity questions need a quantity.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.documents import Document

from assistant.citations import MARKER
from assistant.retrieval import Corpus
from vectorstore.embeddings import concept_coverage
from vectorstore.language import content_words, detect_language, fold, query_terms, stem, words

# How much lexical coverage of the question adds to a passage's cosine when ranking.
COVERAGE_WEIGHT = 0.05
# A follow-up wants something new: passages already quoted in the conversation rank lower.
REPEAT_PENALTY = 0.05
# A passage as close as this (cosine) to an earlier answer counts as already said.
REPEAT_FLOOR = 0.85
# How much a question's unmatched remainder, when unrelated to the passage, lowers relevance.
RESIDUAL_WEIGHT = 1.0
# How much sharing the question's concepts (the model's sparse latent terms) adds.
CONCEPT_WEIGHT = 0.2
QUESTION_CONCEPTS = 64
# Further sentences are quoted only when nearly as good as the best one.
EXTRA_MARGIN = 0.01
# Near-equal passages between which the answer type (a quantity) decides.
ANSWER_TYPE_MARGIN = 0.02

NOT_FOUND = {
    "fr": "Je ne trouve pas la réponse à cette question dans les documents.",
    "en": "I could not find the answer to this question in the documents.",
}

_QUANTITY = re.compile(
    r"\b(combien|how (many|much|long|old)|quel(le)?s? ((est|sont|etait|sera) )?(l'|le |la |les )?"
    r"(age|nombre|montant|prix|cout|salaire|population|taille|duree|budget)|"
    r"what (is|was|are) (the )?(age|number|amount|price|cost|salary|population|size|budget))\b"
)
_NUMBER = re.compile(
    r"\d|\b(deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|quinze|vingt|trente|quarante|"
    r"cinquante|soixante|cent|cents|mille|million|millions|milliard|milliards|dizaine|dizaines|"
    r"centaine|centaines|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"thirty|forty|fifty|hundred|hundreds|thousand|thousands|million|millions|billion|billions|dozen|"
    r"plusieurs|quelques|nombreux|nombreuses|several|many|few|numerous|multiple)\b"
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
    ranked: list[Document] = field(default_factory=list)


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
        if (
            tokens
            and tokens[0] in content_words(folded)
            and {stem(tokens[0], "fr"), stem(tokens[0], "en")} & passage_terms
        ):
            removed += 1
            continue
        kept.append(piece)
    residual = "".join(kept)
    if not removed or not content_words(residual):
        return None
    return residual


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
        return np.zeros(n, dtype=np.float32)
    return np.array(
        [sum(w for alts, w in zip(query, weights, strict=True) if alts & p) / total for p in passages], dtype=np.float32
    )


def select_passages(
    question: str,
    history_answers: list[str],
    candidates: list[Document],
    corpus: Corpus,
    *,
    follow_up: bool,
    previous_question: str = "",
    min_relevance: float,
    min_relevance_cross_lingual: float,
    max_citations: int,
) -> Selection:
    """Rank candidates for answering and decide whether the best one answers."""
    language = detect_language(question)
    if not candidates:
        return Selection([], False, 0.0, language, "no passages")
    embeddings = corpus.store.embeddings
    index = corpus.index()
    terms = query_terms(question)
    ids = [d.metadata["id"] for d in candidates]
    matrix = np.stack([d.metadata["vector"] for d in candidates])
    dense = np.array([d.metadata["dense"] for d in candidates], dtype=np.float32)
    if follow_up:
        # The condensed query finds what the conversation is about; the question itself
        # says what is wanted now.
        alone = matrix @ embeddings.query_vector(question)
        dense = (dense + alone) / 2
    repeat = np.zeros(len(candidates), dtype=np.float32)
    if history_answers:
        said = np.stack([embeddings.passage_vector(answer) for answer in history_answers])
        closeness = (matrix @ said.T).max(axis=1)
        repeat = REPEAT_PENALTY * np.clip((closeness - REPEAT_FLOOR) / (1 - REPEAT_FLOOR), 0, 1)
    positions = [index.position(i) for i in ids]
    coverage = local_coverage(terms, [index.terms[p] if p is not None else frozenset() for p in positions])
    score = dense + COVERAGE_WEIGHT * coverage - repeat
    order = [int(i) for i in np.argsort(-score)]

    best = order[0]
    quantity = asks_quantity(question)
    if quantity and not has_quantity(candidates[best].page_content):
        # Between near-equals, the passage that states a quantity answers a quantity question.
        for i in order[1:]:
            if score[i] < score[best] - ANSWER_TYPE_MARGIN:
                break
            if has_quantity(candidates[i].page_content):
                best = i
                break
    chosen_doc = candidates[best]
    position = positions[best]
    residual = residual_question(question, index.terms[position]) if position is not None else None
    residual_relevance = float(dense[best])
    if residual is not None:
        residual_relevance = float(matrix[best] @ embeddings.query_vector(residual))
    # The unmatched part of the question matters in proportion to its weight.
    shortfall = max(0.0, float(dense[best]) - residual_relevance) * (1.0 - float(coverage[best]))
    asked = f"{previous_question} {question}" if follow_up and previous_question else question
    concepts = concept_coverage(
        embeddings.concepts(asked, QUESTION_CONCEPTS), embeddings.concepts(chosen_doc.page_content)
    )
    relevance = float(dense[best]) - RESIDUAL_WEIGHT * shortfall + CONCEPT_WEIGHT * concepts
    cross_lingual = chosen_doc.metadata.get("language", language) != language
    threshold = min_relevance_cross_lingual if cross_lingual else min_relevance

    scores = [
        {
            "id": ids[i],
            "text": candidates[i].page_content[:120],
            "dense": round(float(dense[i]), 4),
            "lexical": round(candidates[i].metadata["lexical"], 3),
            "coverage": round(float(coverage[i]), 3),
            "repeat_penalty": round(float(repeat[i]), 3),
            "score": round(float(score[i]), 4),
        }
        for i in order[:8]
    ]
    detail = (
        f"relevance {relevance:.3f} (threshold {threshold:.3f}): cosine {float(dense[best]):.3f}, "
        f"remainder {residual!r} {residual_relevance:.3f}, concepts {concepts:.3f}"
    )
    ranked = [candidates[i] for i in order]
    if relevance < threshold:
        return Selection([], False, relevance, language, "not relevant enough: " + detail, scores, ranked)
    if quantity and not has_quantity(chosen_doc.page_content):
        reason = "a quantity is asked and none is stated: " + detail
        return Selection([], False, relevance, language, reason, scores, ranked)

    chosen = [best]
    for i in order:
        if len(chosen) >= max_citations or score[i] < score[best] - EXTRA_MARGIN:
            break
        if i != best and not (quantity and not has_quantity(candidates[i].page_content)):
            chosen.append(i)
    passages = sorted((candidates[i] for i in chosen), key=lambda d: (d.metadata["document"], d.metadata["start"]))
    return Selection(passages, True, relevance, language, detail, scores, ranked)


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
