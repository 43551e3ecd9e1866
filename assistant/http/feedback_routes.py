"""Feedback: readers rate answers; admins read the ratings."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from assistant.feedback.ratings import MAX_COMMENT_CHARS, FeedbackError, FeedbackStore, Rating, database_path
from assistant.http.context import settings
from assistant.http.guards import ApiError, Guard
from assistant.http.input_checks import checked, is_blank, is_text, utf8_json
from assistant.http.schemas import FeedbackItem, FeedbackList, FeedbackRequest, FeedbackSaved, error_responses
from assistant.models import Citation

log = logging.getLogger("assistant.http.app")
reader = APIRouter(prefix="/api/feedback", tags=["feedback"])
admin = APIRouter(prefix="/api/feedback", tags=["feedback"])
MAX_PAGE = 200
# Far past any real number of ratings, and within SQLite's 64-bit integers.
MAX_OFFSET = 2**31


def admin_only(guard: Guard) -> Callable[[Request], None]:
    """The rule of document changes (a key from ASSISTANT_ADMIN_KEYS once keys are set), with a
    refusal that names what it guards here."""

    def check(request: Request) -> None:
        try:
            guard.admin(request)
        except ApiError as exc:
            if exc.status != 403:
                raise
            raise ApiError(403, "forbidden", "reading feedback needs a key from ASSISTANT_ADMIN_KEYS") from None

    return check


def valid_rating(body: FeedbackRequest, request: Request) -> Rating:
    """The rating, its question and history checked against the limits of answers, its texts
    against theirs; a 422 naming the field otherwise."""
    config = settings(request)
    question, history = checked(body.question, body.history, config)
    if not is_text(body.answer):
        raise ApiError(422, "invalid_request", "answer: not valid text (lone surrogate)")
    if len(body.answer) > config.max_message_chars:
        raise ApiError(
            422,
            "invalid_request",
            f"answer: {len(body.answer)} characters; the limit is {config.max_message_chars}",
        )
    comment = None if body.comment is None or is_blank(body.comment) else body.comment.strip()
    if comment is not None and not is_text(comment):
        raise ApiError(422, "invalid_request", "comment: not valid text (lone surrogate)")
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise ApiError(422, "invalid_request", f"comment: {len(comment)} characters; the limit is {MAX_COMMENT_CHARS}")
    for number, citation in enumerate(body.citations):
        if isinstance(citation, Citation):
            _check_citation(number, citation)
    return Rating(
        question=question,
        history=[m.model_dump() for m in history],
        answer=body.answer,
        citations=[c.model_dump() if isinstance(c, Citation) else c for c in body.citations],
        found=body.found,
        rating=body.rating,
        comment=comment,
    )


def _check_citation(number: int, citation: Citation) -> None:
    for name in ("document", "title", "section", "text"):
        value = getattr(citation, name)
        if value is not None and not is_text(value):
            raise ApiError(422, "invalid_request", f"citations.{number}.{name}: not valid text (lone surrogate)")
    # JSON has no NaN or infinity, but the parser reads them: they could be stored and never sent back.
    if not math.isfinite(citation.score):
        raise ApiError(422, "invalid_request", f"citations.{number}.score: not a finite number")


def _api_error(exc: FeedbackError) -> ApiError:
    log.error("feedback: %s", exc)
    if exc.kind == "storage_full":
        return ApiError(507, "storage_full", "the disk holding the feedback is full; nothing was stored")
    if exc.kind == "busy":
        return ApiError(503, "feedback_busy", "the feedback database is busy; try again", {"Retry-After": "1"})
    return ApiError(503, "feedback_unavailable", "the feedback database cannot be used; the details are in the log")


@reader.post(
    "",
    response_model=FeedbackSaved,
    status_code=201,
    dependencies=[Depends(utf8_json)],
    responses=error_responses(400, 401, 403, 413, 422, 429, 503, 507),
)
async def send_feedback(request: Request, rating: Annotated[Rating, Depends(valid_rating)]) -> FeedbackSaved:
    """Rate an answer (thumbs up or down, with an optional comment), with the question, history,
    answer and citations it was about. Everything is kept as plain text, as sent; no key is
    stored. Admins read the ratings at `GET /api/feedback`; `assistant feedback export` turns
    them into questions to review for the evaluation sets."""
    store = FeedbackStore(database_path(settings(request)))
    try:
        stored = await run_in_threadpool(store.add, rating)
    except FeedbackError as exc:
        raise _api_error(exc) from exc
    log.info("feedback %d: %s", stored.id, stored.rating)
    return FeedbackSaved(id=stored.id, created_at=stored.created_at)


@admin.get("", response_model=FeedbackList, responses=error_responses(401, 403, 422, 429, 503))
async def list_feedback(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"How many, at most {MAX_PAGE}.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many of the newest to skip.")] = 0,
) -> FeedbackList:
    """The stored ratings, newest first, a page at a time (needs a key from
    ASSISTANT_ADMIN_KEYS once keys are set). Their texts are what readers sent: show them as
    text, never as HTML."""
    store = FeedbackStore(database_path(settings(request)))
    try:
        items, total = await run_in_threadpool(store.newest, limit, offset)
    except FeedbackError as exc:
        raise _api_error(exc) from exc
    feedback = [
        FeedbackItem(
            id=item.id,
            created_at=item.created_at,
            question=item.question,
            history=item.history,
            answer=item.answer,
            citations=item.citations,
            found=item.found,
            rating=item.rating,
            comment=item.comment,
        )
        for item in items
    ]
    return FeedbackList(feedback=feedback, total=total, limit=limit, offset=offset)
