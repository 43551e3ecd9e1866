"""The search index, in one of two kinds behind the same methods.

Below a size (``ASSISTANT_SEARCH_IN_STORE_FROM`` passages), one consistent picture of the
store in memory: passages, their embeddings, the lexical index and each document's facts,
rebuilt when the store changes, with exact dense search. From that size on, nothing
per-passage is held: dense search runs in Chroma's HNSW index, BM25 in the lexical index on
disk (``vectorstore.lexicon``), and the passages a question meets and their documents' facts
are read on demand into bounded caches, so a worker's memory does not grow with the corpus.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cachetools import LRUCache

from assistant.answering.answer_types import Facts
from assistant.answering.lexical import LexicalIndex
from assistant.answering.question_analysis import passage_lemmas
from vectorstore.chunking import Passage
from vectorstore.language import document_terms
from vectorstore.lexicon import DiskLexicon
from vectorstore.store import PassageStore

log = logging.getLogger("assistant.answering.index")

_RECHECK_SECONDS = 1.0
# Below this many passages a rebuild takes well under a second and is waited for; above,
# questions are answered from the previous index while the new one is built.
BACKGROUND_FROM = 20_000
# From this many passages, search runs in the store and the lexical index on disk (see the
# module's docstring); the default is ASSISTANT_SEARCH_IN_STORE_FROM's.
SEARCH_IN_STORE_FROM = 200_000


@dataclass(frozen=True)
class Row:
    """One candidate passage and what the decision reads of it."""

    passage: Passage
    vector: np.ndarray
    terms: frozenset[str]
    lemmas: tuple[str, ...]


@dataclass(frozen=True)
class DocumentFacts:
    """What a document names and the terms and lemmas it uses."""

    facts: Facts
    terms: frozenset[str]
    lemmas: frozenset[str]


def document_facts(
    passages: list[Passage], terms: list[frozenset[str]], lemmas: list[tuple[str, ...]]
) -> DocumentFacts:
    """One document's facts, from its passages (in document order)."""
    return DocumentFacts(
        Facts.of_document([p.text for p in passages]),
        frozenset().union(*terms),
        frozenset().union(*(frozenset(found) for found in lemmas)),
    )


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
        by_document: dict[str, list[int]] = {}
        for i, passage in enumerate(passages):
            by_document.setdefault(passage.document_id, []).append(i)
        # What each document names (years, figures, names) and the terms it uses, for
        # checking a question's details against the document a passage comes from.
        self._documents = {
            document: document_facts(
                [passages[i] for i in at], [self.terms[i] for i in at], [self.lemmas[i] for i in at]
            )
            for document, at in by_document.items()
        }

    def __len__(self) -> int:
        return len(self.passages)

    def position(self, passage_id: str) -> int | None:
        """Where a passage sits in this index."""
        return self.lexical.position(passage_id)

    def lexical_hits(self, query: list[frozenset[str]], k: int) -> list[tuple[int, float]]:
        """The k best passages by BM25: (position, score)."""
        return self.lexical.search(query, k)

    def rows(self, keys: list[int]) -> dict[int, Row]:
        """The candidates at these positions."""
        return {i: Row(self.passages[i], self.vectors[i], self.terms[i], self.lemmas[i]) for i in keys}

    def documents(self, document_ids: list[str]) -> dict[str, DocumentFacts]:
        """These documents' facts."""
        return {d: self._documents[d] for d in document_ids}

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


def describe(passages: list[Passage], terms: list[frozenset[str]]) -> str:
    """A document's facts as text, kept in the lexical index on disk (see ``StoreIndex``)."""
    found = document_facts(passages, terms, [passage_lemmas(p.lemmas) for p in passages])
    facts = found.facts
    return json.dumps(
        [sorted(facts.years), sorted(facts.numbers), sorted(facts.names), sorted(found.terms), sorted(found.lemmas)],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def described(text: str) -> DocumentFacts:
    """A document's facts from ``describe``'s text."""
    years, figures, names, terms, lemmas = (frozenset(part) for part in json.loads(text))
    return DocumentFacts(Facts(years, figures, names), terms, lemmas)


class StoreIndex:
    """The index of a large corpus: dense search in Chroma's HNSW index, BM25 and each
    passage's terms and document's facts in the lexical index on disk, the passages a
    question meets read from the store; bounded caches of both.

    Made once per change of the store (after its lexical index was brought up to date);
    its caches are its own, so a new stamp starts them afresh."""

    ROWS = 4096
    DOCUMENTS = 256

    def __init__(self, store: PassageStore, lexicon: DiskLexicon, count: int) -> None:
        self.store = store
        self.lexicon = lexicon
        self._count = count
        self._lock = threading.Lock()
        self._rows: LRUCache[str, Row] = LRUCache(maxsize=self.ROWS)
        self._documents: LRUCache[str, DocumentFacts] = LRUCache(maxsize=self.DOCUMENTS)
        self._languages: dict[str, bool] = {}

    def __len__(self) -> int:
        return self._count

    def holds(self, language: str) -> bool:
        """Whether any passage is in ``language``."""
        if language not in self._languages:
            self._languages[language] = self.lexicon.holds(language)
        return self._languages[language]

    def nearest_rows(self, vector: np.ndarray, k: int) -> list[list[str]]:
        """The ids of the k passages nearest to one vector by the HNSW index (as
        ``PassageStore.nearest``), their rows read into the cache."""
        found = self.store.nearest([vector], k)
        self.rows(found[0])
        return found

    def dense(
        self,
        vector: np.ndarray,
        k: int,
        bridged: tuple[str, np.ndarray] | None = None,
        early: Future[list[list[str]]] | None = None,
    ) -> list[tuple[str, float]]:
        """The k passages nearest to a query vector by the HNSW index (see
        ``PassageIndex.scores`` for ``bridged``: here the nearest to either vector, each
        scored as there): (passage id, cosine). ``early``: the query vector's own search
        (``nearest_rows``), started before the bridged vector was made."""
        if early is None:
            each = self.store.nearest([vector] if bridged is None else [vector, bridged[1]], k)
        else:
            each = early.result() + (self.store.nearest([bridged[1]], k) if bridged is not None else [])
        ids = list(dict.fromkeys(key for found in each for key in found))
        rows = self.rows(ids)
        found = []
        for row in rows.values():
            toward = bridged[1] if bridged is not None and row.passage.language == bridged[0] else vector
            found.append((row.passage.id, float(row.vector @ toward)))
        found.sort(key=lambda hit: -hit[1])
        return found[:k]

    def lexical_hits(self, query: list[frozenset[str]], k: int) -> list[tuple[str, float]]:
        """The k best passages by BM25 (SQLite FTS5): (passage id, score), their rows and
        documents' facts read into the caches: this runs while the question is embedded,
        so those reads are not waited for after it."""
        hits = self.lexicon.search(query, k)
        rows = self.rows([key for key, _ in hits])
        self.documents([row.passage.document_id for row in rows.values()])
        return hits

    def rows(self, keys: list[str]) -> dict[str, Row]:
        """The candidates with these ids (any deleted meanwhile left out)."""
        with self._lock:
            found = {key: self._rows[key] for key in keys if key in self._rows}
        missing = [key for key in keys if key not in found]
        if not missing:
            return found
        read = self.store.passages_by_id(missing)
        terms = self.lexicon.terms([p.id for p, _ in read])
        for passage, vector in read:
            indexed = terms.get(passage.id)
            if indexed is None:  # stored since the lexical index was brought up to date
                indexed = frozenset(document_terms(passage.text, passage.language))
            found[passage.id] = Row(passage, vector, indexed, passage_lemmas(passage.lemmas))
        with self._lock:
            for key in missing:
                if key in found:
                    self._rows[key] = found[key]
        return found

    def documents(self, document_ids: list[str]) -> dict[str, DocumentFacts]:
        """These documents' facts: from the lexical index on disk, or for a document stored
        since it was brought up to date, from its passages."""
        with self._lock:
            found = {d: self._documents[d] for d in document_ids if d in self._documents}
        missing = [d for d in dict.fromkeys(document_ids) if d not in found]
        for document_id, text in self.lexicon.descriptions(missing).items():
            found[document_id] = described(text)
        unindexed = [d for d in missing if d not in found]
        by_document: dict[str, list[Passage]] = {d: [] for d in unindexed}
        for passage in self.store.passages_of_documents(unindexed):
            by_document[passage.document_id].append(passage)
        for document_id, passages in by_document.items():
            passages.sort(key=lambda p: p.start)
            terms = [frozenset(document_terms(p.text, p.language)) for p in passages]
            found[document_id] = document_facts(passages, terms, [passage_lemmas(p.lemmas) for p in passages])
        with self._lock:
            for document_id in missing:
                self._documents[document_id] = found[document_id]
        return found


class Corpus:
    """The store plus an in-memory index rebuilt from it whenever the stored documents
    change, so documents ingested by another process are seen without a restart.

    A change made by this process is waited for (the next question sees it), and so is
    any change to a small corpus. In a large one, a change made elsewhere is indexed in
    the background while questions are answered from the previous index: rebuilding
    100,000 passages takes seconds."""

    def __init__(
        self, store: PassageStore, *, search_in_store_from: int = SEARCH_IN_STORE_FROM, folder: Path | None = None
    ) -> None:
        self.store = store
        self.search_in_store_from = search_in_store_from
        # The lexical index of a large corpus: a file beside the embedded store, or in the
        # data folder when the store is a server.
        self.lexicon_path = (folder or Path(store.location)) / f"{store.passages_name}.lexicon.sqlite3"
        self._lexicon: DiskLexicon | None = None
        self._lock = threading.Lock()
        self._index: PassageIndex | StoreIndex | None = None
        self._stamp: str | None = None
        self._checked = 0.0
        self._building = False

    def index(self) -> PassageIndex | StoreIndex:
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

    def _build(self) -> PassageIndex | StoreIndex:
        started = time.perf_counter()
        count = self.store.count()
        index: PassageIndex | StoreIndex
        if count >= self.search_in_store_from:
            if self._lexicon is None:
                self._lexicon = DiskLexicon(self.lexicon_path, describe)
            changed = self._lexicon.sync(self.store)
            index = StoreIndex(self.store, self._lexicon, count)
            log.info(
                "searching %d passages in the store; %d documents brought into %s in %.1f s",
                count,
                changed,
                self.lexicon_path,
                time.perf_counter() - started,
            )
            return index
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
