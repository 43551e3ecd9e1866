"""Answers: JSON and a Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from assistant.answering.chain import Delta, Done, Sources
from assistant.http.context import chain_events, holds_key, runtime, settings, within_budget
from assistant.http.guards import ApiError
from assistant.http.input_checks import checked, utf8_json
from assistant.http.schemas import AnswerRequest, DeltaEvent, SourcesEvent, Starters, error_responses
from assistant.http.starters import starter_questions
from assistant.models import Answer

log = logging.getLogger("assistant.http.app")
router = APIRouter(tags=["answers"])


def valid_request(body: AnswerRequest, request: Request) -> AnswerRequest:
    """The request with its question and history checked against the limits, and its right to
    a debug trace (before any streaming)."""
    config = settings(request)
    if body.debug and config.traces_need_admin_key and not holds_key(request, config.admin_key_set):
        raise ApiError(403, "forbidden", 'debug traces need a key from ASSISTANT_ADMIN_KEYS; ask again without "debug"')
    question, history = checked(body.question, body.history, config)
    return body.model_copy(update={"question": question, "history": history})


@router.post(
    "/api/answer",
    response_model=Answer,
    response_model_exclude_none=True,
    dependencies=[Depends(utf8_json)],
    responses=error_responses(400, 401, 403, 413, 422, 429, 503),
)
async def answer(request: Request, body: Annotated[AnswerRequest, Depends(valid_request)]) -> Answer:
    """Answer a question from the documents; every `[n]` marker resolves to a citation.

    `found` is false when the documents do not hold the answer: `citations` is then empty and
    `related` holds the closest passages, to read (same shape as citations, never cited). With
    `"debug": true` the answer carries the `trace` of each stage; when traces are kept for admin
    keys (ASSISTANT_DEBUG_TRACES), asking for one without such a key is a 403.
    """
    chain = runtime(request).chain
    return await within_budget(request, lambda: chain.answer(body.question, body.history, debug=body.debug))


@router.post(
    "/api/answer/stream",
    response_class=EventSourceResponse,
    dependencies=[Depends(utf8_json)],
    responses={
        200: {
            "description": "Events: `sources`, then `delta`s, then `done` (or `error`); `done` carries the "
            "`/api/answer` payload, `related` included."
        },
        **error_responses(400, 401, 403, 413, 422, 429),
    },
)
async def answer_stream(
    request: Request, body: Annotated[AnswerRequest, Depends(valid_request)]
) -> AsyncIterator[ServerSentEvent]:
    """Stream an answer: a `sources` event with the citable passages, `delta` events with
    the text, then `done` with the same payload as `/api/answer` (for a refusal, the closest
    passages in `related`). A failure after the stream began is an `error` event."""
    events = runtime(request).chain.stream(body.question, body.history, debug=body.debug)
    try:
        async for event in chain_events(request, events):
            match event:
                case Sources(citations):
                    yield ServerSentEvent(event="sources", data=SourcesEvent(citations=citations).model_dump())
                    if await request.is_disconnected():
                        log.info("stream closed by the client before the answer")
                        return
                case Delta(text):
                    yield ServerSentEvent(event="delta", data=DeltaEvent(text=text).model_dump())
                case Done(answer):
                    yield ServerSentEvent(event="done", data=answer.model_dump(exclude_none=True))
    except asyncio.CancelledError:
        log.info("stream stopped: the client went away")
        raise
    except ApiError as exc:
        yield ServerSentEvent(event="error", data={"type": exc.kind, "message": exc.message})
    except Exception:
        log.exception("stream failed")
        yield ServerSentEvent(event="error", data={"type": "internal_error", "message": "the answer failed"})


@router.get("/api/starters", response_model=Starters, responses=error_responses(401, 429, 503))
async def starters(request: Request, lang: Literal["fr", "en"] = Query("en")) -> Starters:
    """Questions to offer on an empty conversation: the page's suggestions that the
    documents now stored can answer."""
    rt = runtime(request)
    path = settings(request).web_dir / "starters.json"
    questions = await within_budget(request, lambda: starter_questions(rt, path, lang))
    count = await run_in_threadpool(lambda: len(rt.store.documents()))
    return Starters(questions=questions, documents=count)
