"""The search index: one consistent picture of the store in memory (passages, their
embeddings, the lexical index and each document's facts), rebuilt when the store changes,
in the background for large corpora."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time

import numpy as np

from assistant.answering.answer_types import Facts
from assistant.answering.lexical import LexicalIndex
from assistant.answering.question_analysis import passage_lemmas
from vectorstore.chunking import Passage
from vectorstore.store import PassageStore

log = logging.getLogger("assistant.answering.index")

_RECHECK_SECONDS = 1.0
# Below this many passages a rebuild takes well under a second and is waited for; above,
# questions are answered from the previous index while the new one is built.
BACKGROUND_FROM = 20_000


class PassageIndex:
    """One consistent picture of the store: every passage, its embedding and the lexical
    index over them, all addressed by the same positions.

    Dense search is exact (one matrix product): at 100,000 passages it takes a few
    milliseconds, and Chroma's approximate index, measured on the same corpus, missed a
    quarter of the true 20 nearest passages."""

    def __init__(self, passages: list[Passage], vectors: np.ndarray) -> None:
        self.passages = passages
        self.vectors = vectors
        self.lexical = LexicalIndex(passages)
        self.languages = np.array([p.language for p in passages], dtype="<U2")
        self.terms = self.lexical.terms
        # The lemmas the language pipeline stored with each passage: what an asked concept
        # is matched by (beside the stems of ``terms``).
        self.lemmas = [passage_lemmas(p.lemmas) for p in passages]
        texts: dict[str, list[str]] = {}
        words: dict[str, set[str]] = {}
        lemmas: dict[str, set[str]] = {}
        for passage, terms, found in zip(passages, self.terms, self.lemmas, strict=True):
            texts.setdefault(passage.document_id, []).append(passage.text)
            words.setdefault(passage.document_id, set()).update(terms)
            lemmas.setdefault(passage.document_id, set()).update(found)
        # What each document names (years, figures, names) and the terms it uses, for
        # checking a question's details against the document a passage comes from.
        self.facts = {document: Facts.of_document(parts) for document, parts in texts.items()}
        self.document_terms = {document: frozenset(terms) for document, terms in words.items()}
        self.document_lemmas = {document: frozenset(keys) for document, keys in lemmas.items()}

    def __len__(self) -> int:
        return len(self.passages)

    def position(self, passage_id: str) -> int | None:
        """Where a passage sits in this index."""
        return self.lexical.position(passage_id)

    def holds(self, language: str) -> bool:
        """Whether any passage is in ``language``."""
        return bool((self.languages == language).any())

    def scores(self, vector: np.ndarray, bridged: tuple[str, np.ndarray] | None = None) -> np.ndarray:
        """Every passage's cosine to a (normalised) query vector; with ``bridged`` (a
        language and a vector), the passages in that language are scored against it."""
        scores = self.vectors @ vector
        if bridged is not None:
            language, other = bridged
            scores = np.where(self.languages == language, self.vectors @ other, scores)
        return scores

    def dense(
        self, vector: np.ndarray, k: int, bridged: tuple[str, np.ndarray] | None = None
    ) -> list[tuple[int, float]]:
        """The k passages nearest to a query vector (see ``scores``): (position, cosine)."""
        if not len(self.passages):
            return []
        scores = self.scores(vector, bridged)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]


class Corpus:
    """The store plus an in-memory index rebuilt from it whenever the stored documents
    change, so documents ingested by another process are seen without a restart.

    A change made by this process is waited for (the next question sees it), and so is
    any change to a small corpus. In a large one, a change made elsewhere is indexed in
    the background while questions are answered from the previous index: rebuilding
    100,000 passages takes seconds."""

    def __init__(self, store: PassageStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._index: PassageIndex | None = None
        self._stamp: str | None = None
        self._checked = 0.0
        self._building = False

    def index(self) -> PassageIndex:
        """The current index; at most once a second, a look at the store's change stamp."""
        with self._lock:
            if self._index is not None and time.monotonic() - self._checked < _RECHECK_SECONDS:
                return self._index
            self._checked = time.monotonic()
            stamp = self.store.version()
            if self._index is not None and stamp == self._stamp:
                return self._index
            if self._index is None or self._stamp is None or len(self._index) < BACKGROUND_FROM:
                self._index, self._stamp = self._build(), stamp
                return self._index
            if self._building:
                return self._index
            self._building = True
            current = self._index
        threading.Thread(target=self._rebuild, args=(stamp,), name="corpus-index", daemon=True).start()
        return current

    def version(self) -> str:
        """Changes whenever the stored documents change."""
        self.index()
        return self._stamp or ""

    def invalidate(self) -> None:
        """Rebuild before the next question (after this process changed the store)."""
        with self._lock:
            self._checked = 0.0
            self._stamp = None

    def _build(self) -> PassageIndex:
        started = time.perf_counter()
        index = PassageIndex(*self.store.snapshot())
        _release_free_memory()
        log.info("indexed %d passages in %.1f s", len(index), time.perf_counter() - started)
        return index

    def _rebuild(self, stamp: str) -> None:
        try:
            index = self._build()
            with self._lock:
                if self._stamp is not None:  # unless this process changed the store meanwhile
                    self._index, self._stamp = index, stamp
        except Exception:
            log.exception("rebuilding the index failed; answering from the previous one")
        finally:
            with self._lock:
                self._building = False


def _release_free_memory() -> None:
    """Hand the pages freed by reading the store back to the system: reading 100,000
    passages leaves about 60 MiB of free heap that glibc would otherwise keep."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
