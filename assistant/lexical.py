"""BM25 over accent-folded, stemmed French and English terms."""

from __future__ import annotations

import math
from collections import Counter

from vectorstore.chunking import Passage
from vectorstore.language import document_terms

K1 = 1.2
B = 0.75


class LexicalIndex:
    """An in-memory inverted index of passages, scored with BM25 (Okapi)."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self.terms: list[frozenset[str]] = []
        self._postings: dict[str, list[tuple[int, int]]] = {}
        lengths = []
        for index, passage in enumerate(passages):
            counts = Counter(document_terms(passage.text, passage.language))
            self.terms.append(frozenset(counts))
            lengths.append(sum(counts.values()))
            for term, tf in counts.items():
                self._postings.setdefault(term, []).append((index, tf))
        self._lengths = lengths
        self._average = (sum(lengths) / len(lengths)) if lengths else 1.0
        self._positions = {p.id: i for i, p in enumerate(passages)}

    def position(self, passage_id: str) -> int | None:
        """Where a passage sits in this index."""
        return self._positions.get(passage_id)

    def __len__(self) -> int:
        return len(self.passages)

    def idf(self, term: str) -> float:
        """BM25 inverse document frequency; a term absent from the corpus scores highest."""
        n = len(self.passages)
        df = len(self._postings.get(term, ()))
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def word_idf(self, alternatives: frozenset[str]) -> float:
        """Weight of a question word: the rarest of its stems that the corpus knows, or
        the unknown-term weight when it knows none."""
        known = [self.idf(t) for t in alternatives if t in self._postings]
        return max(known) if known else self.idf("")

    def search(self, query: list[frozenset[str]], k: int) -> list[tuple[int, float]]:
        """Top-k (passage index, BM25 score); each query word counts once, through
        whichever of its stems matches best."""
        scores: dict[int, float] = {}
        for alternatives in query:
            best: dict[int, float] = {}
            for term in alternatives:
                postings = self._postings.get(term)
                if not postings:
                    continue
                idf = self.idf(term)
                for index, tf in postings:
                    norm = tf * (K1 + 1) / (tf + K1 * (1 - B + B * self._lengths[index] / self._average))
                    best[index] = max(best.get(index, 0.0), idf * norm)
            for index, value in best.items():
                scores[index] = scores.get(index, 0.0) + value
        return sorted(scores.items(), key=lambda item: -item[1])[:k]

    def coverage(self, query: list[frozenset[str]], index: int) -> float:
        """Share of the question's word weight that the passage contains (0..1)."""
        if not query:
            return 0.0
        total = sum(self.word_idf(alts) for alts in query)
        found = sum(self.word_idf(alts) for alts in query if alts & self.terms[index])
        return found / total if total else 0.0
