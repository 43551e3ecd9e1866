"""The lexical index on disk, for corpora too large to index in every worker's memory.

Each passage's index terms (the stems BM25 ranks by) sit in an SQLite FTS5 table, ranked
with its ``bm25()`` (the same Okapi BM25, k1 = 1.2, b = 0.75, as the in-memory index). The
file is shared by every process on the machine and opened, not rebuilt: a worker is ready
as soon as the file is current. It is brought up to date from the store's documents, one
document at a time, whenever the store's change stamp moves; a document's record is written
last at ingest, so a document is indexed only once it is whole, and a sync interrupted at
any point is rolled back whole.
"""

from __future__ import annotations

import contextlib
import math
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from vectorstore.chunking import Passage
from vectorstore.language import document_terms

_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS stems USING fts5(terms, tokenize = 'unicode61 remove_diacritics 0');
CREATE TABLE IF NOT EXISTS passages (
    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, document TEXT NOT NULL, language TEXT NOT NULL,
    terms TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_language ON passages (language);
CREATE INDEX IF NOT EXISTS passages_document ON passages (document);
CREATE TABLE IF NOT EXISTS documents (id TEXT PRIMARY KEY, version TEXT NOT NULL, description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Okapi BM25's parameters, for this index and the in-memory one.
K1 = 1.2
B = 0.75
# Index terms of all passages: the words of each passage's space-separated terms.
_TERMS_OF = "COALESCE(SUM(length(terms) - length(replace(terms, ' ', '')) + (terms != '')), 0)"
_TERMS_COUNTED = f"SELECT {_TERMS_OF} FROM passages"
# Candidates FTS5 finds for each place asked for, before they are scored as in memory.
RESCORED = 3
# Another process may hold the write lock while it indexes a large change.
_BUSY_SECONDS = 600
_FORMAT = 2
# Documents whose passages are read in one request while syncing.
_DOCUMENTS_A_READ = 100
# Questions read the file through this many connections at once.
_READERS = 4
# A term in more than this share of the passages, and in more than this many, is left out of
# a query: its weight in BM25 is close to nothing (idf below log 4), and scoring it means
# reading most of the index (70 of the 80 ms of a search at 100,000 passages).
COMMON_SHARE = 0.2
COMMON_POSTINGS = 10_000
# On such an index a query also reads at most this many postings, its rarest terms first
# (the ones BM25 weighs most): scoring every passage that holds any term costs time in
# proportion to them (p95 133 -> 62 ms at 1,000,000 passages, with 0.91 of the top 40 kept).
QUERY_POSTINGS = 40_000


class _Record(Protocol):
    id: str
    content_hash: str
    passages: int
    ingested_at: str


class _Store(Protocol):
    def version(self) -> str: ...
    def documents(self) -> dict[str, _Record]: ...
    def passages_of_documents(self, doc_ids: list[str]) -> list[Passage]: ...


def _version(record: _Record) -> str:
    return f"{record.content_hash}:{record.passages}:{record.ingested_at}"


def idf(passages: int, holding: int) -> float:
    """BM25's inverse document frequency of a term ``holding`` of the ``passages`` hold: never
    below zero, and highest for a term no passage holds."""
    return math.log(1.0 + (passages - holding + 0.5) / (holding + 0.5))


def length_damping(length: Any, average: float) -> Any:
    """BM25's normalisation of a passage of ``length`` index terms (a number or an array)."""
    return K1 * (1 - B + B * length / average)


def tf_factor(frequency: Any, damping: Any) -> Any:
    """BM25's saturated term frequency, given the passage's ``length_damping``."""
    return frequency * (K1 + 1) / (frequency + damping)


def match_expression(query: Iterable[frozenset[str]]) -> str:
    """An FTS5 query matching any of the terms, each quoted (so no term is read as syntax)."""
    quoted = dict.fromkeys(
        '"' + term.replace('"', '""') + '"' for alternatives in query for term in sorted(alternatives)
    )
    return " OR ".join(quoted)


@contextlib.contextmanager
def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """Reads that see one state of the file: a sync committing between a search's
    statements would otherwise pair new counts with old candidates (more passages holding a
    term than passages in all, a negative idf)."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


class DiskLexicon:
    """BM25 over passages' index terms in an SQLite file, kept in step with a store, with
    each passage's terms and a description of each document (``describe``'s text) beside it.

    Questions read through a few connections while a sync writes through another: readers
    see the index as it was until the sync commits (SQLite's WAL)."""

    def __init__(
        self, path: Path, describe: Callable[[list[Passage], list[frozenset[str]]], str] | None = None
    ) -> None:
        self.path = path
        # A document's passages and their index terms -> the text kept for it.
        self.describe = describe or (lambda passages, terms: "")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = self._connect()
        if self._db.execute("PRAGMA user_version").fetchone()[0] != _FORMAT:
            # Written by another version (or new): rebuilt from the store at the next sync.
            with self._db:
                for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type IN ('table')").fetchall():
                    if not name.startswith(("sqlite_", "stems_")):
                        self._db.execute(f'DROP TABLE IF EXISTS "{name}"')
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {_FORMAT}")
        self._db.executescript(_SCHEMA)
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._opened = 0
        self._closed = False
        self._counted: tuple[str | None, int] = ("", 0)
        self._lengths: tuple[object, int] = ("", 0)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=_BUSY_SECONDS, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA mmap_size = 268435456")
        return db

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One of the reader connections, so that questions search side by side."""
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the lexical index is closed")
            fresh = self._readers.empty() and self._opened < _READERS
            if fresh:
                self._opened += 1
        if fresh:
            db = self._connect()
            # Read through the system's file cache, not mapped: a mapping per connection
            # would count the file's pages again in the worker's memory for each one.
            db.execute("PRAGMA mmap_size = 0")
            db.execute("PRAGMA cache_size = -8192")
            db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.stems_vocab USING fts5vocab(main, 'stems', 'row')")
        else:
            db = self._readers.get()
        try:
            yield db
        finally:
            self._readers.put(db)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._closed = True
            self._db.close()
            while not self._readers.empty():
                self._readers.get().close()

    def stamp(self) -> str | None:
        """The store's change stamp this index reflects."""
        with self._reading() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
        return row[0] if row else None

    def __len__(self) -> int:
        with self._reading() as db:
            return self._passage_count(db)

    def sync(self, store: _Store) -> int:
        """Bring the index up to the store's current stamp; returns how many documents were
        (re)indexed or removed. Processes syncing at once do it one after another, and the
        later ones find nothing left to do."""
        stamp = store.version()
        if self.stamp() == stamp:
            return 0
        writer = self._connect()
        try:
            writer.execute("BEGIN IMMEDIATE")
            try:
                changed = self._sync(writer, store, stamp)
                writer.execute("COMMIT")
            except BaseException:
                writer.execute("ROLLBACK")
                raise
        finally:
            writer.close()
        return changed

    def _sync(self, db: sqlite3.Connection, store: _Store, stamp: str) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
        if row and row[0] == stamp:
            return 0
        records = store.documents()
        known = dict(db.execute("SELECT id, version FROM documents").fetchall())
        kept = db.execute("SELECT value FROM meta WHERE key = 'terms'").fetchone()
        # The count BM25's average length needs, kept in step (counting cost a scan of
        # every passage, about a second at 1,000,000, at each upload).
        delta = 0
        removed = known.keys() - records.keys()
        for doc_id in removed:
            delta -= self._remove(db, doc_id)
        stale = [doc_id for doc_id, record in records.items() if known.get(doc_id) != _version(record)]
        for start in range(0, len(stale), _DOCUMENTS_A_READ):
            batch = stale[start : start + _DOCUMENTS_A_READ]
            by_document: dict[str, list[Passage]] = {doc_id: [] for doc_id in batch}
            for passage in store.passages_of_documents(batch):
                by_document[passage.document_id].append(passage)
            for doc_id, passages in by_document.items():
                passages.sort(key=lambda p: p.start)
                if doc_id in known:
                    delta -= self._remove(db, doc_id)
                terms, added = self._add(db, passages)
                delta += added
                db.execute(
                    "INSERT INTO documents (id, version, description) VALUES (?, ?, ?)",
                    (doc_id, _version(records[doc_id]), self.describe(passages, terms)),
                )
        changed = len(removed) + len(stale)
        total = int(kept[0]) + delta if kept is not None else int(db.execute(_TERMS_COUNTED).fetchone()[0])
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('terms', ?)", (str(total),))
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('stamp', ?)", (stamp,))
        return changed

    @staticmethod
    def _remove(db: sqlite3.Connection, doc_id: str) -> int:
        """Remove a document's passages; returns how many index terms they held."""
        [held] = db.execute(f"SELECT {_TERMS_OF} FROM passages WHERE document = ?", (doc_id,)).fetchone()
        rows = [r for (r,) in db.execute("SELECT rowid FROM passages WHERE document = ?", (doc_id,))]
        db.executemany("DELETE FROM stems WHERE rowid = ?", ((r,) for r in rows))
        db.execute("DELETE FROM passages WHERE document = ?", (doc_id,))
        db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return int(held)

    @staticmethod
    def _add(db: sqlite3.Connection, passages: list[Passage]) -> tuple[list[frozenset[str]], int]:
        """Index the passages; returns each one's terms, and how many index terms were added."""
        found = []
        added = 0
        for passage in passages:
            stems = document_terms(passage.text, passage.language)
            found.append(frozenset(stems))
            terms = " ".join(stems)
            cursor = db.execute(
                "INSERT INTO passages (id, document, language, terms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING RETURNING rowid",
                (passage.id, passage.document_id, passage.language, terms),
            )
            row = cursor.fetchone()
            if row is None:  # the same passage twice
                continue
            db.execute("INSERT INTO stems (rowid, terms) VALUES (?, ?)", (row[0], terms))
            added += len(stems)
        return found, added

    def search(self, query: list[frozenset[str]], k: int) -> list[tuple[str, float]]:
        """The k best passages by BM25: (passage id, score), best first.

        FTS5 finds the candidates, a few per place; they are then scored as the in-memory
        index scores them (each query word once, through its best-matching stem, with the same
        idf), since FTS5's ``bm25()`` adds up every stem of a word and has an idf of its own
        (near nothing for a term in half the passages): ranked by it alone, 25 of a
        follow-up's 68 candidates were not those of the in-memory index."""
        if k <= 0 or not any(query):
            return []
        terms = sorted({t for alternatives in query for t in alternatives})
        with self._reading() as db, _snapshot(db):
            marks = ",".join("?" * len(terms))
            counts = dict(db.execute(f"SELECT term, doc FROM temp.stems_vocab WHERE term IN ({marks})", terms))
            bounded = self._bounded(db, query, counts)
            if not bounded:
                return []
            # The best are found before their rows are read: joined first, every matching
            # row was read from the passages table (half the time at 1M passages).
            rows = db.execute(
                "SELECT passages.id, passages.terms FROM (SELECT rowid AS hit, bm25(stems) AS rank FROM stems "
                "WHERE stems MATCH ? ORDER BY bm25(stems) LIMIT ?) JOIN passages ON passages.rowid = hit ORDER BY rank",
                (match_expression(bounded), k * RESCORED),
            ).fetchall()
            if not rows:
                return []
            total, length = self._passage_count(db), self._length(db)
        weight = {t: idf(total, counts.get(t, 0)) for t in terms}
        average = (length / total) if total and length else 1.0
        scored = []
        for pid, text in rows:
            frequencies = Counter(text.split())
            damping = length_damping(sum(frequencies.values()), average)
            score = 0.0
            for alternatives in query:
                matched = [t for t in alternatives if t in frequencies]
                score += max((weight[t] * tf_factor(frequencies[t], damping) for t in matched), default=0.0)
            scored.append((str(pid), score))
        scored.sort(key=lambda hit: -hit[1])
        return [hit for hit in scored[:k] if hit[1] > 0]

    def _bounded(
        self, db: sqlite3.Connection, query: list[frozenset[str]], counts: dict[str, int]
    ) -> list[frozenset[str]]:
        """The query without its common terms, and within its postings budget (the rarest
        term stays if it alone exceeds the budget), given how many passages hold each term.
        A query of common terms only is left empty: its best term weighs almost nothing, and
        ranking by it meant scoring nearly half of a million-passage index (700 ms for one
        question)."""
        total = self._passage_count(db)
        if total * COMMON_SHARE <= COMMON_POSTINGS:
            return query
        limit = max(total * COMMON_SHARE, COMMON_POSTINGS)
        found = {term: count for term, count in counts.items() if count > 0}
        if not found:
            return query  # it matches nothing, and finds that out quickly
        chosen: set[str] = set()
        postings = 0
        for term in sorted(found, key=lambda t: (found[t], t)):
            if found[term] > limit or (chosen and postings + found[term] > QUERY_POSTINGS):
                break
            chosen.add(term)
            postings += found[term]
        kept = [frozenset(t for t in alternatives if t in chosen) for alternatives in query]
        return [alternatives for alternatives in kept if alternatives]

    def _length(self, db: sqlite3.Connection) -> int:
        """The index terms of all passages (BM25's average length): counted at each sync, or
        here once an index change for a file synced before the count was kept."""
        row = db.execute("SELECT value FROM meta WHERE key = 'terms'").fetchone()
        if row is not None:
            return int(row[0])
        stamp = db.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
        counted_at, count = self._lengths
        if counted_at != stamp:
            count = int(db.execute(_TERMS_COUNTED).fetchone()[0])
            self._lengths = (stamp, count)
        return count

    def _passage_count(self, db: sqlite3.Connection) -> int:
        """How many passages are indexed, counted again only when the index changed."""
        row = db.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
        stamp = row[0] if row else None
        counted_at, count = self._counted
        if counted_at != stamp:
            count = int(db.execute("SELECT count(*) FROM passages").fetchone()[0])
            self._counted = (stamp, count)
        return count

    def holds(self, language: str) -> bool:
        """Whether any indexed passage is in ``language``."""
        with self._reading() as db:
            return db.execute("SELECT 1 FROM passages WHERE language = ? LIMIT 1", (language,)).fetchone() is not None

    def terms(self, passage_ids: list[str]) -> dict[str, frozenset[str]]:
        """The index terms of these passages (those indexed)."""
        return {pid: frozenset(text.split()) for pid, text in self._select("passages", "terms", passage_ids)}

    def descriptions(self, document_ids: list[str]) -> dict[str, str]:
        """``describe``'s text of these documents (those indexed)."""
        return dict(self._select("documents", "description", document_ids))

    def _select(self, table: str, column: str, ids: list[str]) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        with self._reading() as db:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                found += db.execute(f"SELECT id, {column} FROM {table} WHERE id IN ({marks})", part).fetchall()
        return found
