"""Retrieval: dense and lexical (BM25) search over the index (in memory, or in the store for
a large corpus: see ``assistant.answering.index``), fused by reciprocal rank."""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from assistant.answering.index import PassageIndex, StoreIndex
from assistant.answering.question_analysis import read_question
from vectorstore.embeddings import beside_other_work
from vectorstore.language import query_terms

RRF_K = 60
# As many as the lexical file has reader connections (more would only wait for one).
_SEARCHES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lexical-search")
_NEAREST = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dense-search")
OTHER_LANGUAGE = {"en": "fr", "fr": "en"}


class HybridRetriever(BaseRetriever):
    """Dense and lexical search over passages, fused with reciprocal rank fusion.

    Each returned Document carries the passage's position and four scores in its
    metadata: ``dense`` (cosine to the query), ``bridged`` (the same, or for a passage in
    the other language the cosine to the query joined by its rendering in that language),
    ``lexical`` (BM25) and ``fused`` (RRF); and
    what the decision needs without going back to the index: the passage's ``vector``,
    its index ``terms`` and the ``facts`` of its document.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    corpus: Any
    k: int = 40

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.retrieve(query)

    def retrieve(self, query: str, vector: np.ndarray | None = None) -> list[Document]:
        """Retrieve, with the query's vector if it is already computed."""
        index: PassageIndex | StoreIndex = self.corpus.index()
        # The lexical file is searched while the question is embedded and searched in
        # Chroma: SQLite, the embedder and the HTTP client all let other threads run. In
        # memory, both searches are Python and would only take turns.
        terms = query_terms(query)
        lexical: Future[list[tuple[Any, float]]] | None = None
        sharing = contextlib.nullcontext()
        if isinstance(index, StoreIndex):
            lexical = _SEARCHES.submit(index.lexical_hits, terms, self.k)
            sharing = beside_other_work(until=lexical.done)
        early: Future[list[list[str]]] | None = None
        with sharing:
            if vector is None:
                vector = self.corpus.store.embeddings.query_vector(query)
            rendering = self.rendering(query, index)
            if isinstance(index, StoreIndex) and rendering is not None:
                # Chroma searches the question's vector while its rendering is embedded.
                early = _NEAREST.submit(index.nearest_rows, vector, self.k)
            bridged = self.bridged(vector, rendering)
            # The passes the decision will want next run while the searches are waited
            # for (on one core while the lexical search still runs, as those before).
            embed_ahead = getattr(self.corpus.store.embeddings, "embed_ahead", None)
            if embed_ahead is not None:
                embed_ahead()
        if early is not None:
            dense_hits = index.dense(vector, self.k, bridged, early)
        else:
            dense_hits = index.dense(vector, self.k, bridged)
        lexical_hits = lexical.result() if lexical is not None else index.lexical_hits(terms, self.k)
        lexical_scores = dict(lexical_hits)
        fused: dict[Any, float] = {}
        for hits in (dense_hits, lexical_hits):
            for rank, (key, _) in enumerate(hits):
                fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank + 1)
        rows = index.rows(list(fused))
        facts = index.documents([row.passage.document_id for row in rows.values()])
        documents = []
        for key, rrf in fused.items():
            row = rows.get(key)
            if row is None:  # deleted since the lexical index was last brought up to date
                continue
            passage, stored = row.passage, row.vector
            pid = passage.id
            of_document = facts[passage.document_id]
            # One cosine for every candidate, lexical-only ones included.
            toward = bridged[1] if bridged is not None and passage.language == bridged[0] else vector
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
                        "bridged": float(stored @ toward),
                        "lexical": lexical_scores.get(key, 0.0),
                        "fused": rrf,
                        "vector": stored,
                        "terms": row.terms,
                        "facts": of_document.facts,
                        "document_terms": of_document.terms,
                        "lemmas": row.lemmas,
                        "document_lemmas": of_document.lemmas,
                    },
                )
            )
        documents.sort(key=lambda d: -d.metadata["fused"])
        return documents

    def bridged(self, vector: np.ndarray, rendering: tuple[str, str] | None) -> tuple[str, np.ndarray] | None:
        """For passages in the other language than the question's, the vector they are
        compared with: the question's and its rendering's in their language, averaged.

        Across languages the support of an English question over French text was ranked
        first by cosine for 28 % of validation questions, 53 % with this vector; within a
        language it does worse than the question alone, so it is used only across them.
        One model pass more, and only when the corpus holds the other language
        (``rendering``: the other language and the query's rendering in it, or None)."""
        if rendering is None:
            return None
        other, rendered = rendering
        mixed = vector + self.corpus.store.embeddings.query_vector(rendered)
        return other, mixed / (np.linalg.norm(mixed) or 1.0)

    def rendering(self, query: str, index: PassageIndex | StoreIndex) -> tuple[str, str] | None:
        """The other language and the query's rendering in it, when the corpus holds
        passages in that language (else None: nothing to bridge)."""
        reading = read_question(query)
        other = OTHER_LANGUAGE.get(reading.language)
        if not reading.rendered or other is None or not index.holds(other):
            return None
        return other, reading.rendered
