"""The Chroma store: passages with their embeddings, and one record per document.

Embedded (a data directory on disk) by default, or a Chroma server when a URL is given;
the rest of the code cannot tell the difference. Nothing else in the project imports
``chromadb``, and only its public collection API is used (``get``, ``upsert``, ``delete``,
``count``, ``modify``). Every vector comes from the bundled model: Chroma's own embedding
function (which would download a model) is never given a chance to run.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma

from vectorstore.chunking import Passage
from vectorstore.embeddings import E5Embeddings, embedding_text

log = logging.getLogger("assistant.store")

# 2: passages embedded behind their document's title; document records without a
# passage-sized vector; the change stamp in the documents collection's metadata.
SCHEMA_VERSION = 2
_BATCH = 5000
# Reading a whole collection in pages of 1,000 holds a sixth of the memory that pages of
# 5,000 leave behind in the database engine, at no cost in time (measured at 10,000 passages).
_PAGE = 1000
# Measured: about 4.6 KB on disk per stored passage (vectors, text, metadata, index);
# twice that leaves room for Chroma's write-ahead log.
BYTES_PER_PASSAGE = 10_000
# Chroma keeps a vector with every record. Documents are looked up by id, never searched:
# their records carry this one-number placeholder, not a vector of the model's size.
_NO_VECTOR = [1.0]
# Chroma's HNSW settings for the passages, fixed when the collection is made. Measured at
# 100,000 passages (bench/bench_large.py --sweep): Chroma's defaults (16 neighbours,
# construction and search widths 100) found 0.78 of the true 20 nearest, 32/200/200 0.955,
# 32/400/400 0.988. The search width is what counts: 32 neighbours with construction
# widths of 400, 200 and 100 and a search width of 400 found 0.988, 0.989 and 0.988, and
# 100 writes in 0.4 of the time 400 takes. Search in the store uses it only from
# ASSISTANT_SEARCH_IN_STORE_FROM passages; below, search is exact.
PASSAGE_HNSW = {"space": "cosine", "max_neighbors": 32, "ef_construction": 100, "ef_search": 400}
_FULL = ("disk is full", "no space left", "disk quota exceeded")
_READ_ONLY = ("readonly database", "read-only file system", "read only file system")


class StoreError(RuntimeError):
    """The store cannot be used; the message says what to do."""


class StoreFull(StoreError):
    """The disk holding the store has no room for what is being written."""


class StoreReadOnly(StoreError):
    """The store can be read but not written."""


@dataclass(frozen=True)
class DocumentRecord:
    """What the store knows about one ingested document."""

    id: str
    title: str
    source: str
    root: str
    content_hash: str
    passages: int
    ingested_at: str
    language: str


def collection_slug(name: str) -> str:
    """A Chroma-safe name fragment."""
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", name).strip("-_").lower()
    return slug or "x"


def _client(data_dir: Path, chroma_url: str | None) -> Any:
    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if chroma_url:
        url = urlparse(chroma_url)
        try:
            client = chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=settings,
            )
            client.heartbeat()
        except Exception as exc:
            raise StoreError(f"cannot reach the Chroma server at {chroma_url}: {exc}") from exc
        return client
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the data directory {data_dir}: {exc.strerror or exc}") from exc
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StoreError(f"the data directory {data_dir} is not writable (set ASSISTANT_DATA_DIR to another folder)")
    try:
        return chromadb.PersistentClient(path=str(data_dir), settings=settings)
    except Exception as exc:
        raise StoreError(f"cannot open the store in {data_dir}: {exc}") from exc


def drop_collections(model_id: str, *, data_dir: Path, chroma_url: str | None, collection: str) -> list[str]:
    """Delete this project's collections for a model, whatever they hold; returns their names."""
    client = _client(data_dir, chroma_url)
    base = f"{collection_slug(collection)}-{collection_slug(model_id)}"
    existing = {c if isinstance(c, str) else c.name for c in client.list_collections()}
    dropped = [name for name in (f"{base}-passages", f"{base}-documents") if name in existing]
    for name in dropped:
        client.delete_collection(name)
    return dropped


class PassageStore:
    """Passages and documents in Chroma, under names that include the embedding model."""

    def __init__(
        self,
        embeddings: E5Embeddings,
        *,
        data_dir: Path = Path("data"),
        chroma_url: str | None = None,
        collection: str = "assistant",
        min_free_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.embeddings = embeddings
        self.location = chroma_url or str(data_dir)
        self._data_dir = None if chroma_url else data_dir
        self._min_free = min_free_bytes
        self._client = _client(data_dir, chroma_url)
        identity = {"embedding_model": embeddings.model_id, "schema": SCHEMA_VERSION}
        base = f"{collection_slug(collection)}-{collection_slug(embeddings.model_id)}"
        self.passages_name = f"{base}-passages"
        self.documents_name = f"{base}-documents"
        self._identity = identity
        try:
            self._passages = self._client.get_or_create_collection(
                name=self.passages_name,
                embedding_function=None,
                metadata=identity,
                configuration={"hnsw": PASSAGE_HNSW},
            )
            self._documents = self._client.get_or_create_collection(
                name=self.documents_name,
                embedding_function=None,
                metadata=identity,
                configuration={"hnsw": {"space": "cosine"}},
            )
        except Exception as exc:
            raise StoreError(f"cannot open the collections in {self.location}: {exc}") from exc
        for coll in (self._passages, self._documents):
            found = coll.metadata or {}
            if found.get("embedding_model") != embeddings.model_id or found.get("schema") != SCHEMA_VERSION:
                raise StoreError(
                    f"collection {coll.name} in {self.location} was not written by this version "
                    f"(found {found}); rebuild it with `assistant reindex --yes [PATH ...]`, "
                    "or use another ASSISTANT_COLLECTION"
                )
        self._batch = max(1, min(_BATCH, self._client.get_max_batch_size()))

    @property
    def vectorstore(self) -> Chroma:
        """The passages as a LangChain vector store, for applications that compose their own
        chains (``store.vectorstore.as_retriever()``): Chroma's approximate search over the
        same collection, with the bundled model embedding the queries. The assistant's own
        retrieval does not go through it (see ``assistant.answering.index``)."""
        return Chroma(client=self._client, collection_name=self.passages_name, embedding_function=self.embeddings)

    # Reading -------------------------------------------------------------

    def count(self) -> int:
        """Number of stored passages."""
        return self._passages.count()

    def documents(self) -> dict[str, DocumentRecord]:
        """Every ingested document, by id."""
        records: dict[str, DocumentRecord] = {}
        offset = 0
        while True:
            page = self._documents.get(include=["metadatas"], limit=_PAGE, offset=offset)
            for doc_id, meta in zip(page["ids"], page["metadatas"] or [], strict=False):
                records[doc_id] = _record(doc_id, meta or {})
            if len(page["ids"]) < _PAGE:
                return records
            offset += _PAGE

    def version(self) -> str:
        """A stamp that changes whenever anything is written: cheap to read (the documents
        collection's metadata), so every process can look for changes often. A store rebuilt
        (`assistant reindex`, or its collections deleted and made again by other means)
        changes it too, through the collections' ids. Not the passage count: counting a
        million passages takes Chroma 100 ms, paid by a question once a second."""
        documents = self._client.get_collection(self.documents_name, embedding_function=None)
        passages = self._client.get_collection(self.passages_name, embedding_function=None)
        return f"{(documents.metadata or {}).get('token', '')}:{documents.id}:{passages.id}"

    def _touch(self) -> None:
        """Record that the store changed (after the change, so a reader that sees the new
        stamp also sees what it stamps)."""
        self._documents.modify(metadata={**self._identity, "token": uuid.uuid4().hex})

    def document_text(self, doc_id: str) -> str | None:
        """The full text of a document, the text every passage span refers to."""
        found = self._documents.get(ids=[doc_id], include=["documents"])
        return found["documents"][0] if found["ids"] else None

    def all_passages(self) -> list[Passage]:
        """Every stored passage."""
        return self.snapshot(vectors=False)[0]

    def snapshot(self, *, vectors: bool = True) -> tuple[list[Passage], np.ndarray]:
        """Every stored passage and, row for row, its embedding (float32)."""
        for attempt in range(2):
            try:
                return self._snapshot(vectors)
            except Exception:
                # A passage deleted while its page is read makes Chroma fail the read
                # ("Error finding id"); a second read sees the store after the change.
                time.sleep(0.05 * (attempt + 1))
        return self._snapshot(vectors)

    def _snapshot(self, vectors: bool) -> tuple[list[Passage], np.ndarray]:
        include = ["documents", "metadatas", "embeddings"] if vectors else ["documents", "metadatas"]
        passages: list[Passage] = []
        rows: list[np.ndarray] = []
        offset = 0
        while True:
            page = self._passages.get(include=include, limit=_PAGE, offset=offset)
            passages.extend(
                _passage(text, meta or {})
                for text, meta in zip(page["documents"] or [], page["metadatas"] or [], strict=False)
            )
            if vectors and len(page["ids"]):
                rows.append(np.asarray(page["embeddings"], dtype=np.float32))
            if len(page["ids"]) < _PAGE:
                break
            offset += _PAGE
        matrix = np.concatenate(rows) if rows else np.zeros((0, self.embeddings.dimensions), dtype=np.float32)
        return passages, matrix

    def nearest(self, vectors: list[np.ndarray], k: int) -> list[list[str]]:
        """For each vector, ids of the k passages nearest to it by Chroma's approximate
        (HNSW) index, nearest first; one request for all."""
        queries = [np.asarray(vector, dtype=np.float32) for vector in vectors]
        found = self._passages.query(query_embeddings=queries, n_results=k, include=[])
        return [list(ids) for ids in found["ids"]]

    def passages_by_id(self, ids: list[str]) -> list[tuple[Passage, np.ndarray]]:
        """The stored passages among these ids, with their vectors (missing ones left out)."""
        if not ids:
            return []
        found = self._passages.get(ids=ids, include=["documents", "metadatas", "embeddings"])
        return [
            (_passage(text, meta or {}), np.asarray(vec, dtype=np.float32))
            for text, meta, vec in zip(
                found["documents"] or [], found["metadatas"] or [], found["embeddings"], strict=True
            )
        ]

    def passages_of(self, doc_id: str) -> list[Passage]:
        """A document's passages, in document order."""
        return sorted(self.passages_of_documents([doc_id]), key=lambda p: p.start)

    def passages_of_documents(self, doc_ids: list[str]) -> list[Passage]:
        """The passages of several documents, in one request."""
        if not doc_ids:
            return []
        where = {"document": doc_ids[0]} if len(doc_ids) == 1 else {"document": {"$in": doc_ids}}
        found = self._passages.get(where=where, include=["documents", "metadatas"])
        return [
            _passage(text, meta or {})
            for text, meta in zip(found["documents"] or [], found["metadatas"] or [], strict=False)
        ]

    def passage_ids_of(self, doc_id: str) -> set[str]:
        """Ids of a document's stored passages."""
        return set(self._passages.get(where={"document": doc_id}, include=[])["ids"])

    def passage_vectors_of(self, doc_id: str) -> dict[str, np.ndarray]:
        """Embedded text's key (see ``embedding_key``) -> embedding, for one document's
        stored passages. Passages stored before the key existed are left out."""
        found = self._passages.get(where={"document": doc_id}, include=["metadatas", "embeddings"])
        return {
            str(meta["embedded"]): np.asarray(vec, dtype=np.float32)
            for meta, vec in zip(found["metadatas"] or [], found["embeddings"], strict=True)
            if meta and meta.get("embedded")
        }

    # Writing -------------------------------------------------------------

    def ensure_room(self, passages: int) -> None:
        """Refuse, before anything is written, to add passages to a disk without room for them.

        Only an embedded store can be checked; a Chroma server reports a full disk itself,
        and `_writes` turns that into StoreFull as well."""
        if self._data_dir is None:
            return
        free = shutil.disk_usage(self._data_dir).free
        needed = self._min_free + passages * BYTES_PER_PASSAGE
        if free < needed:
            raise StoreFull(
                f"not enough free space for the store in {self._data_dir}: {free / 2**20:.0f} MiB free, "
                f"{needed / 2**20:.0f} MiB wanted for {passages} passages (ASSISTANT_STORE_MIN_FREE_MB "
                f"= {self._min_free / 2**20:.0f} plus the passages); nothing was changed"
            )

    @contextmanager
    def _writes(self) -> Iterator[None]:
        """Name a full or read-only disk plainly, instead of the database's own error."""
        try:
            yield
            self._touch()
        except StoreError:
            raise
        except Exception as exc:
            code = getattr(exc, "errno", None)
            message = str(exc).lower()
            if code in (errno.ENOSPC, errno.EDQUOT) or any(m in message for m in _FULL):
                raise StoreFull(
                    f"the disk holding the store ({self.location}) is full; free some space and run again. "
                    "Documents stored before are unchanged, and the interrupted one is completed next time"
                ) from exc
            if code == errno.EROFS or any(m in message for m in _READ_ONLY):
                raise StoreReadOnly(f"the store in {self.location} is read-only; nothing was changed") from exc
            raise

    def upsert_passages(self, passages: list[Passage], vectors: list[list[float]] | np.ndarray) -> None:
        """Store passages with their embeddings."""
        if not passages:
            return
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(passages), -1)
        with self._writes():
            for i in range(0, len(passages), self._batch):
                chunk = passages[i : i + self._batch]
                self._passages.upsert(
                    ids=[p.id for p in chunk],
                    documents=[p.text for p in chunk],
                    embeddings=matrix[i : i + self._batch],
                    metadatas=[_metadata(p) for p in chunk],
                )

    def delete_passages(self, ids: list[str]) -> None:
        """Remove passages by id."""
        if not ids:
            return
        with self._writes():
            for i in range(0, len(ids), self._batch):
                self._passages.delete(ids=ids[i : i + self._batch])

    def put_document(self, record: DocumentRecord, text: str) -> None:
        """Write a document's record; written last, it marks the document complete."""
        self.put_documents([(record, text)])

    def put_documents(self, documents: list[tuple[DocumentRecord, str]]) -> None:
        """Write several documents' records, each after its passages, in as few requests
        as the batch size allows.

        A Chroma server's write of one record slows with the records it has not yet
        indexed (9 KB documents: 13 ms each at first, 40 ms 800 records later), so 200
        records took 5 s one by one against 0.2 s in one request."""
        with self._writes():
            for i in range(0, len(documents), self._batch):
                chunk = documents[i : i + self._batch]
                self._documents.upsert(
                    ids=[record.id for record, _ in chunk],
                    documents=[text for _, text in chunk],
                    embeddings=[_NO_VECTOR] * len(chunk),
                    metadatas=[
                        {
                            "title": record.title,
                            "source": record.source,
                            "root": record.root,
                            "content_hash": record.content_hash,
                            "passages": record.passages,
                            "ingested_at": record.ingested_at,
                            "language": record.language,
                        }
                        for record, _ in chunk
                    ],
                )

    def delete_document(self, doc_id: str) -> int:
        """Remove a document and all its passages; returns how many passages went."""
        found = self._passages.get(where={"document": doc_id}, include=[])
        self.delete_passages(found["ids"])
        with self._writes():
            self._documents.delete(ids=[doc_id])
        return len(found["ids"])


def _metadata(p: Passage) -> dict[str, Any]:
    return {
        "document": p.document_id,
        "title": p.title,
        "section": p.section or "",
        "start": p.start,
        "end": p.end,
        "kind": p.kind,
        "paragraph": p.paragraph,
        "position": p.position,
        "language": p.language,
        "lemmas": p.lemmas,
        "entities": p.entities,
        "embedded": embedding_key(p),
    }


def embedding_key(p: Passage) -> str:
    """A short key of the text a passage's vector was made from: an unchanged key means
    the stored vector can be reused."""
    return hashlib.sha256(embedding_text(p.title, p.text).encode("utf-8")).hexdigest()[:24]


def _passage(text: str, meta: dict[str, Any]) -> Passage:
    return Passage(
        document_id=str(meta.get("document", "")),
        title=str(meta.get("title", "")),
        section=str(meta.get("section") or "") or None,
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", 0)),
        text=text,
        kind=str(meta.get("kind", "text")),
        paragraph=int(meta.get("paragraph", 0)),
        position=int(meta.get("position", 0)),
        language=str(meta.get("language", "fr")),
        lemmas=str(meta.get("lemmas", "")),
        entities=str(meta.get("entities", "")),
    )


def _record(doc_id: str, meta: dict[str, Any]) -> DocumentRecord:
    return DocumentRecord(
        id=doc_id,
        title=str(meta.get("title", doc_id)),
        source=str(meta.get("source", "")),
        root=str(meta.get("root", "")),
        content_hash=str(meta.get("content_hash", "")),
        passages=int(meta.get("passages", 0)),
        ingested_at=str(meta.get("ingested_at", "")),
        language=str(meta.get("language", "fr")),
    )
