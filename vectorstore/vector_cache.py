"""Passage vectors kept on disk, so that a text embedded once is not embedded again.

Embedding is what ingest spends its time on (about 58 passages a second on 2 cores). The
same passages come back: `assistant reindex` rebuilds a store from its documents, an ingest
killed part-way is run again, a document removed is uploaded again, a store moves from
embedded mode to a Chroma server, two stores of one machine hold the same files. Each of
those re-embedded every passage. Here a passage's vector is kept in one SQLite file of the
cache folder, keyed by a hash of the model, the engine's version, the token window and the
exact text, so any store and any process of the machine reads it back instead.

The file is bounded (the vectors least recently used go first) and never needed: a file that cannot be
opened, read or written (another process holding it too long, a full disk, a corrupt file)
makes the lookups miss and the texts embedded as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger("assistant.vectors")

_FORMAT = 1
# A writer waits this long for another process's write; past it, the vectors go unkept.
_BUSY_TIMEOUT_S = 2.0
_SQLITE_VARIABLES = 500


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (the connection commits each statement on its own otherwise)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class VectorCache:
    """Vectors of ``dimensions`` float32 values by text, at most ``max_entries`` of them (the
    least recently used dropped), in the SQLite file ``path``; shared by the threads of a
    process and by processes."""

    def __init__(self, path: Path, *, identity: str, dimensions: int, max_entries: int) -> None:
        self.path = path
        self.max_entries = max_entries
        self._identity = f"{_FORMAT}|{identity}|".encode()
        self._dimensions = dimensions
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def key(self, text: str) -> bytes:
        """The text's key: what identifies its vector, the text included."""
        return hashlib.sha256(self._identity + text.encode("utf-8", "surrogatepass")).digest()

    def get(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """The kept vector of each text, or None; those found count as the newest."""
        keys = [self.key(text) for text in texts]
        found: dict[bytes, bytes] = {}
        with self._connection() as db:
            if db is None:
                return [None] * len(keys)
            for start in range(0, len(keys), _SQLITE_VARIABLES):
                chunk = keys[start : start + _SQLITE_VARIABLES]
                marks = ",".join("?" * len(chunk))
                found.update(db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk))
            if found and self.max_entries > 0:
                # Moved to the newest end, so that the oldest go first by use, not by when
                # they were made: a store larger than the bound, embedded again in the same
                # order, would otherwise push out each vector just before it is asked for.
                with _transaction(db):
                    [top] = db.execute("SELECT COALESCE(MAX(id), 0) FROM vectors").fetchone()
                    db.executemany(
                        "UPDATE vectors SET id = ? WHERE key = ?", [(top + n, k) for n, k in enumerate(found, 1)]
                    )
        size = self._dimensions * 4
        return [
            np.frombuffer(found[key], dtype=np.float32).copy() if len(found.get(key, b"")) == size else None
            for key in keys
        ]

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Keep the vectors of the texts (the least recently used dropped past the bound)."""
        if self.max_entries <= 0 or not texts:
            return
        rows = [(self.key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors, strict=True)]
        with self._connection() as db:
            if db is None:
                return
            with _transaction(db):
                db.executemany("INSERT OR IGNORE INTO vectors (key, vector) VALUES (?, ?)", rows)
                # Ids only grow: those more than the bound below the newest are the oldest.
                db.execute("DELETE FROM vectors WHERE id <= (SELECT MAX(id) FROM vectors) - ?", (self.max_entries,))

    def __len__(self) -> int:
        count = 0
        with self._connection() as db:
            if db is not None:
                count = int(db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        return count

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection | None]:
        """The open file (under the lock), or None where it cannot be had; an error while it
        is used is logged and ends the block as a miss."""
        with self._lock:
            if self._db is None and not self._broken:
                self._db = self._open()
            try:
                yield self._db
            except sqlite3.OperationalError as exc:  # locked past the timeout, a full disk: this time only
                log.debug("vector cache %s not used this time: %s", self.path, exc)
            except sqlite3.DatabaseError as exc:
                log.warning("vector cache %s unusable, embedding without it: %s", self.path, exc)
                self._close(broken=True)

    def _open(self) -> sqlite3.Connection | None:
        for attempt in range(2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS vectors "
                        "(id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, vector BLOB NOT NULL)"
                    )
                    return db
                except sqlite3.DatabaseError:
                    db.close()
                    raise
            except sqlite3.OperationalError as exc:  # another process creating it, say: next time
                log.debug("vector cache %s not opened this time: %s", self.path, exc)
                return None
            except sqlite3.DatabaseError as exc:
                if attempt == 0 and ("not a database" in str(exc) or "malformed" in str(exc)):
                    # Only a cache: set aside (not deleted: the setting may name a file of the
                    # user's), and started afresh.
                    log.warning("vector cache %s is corrupt: set aside as %s.corrupt", self.path, self.path.name)
                    with contextlib.suppress(OSError):
                        self.path.replace(self.path.with_name(self.path.name + ".corrupt"))
                    for suffix in ("-wal", "-shm"):
                        with contextlib.suppress(OSError):
                            Path(f"{self.path}{suffix}").unlink()
                    continue
                log.warning("vector cache %s cannot be used, embedding without it: %s", self.path, exc)
                break
            except OSError as exc:
                log.warning("vector cache %s cannot be used, embedding without it: %s", self.path, exc)
                break
        self._broken = True
        return None

    def _close(self, *, broken: bool) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None
        self._broken = broken
