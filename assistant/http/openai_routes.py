"""The OpenAI-compatible API: chat completions (plain and streamed) and models."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.sse import EventSourceResponse, format_sse_event

from assistant.answering.chain import Delta, Done
from assistant.http.context import chain_events, runtime, settings, within_budget
from assistant.http.guards import ApiError
from assistant.http.input_checks import checked, is_blank, is_text, utf8_json
from assistant.http.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ChoiceMessage,
    ModelCard,
    ModelList,
    error_responses,
)
from assistant.models import Message

log = logging.getLogger("assistant.http.app")
router = APIRouter(prefix="/v1", tags=["openai-compatible"])
_INSTRUCTION_ROLES = {"system", "developer"}


def conversation(body: ChatCompletionRequest, request: Request) -> tuple[str, list[Message]]:
    """The last user message is the question; earlier user and assistant messages are the
    history; system and developer messages are instructions this backend does not need."""
    config = settings(request)
    if body.model != config.model_name:
        raise ApiError(404, "model_not_found", f"no model {body.model!r}; this server answers as {config.model_name!r}")
    turns: list[Message] = []
    for number, message in enumerate(body.messages):
        if message.role in _INSTRUCTION_ROLES:
            continue
        if message.role not in ("user", "assistant"):
            raise ApiError(
                422, "invalid_request", f"messages.{number}.role: {message.role!r} is not system, user or assistant"
            )
        text = message.text()
        if is_blank(text):
            raise ApiError(422, "invalid_request", f"messages.{number}.content: the message is empty")
        if not is_text(text):
            raise ApiError(422, "invalid_request", f"messages.{number}.content: not valid text (lone surrogate)")
        turns.append(Message(role=message.role, content=text))
    if not turns or turns[-1].role != "user":
        raise ApiError(422, "invalid_request", "messages: the last message must be the user's question")
    return checked(turns[-1].content, turns[:-1], config)


@router.get("/models", response_model=ModelList, responses=error_responses(401, 429))
async def models(request: Request) -> ModelList:
    """The model this server answers as."""
    return ModelList(data=[ModelCard(id=settings(request).model_name)])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    dependencies=[Depends(utf8_json)],
    responses={
        200: {
            "description": "A chat completion, or with `stream: true` an event stream of chunks ending in [DONE]; "
            "the last chunk carries `citations`, `related` and `found`, as the completion does."
        },
        **error_responses(400, 401, 404, 413, 422, 429, 503),
    },
)
async def chat_completions(
    request: Request, body: ChatCompletionRequest, asked: Annotated[tuple[str, list[Message]], Depends(conversation)]
) -> ChatCompletion | EventSourceResponse:
    """Answer the last user message; the citations travel in a `citations` field and, when the
    documents do not hold the answer (`found` false), the closest passages in a `related` field."""
    question, history = asked
    chain = runtime(request).chain
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        return EventSourceResponse(_chunks(request, question, history, completion_id, created, body.model))
    answer = await within_budget(request, lambda: chain.answer(question, history))
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=body.model,
        choices=[Choice(message=ChoiceMessage(content=answer.answer))],
        citations=answer.citations,
        related=answer.related,
        found=answer.found,
        fallback=answer.fallback,
    )


async def _chunks(
    request: Request, question: str, history: list[Message], completion_id: str, created: int, model: str
) -> AsyncIterator[bytes]:
    chain = runtime(request).chain

    def chunk(delta: dict, finish: str | None = None, **extra: object) -> bytes:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return _sse(json.dumps(payload, ensure_ascii=False))

    try:
        yield chunk({"role": "assistant", "content": ""})
        # The deltas joined are the checked answer's text, so its citations are the answer's own.
        async for event in chain_events(request, chain.stream(question, history)):
            match event:
                case Delta(text):
                    yield chunk({"content": text})
                case Done(answer):
                    extra = {
                        "citations": [c.model_dump() for c in answer.citations],
                        "related": [c.model_dump() for c in answer.related],
                        "found": answer.found,
                    }
                    if answer.fallback is not None:
                        extra["fallback"] = answer.fallback
                    yield chunk({}, "stop", **extra)
    except ApiError as exc:
        yield _sse(json.dumps({"error": {"type": exc.kind, "message": exc.message}}))
    except Exception:
        log.exception("completion stream failed")
        yield _sse(json.dumps({"error": {"type": "internal_error", "message": "the answer failed"}}))
    yield _sse("[DONE]")


def _sse(data: str) -> bytes:
    """An event whose data is sent as it is (FastAPI's framing): OpenAI's stream is JSON
    text and a final [DONE], not JSON-encoded strings."""
    return format_sse_event(data_str=data)
