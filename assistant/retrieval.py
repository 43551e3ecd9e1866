"""Retrieval: condense a follow-up into a standalone query, then find passages with
dense (Chroma) and lexical (BM25) search fused by reciprocal rank."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from assistant.lexical import LexicalIndex
from assistant.models import Message
from vectorstore.chunking import Passage
from vectorstore.language import content_words, query_terms, words
from vectorstore.store import PassageStore

RRF_K = 60
_RECHECK_SECONDS = 1.0
_FOLLOW_UP_OPENERS = ("et", "and", "mais", "but", "also", "aussi", "puis", "then", "ensuite", "alors", "so")
_ANAPHORA = frozenset(
    "il elle ils elles y sa son ses leur leurs lui it its they them their he she his her him there".split()
)
_HISTORY_ANSWER_CHARS = 300


class Corpus:
    """The store plus a lexical index rebuilt from it whenever the stored documents change,
    so documents ingested by another process are seen without a restart."""

    def __init__(self, store: PassageStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._index: LexicalIndex | None = None
        self._stamp: str | None = None
        self._checked = 0.0

    def index(self) -> LexicalIndex:
        """The current lexical index (rebuilt if the store changed since the last look)."""
        with self._lock:
            now = time.monotonic()
            if self._index is None or now - self._checked >= _RECHECK_SECONDS:
                self._checked = now
                stamp = self._fingerprint()
                if stamp != self._stamp or self._index is None:
                    self._index = LexicalIndex(self.store.all_passages())
                    self._stamp = stamp
            return self._index

    def version(self) -> str:
        """Changes whenever the stored documents change."""
        self.index()
        return self._stamp or ""

    def invalidate(self) -> None:
        """Force a rebuild on the next question (after this process changed the store)."""
        with self._lock:
            self._checked = 0.0
            self._stamp = None

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for doc_id, record in sorted(self.store.documents().items()):
            digest.update(f"{doc_id}\x00{record.content_hash}\x00{record.passages}\n".encode())
        digest.update(str(self.store.count()).encode())
        return digest.hexdigest()


def is_follow_up(question: str) -> bool:
    """A question that leans on the conversation: it opens with "and…/et…", refers back
    with a pronoun, or is too short to stand alone."""
    tokens = words(question)
    if not tokens:
        return False
    if tokens[0] in _FOLLOW_UP_OPENERS or re.match(r"\s*(what|how) about\b", question, re.IGNORECASE):
        return True
    if any(t in _ANAPHORA for t in tokens):
        return True
    return len(content_words(question)) <= 2


def condense(question: str, history: list[Message]) -> str:
    """A standalone retrieval query: a follow-up is joined to the previous exchange."""
    if not history or not is_follow_up(question):
        return question
    last_user = next((m.content for m in reversed(history) if m.role == "user"), "")
    last_answer = next((m.content for m in reversed(history) if m.role == "assistant"), "")
    last_answer = re.sub(r"\s*\[\d+\]", "", last_answer)[:_HISTORY_ANSWER_CHARS]
    return " ".join(part for part in (last_user, last_answer, question) if part.strip())


class HybridRetriever(BaseRetriever):
    """Dense and lexical search over passages, fused with reciprocal rank fusion.

    Each returned Document carries the passage's position and three scores in its
    metadata: ``dense`` (cosine to the query), ``lexical`` (BM25) and ``fused`` (RRF).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    corpus: Any
    k: int = 20

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.retrieve(query, self.corpus.store.embeddings.query_vector(query))

    def retrieve(self, query: str, vector: np.ndarray) -> list[Document]:
        """Retrieve with a query vector already computed."""
        index: LexicalIndex = self.corpus.index()
        dense_hits = self.corpus.store.search(vector.tolist(), self.k)
        lexical_hits = index.search(query_terms(query), self.k)
        candidates: dict[str, Passage] = {p.id: p for p, _ in dense_hits}
        lexical_scores: dict[str, float] = {}
        for position, score in lexical_hits:
            passage = index.passages[position]
            candidates.setdefault(passage.id, passage)
            lexical_scores[passage.id] = score
        fused: dict[str, float] = {}
        for rank, (passage, _) in enumerate(dense_hits):
            fused[passage.id] = fused.get(passage.id, 0.0) + 1.0 / (RRF_K + rank + 1)
        for rank, (position, _) in enumerate(lexical_hits):
            pid = index.passages[position].id
            fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + rank + 1)
        # One cosine for every candidate, lexical-only ones included, from stored vectors.
        vectors = self.corpus.store.vectors(list(candidates))
        documents = []
        for pid, passage in candidates.items():
            stored = vectors.get(pid)
            if stored is None:  # removed between the two reads
                continue
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
                        "lexical": lexical_scores.get(pid, 0.0),
                        "fused": fused.get(pid, 0.0),
                        "vector": stored,
                    },
                )
            )
        documents.sort(key=lambda d: -d.metadata["fused"])
        return documents
