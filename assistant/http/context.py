"""What every route needs from its request: the runtime and settings, the key check, and
chain work run in a thread within the request's time budget."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from assistant.answering.chain import Event
from assistant.config import Settings
from assistant.http.guards import ApiError, bearer
from assistant.runtime import Runtime
from vectorstore.embeddings import Account
from vectorstore.embeddings import account as embedding_account

log = logging.getLogger("assistant.http.app")
T = TypeVar("T")


def runtime(request: Request) -> Runtime:
    """The runtime built at start-up."""
    return request.app.state.runtime


def settings(request: Request) -> Settings:
    """The server's settings."""
    return request.app.state.settings


def holds_key(request: Request, keys: frozenset[str]) -> bool:
    """True when the request's bearer key is one of ``keys``."""
    key = bearer(request)
    if not key:
        return False
    # Every key is compared (a list, not a generator), so timing says nothing about which matched.
    return any([hmac.compare_digest(key.encode(), known.encode()) for known in keys])


async def chain_events(request: Request, events: Iterator[Event]) -> AsyncIterator[Event]:
    """A chain's events, read in threads: the first (the passages chosen, where retrieval's
    work is) within the request's time budget, the rest as they come, all charged to this
    request's embedding account."""
    charged = Account()
    yield await within_budget(request, lambda: next(events), charged)
    async for event in iterate_in_threadpool(_charged_events(events, charged)):
        yield event


def _charged_events(events: Iterator[Event], charged: Account) -> Iterator[Event]:
    while True:
        with embedding_account(charged):
            event = next(events, None)
        if event is None:
            return
        yield event


async def within_budget(request: Request, work: Callable[[], T], charged: Account | None = None) -> T:
    """Run blocking chain work in a thread, within the per-request time budget.

    Past the budget the client gets a 503, and the embedding work still queued for the
    request is dropped; a store that cannot be reached is a 503 too. The embedding work is
    charged to this request (``charged``, or an account of its own), so the model serves
    questions in the order they started and heavier work after them.
    """
    config = settings(request)
    charged = charged or Account()

    def run() -> T:
        with embedding_account(charged):
            return work()

    try:
        return await asyncio.wait_for(run_in_threadpool(run), timeout=config.request_timeout_s)
    except TimeoutError as exc:
        charged.abandoned = True
        log.warning("answer over its %.1f s budget on %s", config.request_timeout_s, request.url.path)
        raise ApiError(
            503, "timeout", f"no answer within {config.request_timeout_s:g} s; try again", {"Retry-After": "1"}
        ) from exc
    except ApiError:
        raise
    except Exception as exc:
        if not await run_in_threadpool(_store_reachable, runtime(request)):
            log.error("store unavailable: %s", exc)
            raise ApiError(
                503, "store_unavailable", "the document store cannot be reached", {"Retry-After": "2"}
            ) from exc
        raise


def _store_reachable(rt: Runtime) -> bool:
    try:
        rt.store.count()
    except Exception:
        return False
    return True
