"""Idempotent ingestion: unchanged documents cost nothing, changed ones replace their
passages, documents gone from an ingested folder are removed.

A document's record is written after its passages, so an ingest killed half-way leaves
the previous state readable and the next run completes the work; passage ids derive
from content and position, so nothing is ever stored twice.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from vectorstore.chunking import Passage, chunk
from vectorstore.documents import DocumentError, SourceDocument, discover, load
from vectorstore.embeddings import embedding_text
from vectorstore.language import detect_language
from vectorstore.linguistics import PIPELINES, passage_annotations
from vectorstore.store import DocumentRecord, PassageStore, StoreFull, StoreReadOnly, embedding_key

log = logging.getLogger("assistant.ingest")

# Part of every stored document's hash: changing which passages are kept, or what their
# vectors are made from, re-ingests every document on the next run (reusing the vectors of
# passages whose embedded text is unchanged).
PASSAGE_RULES = "5"
# A citable passage states something: two words at least. Table cells, lone numbers and
# navigation labels ("Suivant", "Note") answer nothing, and their near-identical vectors
# would crowd out real sentences in a large corpus.
_WORD = re.compile(r"[^\W\d_]{2,}")

Progress = Callable[[int], None]


@dataclass
class IngestReport:
    """What an ingest run did, document by document."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    passages_written: int = 0
    passages_embedded: int = 0
    passages_deleted: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no document failed."""
        return not self.failed


def ingest_paths(
    store: PassageStore,
    paths: list[Path],
    *,
    progress: Callable[[int], Progress] | None = None,
) -> IngestReport:
    """Ingest files and folders into the store and report what changed.

    ``progress`` receives the number of passages about to be embedded and returns a
    callback advanced as they are.
    """
    started = time.perf_counter()
    PIPELINES.load()  # a missing language pipeline is one clear error, not one per document
    report = IngestReport()
    files, failures = discover(paths)
    report.failed.extend((str(path), reason) for path, reason in failures)
    existing = store.documents()

    loaded: list[tuple[SourceDocument, str]] = []
    seen: set[str] = set()
    for file, root in files:
        try:
            document = load(file, root)
        except DocumentError as exc:
            report.failed.append((str(file), str(exc)))
            continue
        document = _unique_id(document, existing, seen)
        seen.add(document.id)
        loaded.append((document, str(root.resolve())))

    pending = [(d, r) for d, r in loaded if not _is_current(d, existing.get(d.id))]
    report.unchanged.extend(d.id for d, r in loaded if _is_current(d, existing.get(d.id)))
    plans = []
    for document, root in pending:
        try:
            plans.append((document, root, citable_passages(document)))
        except DocumentError as exc:
            report.failed.append((document.source, str(exc)))
    store.ensure_room(sum(len(p) for _, _, p in plans))
    advance = progress(sum(len(p) for _, _, p in plans)) if progress and plans else None

    for document, root, passages in plans:
        try:
            embedded, deleted = _write(store, document, root, passages, advance)
        except (StoreFull, StoreReadOnly):
            # Every later write would fail the same way (and a database that just ran out
            # of room is best left alone): stop, with what is stored still consistent.
            raise
        except Exception as exc:
            log.exception("failed to store %s", document.id)
            report.failed.append((document.source, f"could not be stored: {exc}"))
            continue
        (report.updated if document.id in existing else report.added).append(document.id)
        report.passages_written += len(passages)
        report.passages_embedded += embedded
        report.passages_deleted += deleted

    folders = {str(p.resolve()) for p in paths if p.is_dir()}
    # A file now stored under another id (one kept from before ids were normalised, or a
    # clash suffix no longer needed) leaves its old record behind as a copy: it goes too.
    stored = set(report.added) | set(report.updated) | set(report.unchanged)
    stored_as = {(d.source, r): d.id for d, r in loaded if d.id in stored}
    for record in existing.values():
        gone = record.root in folders and not Path(record.source).exists()
        moved = stored_as.get((record.source, record.root), record.id) != record.id
        if record.id not in seen and (gone or moved):
            report.passages_deleted += store.delete_document(record.id)
            report.removed.append(record.id)
    report.seconds = time.perf_counter() - started
    return report


def ingest_document(
    store: PassageStore,
    document: SourceDocument,
    root: str = "",
    *,
    passages: list[Passage] | None = None,
    records: dict[str, DocumentRecord] | None = None,
) -> tuple[str, int]:
    """Ingest one in-memory document; returns its status ("added", "updated", "unchanged")
    and its passage count. The caller checks for room first (`PassageStore.ensure_room`),
    once for everything it is about to write; a caller storing many documents passes the
    passages it already cut and the document records it read once."""
    existing = (records if records is not None else store.documents()).get(document.id)
    passages = passages if passages is not None else citable_passages(document)
    if _is_current(document, existing):
        return "unchanged", len(passages)
    _write(store, document, root, passages, None)
    return ("updated" if existing else "added"), len(passages)


# Writers of one document take turns. A fixed set of locks, one picked by the document's
# id, bounds the table whatever number of documents passes through: two documents that
# share a lock only wait for each other.
_LOCKS = tuple(threading.Lock() for _ in range(64))


@contextmanager
def _writing(doc_id: str) -> Iterator[None]:
    """One writer per document in this process, so two versions never interleave."""
    with _LOCKS[zlib.crc32(doc_id.encode("utf-8")) % len(_LOCKS)]:
        yield


def citable_passages(document: SourceDocument) -> list[Passage]:
    """The passages worth storing: headings name sections but are never cited alone, and
    a sentence the document repeats is kept once, where it first appears.

    Raises DocumentError when nothing is left to cite (a file of headings only)."""
    passages = []
    said: set[str] = set()
    for passage in chunk(document):
        if passage.kind != "text" or len(_WORD.findall(passage.text)) < 2:
            continue
        # A sentence repeated in a document (a page header or footer, a pasted block) is
        # stored once: its copies would crowd every question's candidates.
        key = " ".join(passage.text.split()).casefold()
        if key in said:
            continue
        said.add(key)
        passages.append(passage)
    if not passages:
        raise DocumentError("no sentence to cite (only headings or short title lines)", "empty")
    return passages


def annotated(passages: list[Passage]) -> list[Passage]:
    """The passages with their lemmas and entities, read by the language pipeline (one
    pass per language over the document's passages)."""
    result = list(passages)
    for language in {p.language for p in passages}:
        positions = [i for i, p in enumerate(passages) if p.language == language]
        notes = passage_annotations([passages[i].text for i in positions], language)
        for i, (lemmas, entities) in zip(positions, notes, strict=True):
            result[i] = replace(passages[i], lemmas=lemmas, entities=entities)
    return result


def stored_hash(document: SourceDocument) -> str:
    """The hash a document's record keeps: its content and the rules that made its passages."""
    return hashlib.sha256(f"{document.content_hash}:{PASSAGE_RULES}".encode()).hexdigest()[:32]


def _is_current(document: SourceDocument, record: DocumentRecord | None) -> bool:
    return record is not None and record.content_hash == stored_hash(document) and record.source == document.source


def _unique_id(document: SourceDocument, existing: dict[str, DocumentRecord], seen: set[str]) -> SourceDocument:
    """Two different files with the same relative path get distinct ids; a file that
    moved keeps its id."""
    record = existing.get(document.id)
    clash = document.id in seen or (
        record is not None and record.source != document.source and Path(record.source).exists()
    )
    if not clash:
        return document
    suffix = hashlib.sha256(document.source.encode("utf-8")).hexdigest()[:8]
    return SourceDocument(
        id=f"{document.id}~{suffix}",
        title=document.title,
        text=document.text,
        source=document.source,
        headings=document.headings,
    )


def _write(
    store: PassageStore, document: SourceDocument, root: str, passages: list[Passage], advance: Progress | None
) -> tuple[int, int]:
    """Store a document's passages, reusing embeddings of unchanged text, then its record."""
    with _writing(document.id):
        return _write_locked(store, document, root, passages, advance)


def _write_locked(
    store: PassageStore, document: SourceDocument, root: str, passages: list[Passage], advance: Progress | None
) -> tuple[int, int]:
    reusable = store.passage_vectors_of(document.id)
    keys = [embedding_key(p) for p in passages]
    missing = [p for p, key in zip(passages, keys, strict=True) if key not in reusable]
    fresh: dict[str, list[float]] = {}
    position = 0
    for batch in store.embeddings.iter_batches(embedding_text(p.title, p.text) for p in missing):
        for vector in batch:
            fresh[embedding_key(missing[position])] = vector
            position += 1
        if advance:
            advance(len(batch))
    if advance and len(passages) > len(missing):
        advance(len(passages) - len(missing))
    vectors = [fresh[key] if key in fresh else reusable[key].tolist() for key in keys]
    store.upsert_passages(annotated(passages), vectors)
    # Read again: another process may have written a version of this document meanwhile.
    keep = {p.id for p in passages}
    stale = [pid for pid in store.passage_ids_of(document.id) if pid not in keep]
    store.delete_passages(stale)
    record = DocumentRecord(
        id=document.id,
        title=document.title,
        source=document.source,
        root=root,
        content_hash=stored_hash(document),
        passages=len(passages),
        ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        language=detect_language(document.text),
    )
    store.put_document(record, document.text)
    return len(missing), len(stale)
