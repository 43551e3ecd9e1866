"""BM25 over accent-folded, stemmed French and English terms."""

from __future__ import annotations

from collections import Counter

import numpy as np

from vectorstore.chunking import Passage
from vectorstore.language import document_terms
from vectorstore.lexicon import idf, length_damping, tf_factor


class LexicalIndex:
    """An in-memory inverted index of passages, scored with BM25 (Okapi).

    Each term's postings are two arrays (passage positions, and the BM25 term-frequency
    factor, which depends only on the passage), so a query costs a few vector operations
    per word, however many passages hold it.
    """

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self.terms: list[frozenset[str]] = []
        positions: dict[str, list[int]] = {}
        frequencies: dict[str, list[int]] = {}
        lengths = np.zeros(len(passages), dtype=np.float64)
        for index, passage in enumerate(passages):
            counts = Counter(document_terms(passage.text, passage.language))
            self.terms.append(frozenset(counts))
            lengths[index] = sum(counts.values())
            for term, tf in counts.items():
                positions.setdefault(term, []).append(index)
                frequencies.setdefault(term, []).append(tf)
        average = float(lengths.mean()) if len(passages) else 1.0
        damping = length_damping(lengths, average or 1.0)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, where in positions.items():
            at = np.asarray(where, dtype=np.int32)
            tf = np.asarray(frequencies.pop(term), dtype=np.float64)
            self._postings[term] = (at, tf_factor(tf, damping[at]))
        self._positions = {p.id: i for i, p in enumerate(passages)}

    def position(self, passage_id: str) -> int | None:
        """Where a passage sits in this index."""
        return self._positions.get(passage_id)

    def __len__(self) -> int:
        return len(self.passages)

    def idf(self, term: str) -> float:
        """BM25 inverse document frequency; a term absent from the corpus scores highest."""
        entry = self._postings.get(term)
        return idf(len(self.passages), len(entry[0]) if entry is not None else 0)

    def search(self, query: list[frozenset[str]], k: int) -> list[tuple[int, float]]:
        """Top-k (passage index, BM25 score); each query word counts once, through
        whichever of its stems matches best."""
        n = len(self.passages)
        scores = np.zeros(n, dtype=np.float64)
        for alternatives in query:
            matches = [(self._postings[t], self.idf(t)) for t in sorted(alternatives) if t in self._postings]
            if len(matches) == 1:
                (at, factor), idf = matches[0]
                scores[at] += idf * factor
            elif matches:
                word = np.zeros(n, dtype=np.float64)
                for (at, factor), idf in matches:
                    word[at] = np.maximum(word[at], idf * factor)
                scores += word
        found = np.flatnonzero(scores)
        best = found[np.argsort(-scores[found], kind="stable")[:k]]
        return [(int(i), float(scores[i])) for i in best]
