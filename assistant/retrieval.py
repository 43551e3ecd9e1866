"""Retrieval: condense a follow-up into a standalone query, then find passages with
dense (exact, over the stored embeddings) and lexical (BM25) search fused by reciprocal
rank."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
import threading
import time
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from assistant.answer_types import Facts
from assistant.lexical import LexicalIndex
from assistant.models import Message
from vectorstore.chunking import Passage
from vectorstore.language import content_words, query_terms, words
from vectorstore.store import PassageStore

log = logging.getLogger("assistant.retrieval")

RRF_K = 60
_RECHECK_SECONDS = 1.0
# Below this many passages a rebuild takes well under a second and is waited for; above,
# questions are answered from the previous index while the new one is built.
BACKGROUND_FROM = 20_000
_FOLLOW_UP_OPENERS = ("et", "and", "mais", "but", "also", "aussi", "puis", "then", "ensuite", "alors", "so")
_ANAPHORA = frozenset(
    "il elle ils elles y sa son ses leur leurs lui it its they them their he she his her him there".split()
)
_HISTORY_ANSWER_CHARS = 300


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
        self.terms = self.lexical.terms
        texts: dict[str, list[str]] = {}
        words: dict[str, set[str]] = {}
        for passage, terms in zip(passages, self.terms, strict=True):
            texts.setdefault(passage.document_id, []).append(passage.text)
            words.setdefault(passage.document_id, set()).update(terms)
        # What each document names (years, figures, names) and the terms it uses, for
        # checking a question's details against the document a passage comes from.
        self.facts = {document: Facts.of_document(parts) for document, parts in texts.items()}
        self.document_terms = {document: frozenset(terms) for document, terms in words.items()}

    def __len__(self) -> int:
        return len(self.passages)

    def position(self, passage_id: str) -> int | None:
        """Where a passage sits in this index."""
        return self.lexical.position(passage_id)

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k passages nearest to a (normalised) query vector: (position, cosine)."""
        if not len(self.passages):
            return []
        scores = self.vectors @ vector
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


def is_follow_up(question: str) -> bool:
    """A question that leans on the conversation: it opens with "and…/et…", refers back
    with a pronoun, or is too short to stand alone."""
    return follow_up_kind(question) is not None


def follow_up_kind(question: str) -> str | None:
    """How a question leans on the conversation: "explicit" (it opens with "and…/et…" or
    refers back with a pronoun: folding in the previous turn is a safe rewrite), "short"
    (too short to stand alone, with nothing saying what it refers to), or None."""
    tokens = words(question)
    if not tokens:
        return None
    if tokens[0] in _FOLLOW_UP_OPENERS or re.match(r"\s*(what|how) about\b", question, re.IGNORECASE):
        return "explicit"
    if any(t in _ANAPHORA for t in tokens):
        return "explicit"
    return "short" if len(content_words(question)) <= 2 else None


def condense(question: str, history: list[Message]) -> str:
    """A standalone retrieval query: a follow-up is joined to the previous exchange."""
    if not history or not is_follow_up(question):
        return question
    # The previous question is cut like the answer: a follow-up's own words must stay
    # within what the embedding model reads.
    last_user = next((m.content for m in reversed(history) if m.role == "user"), "")[:_HISTORY_ANSWER_CHARS]
    last_answer = next((m.content for m in reversed(history) if m.role == "assistant"), "")
    last_answer = re.sub(r"\s*\[\d+\]", "", last_answer)[:_HISTORY_ANSWER_CHARS]
    return " ".join(part for part in (last_user, last_answer, question) if part.strip())


class HybridRetriever(BaseRetriever):
    """Dense and lexical search over passages, fused with reciprocal rank fusion.

    Each returned Document carries the passage's position and three scores in its
    metadata: ``dense`` (cosine to the query), ``lexical`` (BM25) and ``fused`` (RRF); and
    what the decision needs without going back to the index: the passage's ``vector``,
    its index ``terms`` and the ``facts`` of its document.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    corpus: Any
    k: int = 40

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.retrieve(query, self.corpus.store.embeddings.query_vector(query))

    def retrieve(self, query: str, vector: np.ndarray) -> list[Document]:
        """Retrieve with a query vector already computed."""
        index: PassageIndex = self.corpus.index()
        dense_hits = index.dense(vector, self.k)
        lexical_hits = index.lexical.search(query_terms(query), self.k)
        lexical_scores = dict(lexical_hits)
        fused: dict[int, float] = {}
        for hits in (dense_hits, lexical_hits):
            for rank, (position, _) in enumerate(hits):
                fused[position] = fused.get(position, 0.0) + 1.0 / (RRF_K + rank + 1)
        documents = []
        for position, rrf in fused.items():
            passage = index.passages[position]
            pid = passage.id
            # One cosine for every candidate, lexical-only ones included.
            stored = index.vectors[position]
            documents.append(
                Document(
                    id=pid,
                    page_content=passage.text,
                    metadata={
                        "id": pid,
                        "document": passage.document_id,
                        "title": passage.title,
                        "section": passage.section,
                        "start": passage.start,
                        "end": passage.end,
                        "language": passage.language,
                        "paragraph": passage.paragraph,
                        "position": passage.position,
                        "dense": float(stored @ vector),
                        "lexical": lexical_scores.get(position, 0.0),
                        "fused": rrf,
                        "vector": stored,
                        "terms": index.terms[position],
                        "facts": index.facts[passage.document_id],
                        "document_terms": index.document_terms[passage.document_id],
                    },
                )
            )
        documents.sort(key=lambda d: -d.metadata["fused"])
        return documents
