"""Readers' ratings of answers: a SQLite database in the data folder, and its export as
questions to review for the evaluation sets.

One connection per operation, in WAL mode with a busy timeout, so that several server
processes (workers, or servers sharing ``ASSISTANT_FEEDBACK_DB``) write to the same file at
once. Nothing here knows about keys: a rating holds only what the reader sent about an answer.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.request import pathname2url

from assistant.config import Settings

FILE_NAME = "feedback.sqlite3"
MAX_COMMENT_CHARS = 2000
MAX_CITATIONS = 50
# Long enough for a burst of writers on a slow disk; a write waits for the lock, never fails at once.
BUSY_TIMEOUT_S = 10.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    question TEXT NOT NULL,
    history TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    found INTEGER NOT NULL CHECK (found IN (0, 1)),
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT
)
"""
COLUMNS = "id, created_at, question, history, answer, citations, found, rating, comment"

Citations = list[dict[str, Any] | int]


class FeedbackError(Exception):
    """The feedback database cannot be used; ``kind`` says why (``storage_full``, ``busy``,
    ``unavailable``, ``missing``) and the message names the file, for the log and the CLI."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Rating:
    """What a reader sent about one answer."""

    question: str
    history: list[dict[str, str]]
    answer: str
    citations: Citations
    found: bool
    rating: Literal["up", "down"]
    comment: str | None = None


@dataclass(frozen=True)
class StoredRating(Rating):
    """A rating as stored, with its number and time (UTC, ISO 8601)."""

    id: int = 0
    created_at: str = ""


def database_path(settings: Settings) -> Path:
    """Where the ratings are kept: ``ASSISTANT_FEEDBACK_DB``, else ``feedback.sqlite3`` in the data folder."""
    return settings.feedback_db or settings.data_dir / FILE_NAME


class FeedbackStore:
    """The ratings in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, rating: Rating) -> StoredRating:
        """Store a rating; returns it with its id and time."""
        created_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        row = (
            created_at,
            rating.question,
            json.dumps(rating.history, ensure_ascii=False),
            rating.answer,
            json.dumps(rating.citations, ensure_ascii=False),
            int(rating.found),
            rating.rating,
            rating.comment,
        )
        with self._connection(create=True) as db:
            cursor = db.execute(
                "INSERT INTO feedback (created_at, question, history, answer, citations, found, rating, comment) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                row,
            )
            (number,) = cursor.fetchone()
        return StoredRating(**asdict(rating), id=number, created_at=created_at)

    def newest(self, limit: int, offset: int = 0) -> tuple[list[StoredRating], int]:
        """The ratings, newest first, from ``offset``, at most ``limit``; and how many there are."""
        if not self.path.exists():
            return [], 0
        with self._connection(create=False) as db:
            # One read transaction: the page and the count see the same ratings.
            db.execute("BEGIN")
            rows = db.execute(
                f"SELECT {COLUMNS} FROM feedback ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
            (total,) = db.execute("SELECT COUNT(*) FROM feedback").fetchone()
            db.execute("COMMIT")
        return [_stored(row) for row in rows], total

    def oldest_first(self) -> Iterator[StoredRating]:
        """Every rating, oldest first; ``FeedbackError`` (``missing``) when there is no database."""
        if not self.path.is_file():
            raise FeedbackError(
                "missing",
                f"no feedback database at {self.path}: nothing has been rated yet, or ASSISTANT_DATA_DIR "
                "(or ASSISTANT_FEEDBACK_DB) points elsewhere",
            )
        with self._connection(create=False) as db:
            yield from (_stored(row) for row in db.execute(f"SELECT {COLUMNS} FROM feedback ORDER BY id"))

    @contextmanager
    def _connection(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                message = f"cannot create the folder of {self.path}: {exc.strerror or exc}"
                raise FeedbackError("unavailable", message) from exc
            target, uri = str(self.path), False
        else:
            # Reading never creates a file where there was none.
            target, uri = f"file:{pathname2url(str(self.path.resolve()))}?mode=ro", True
        try:
            # Autocommit: each statement is its own transaction unless one is begun explicitly.
            with closing(sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None, uri=uri)) as db:
                if create:
                    _prepare(db)
                yield db
        except sqlite3.Error as exc:
            raise _failure(exc, self.path) from exc


def _prepare(db: sqlite3.Connection) -> None:
    """Switch the database to WAL and create its table, waiting for other writers.

    While another process creates the file or switches it to WAL, SQLite answers "database
    is locked" at once instead of waiting its busy timeout: two servers sharing a new
    database lost their first ratings to it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _stored(row: tuple[Any, ...]) -> StoredRating:
    number, created_at, question, history, answer, citations, found, rating, comment = row
    return StoredRating(
        question=question,
        history=json.loads(history),
        answer=answer,
        citations=json.loads(citations),
        found=bool(found),
        rating=rating,
        comment=comment,
        id=number,
        created_at=created_at,
    )


def _failure(exc: sqlite3.Error, path: Path) -> FeedbackError:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return FeedbackError("storage_full", f"the disk holding {path} is full")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return FeedbackError("busy", f"{path} stayed locked by other writers for {BUSY_TIMEOUT_S:g} s")
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return FeedbackError("unavailable", f"{path} is not a usable SQLite database ({exc})")
    return FeedbackError("unavailable", f"cannot use the feedback database {path}: {exc}")


# Export as questions to review ------------------------------------------------------

REVIEW_FOUND = "the reader approved this answer: narrow `support` to the words that answer, and fill `must`"
REVIEW_NOT_FOUND = "the reader agreed the documents do not hold the answer: check it, and add `forbid` if useful"
REVIEW_DOWN = (
    "the reader rejected this answer: `answerable` is only a guess (the opposite of what the assistant did); "
    "decide it from the documents, then fill `must` and `support`, or `forbid`"
)


def as_case(item: StoredRating, lang: str | None = None) -> dict[str, Any]:
    """A rating as a question of an evaluation set (see ``assistant.evaluation.scoring``), labelled
    ``"source": "feedback"`` with a ``review`` note saying what a reviewer must fill or check."""
    passages = [c for c in item.citations if isinstance(c, dict)]
    case: dict[str, Any] = {"id": f"feedback-{item.id}"}
    if lang:
        case["lang"] = lang
    case.update(question=item.question, history=item.history)
    if item.rating == "up" and item.found:
        case.update(answerable=True, must=[])
        if passages:
            case.update(support=passages[0]["text"], document=passages[0]["document"])
        case["review"] = REVIEW_FOUND
    elif item.rating == "up":
        case.update(answerable=False, review=REVIEW_NOT_FOUND)
    else:
        case.update(answerable=not item.found, must=[], review=REVIEW_DOWN)
    case.update(source="feedback", rating=item.rating, found=item.found, answer=item.answer)
    if item.comment:
        case["comment"] = item.comment
    case["created_at"] = item.created_at
    return case


def export_cases(database: Path, out: Path, language: Callable[[str], str] | None = None) -> Counter[str]:
    """Write every rating of ``database`` to ``out`` as evaluation questions (JSON Lines), all
    or nothing: the file is replaced only once complete. Returns the count of each kind
    (``up_found``, ``up_not_found``, ``down``)."""
    counts: Counter[str] = Counter()
    written: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False
        ) as handle:
            written = Path(handle.name)
            for item in FeedbackStore(database).oldest_first():
                case = as_case(item, language(item.question) if language else None)
                handle.write(json.dumps(case, ensure_ascii=False) + "\n")
                kind = "down" if item.rating == "down" else ("up_found" if item.found else "up_not_found")
                counts[kind] += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(written, out)
    except OSError as exc:
        raise FeedbackError("unwritable", f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        # Gone once it has replaced ``out``; left over only when something failed.
        if written is not None:
            written.unlink(missing_ok=True)
    return counts
