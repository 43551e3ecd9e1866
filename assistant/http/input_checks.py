"""Checks of what a request carries, in one place: text that is blank or not valid
Unicode, questions and conversation turns over their limits, bodies that are not UTF-8.
Light to import: the API models use it without loading the store or the model."""

from __future__ import annotations

import re

from fastapi import Request

from assistant.config import Settings
from assistant.http.guards import ApiError
from assistant.models import Message

_BLANK = re.compile(r"[ \t\n\r\f\v\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*")


def is_blank(text: str) -> bool:
    """True when the text holds nothing but white space."""
    return _BLANK.fullmatch(text) is not None


def is_text(text: str) -> bool:
    """True when the text can be encoded (JSON allows lone surrogates; UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_question(question: str, max_chars: int) -> str:
    """The question, stripped, or ValueError saying what is wrong with it."""
    if is_blank(question):
        raise ValueError("the question is empty")
    if not is_text(question):
        raise ValueError("the question is not valid text (lone surrogate)")
    stripped = question.strip() or question
    if len(stripped) > max_chars:
        raise ValueError(f"the question is {len(stripped)} characters long; the limit is {max_chars}")
    return stripped


def checked(question: str, history: list[Message], config: Settings) -> tuple[str, list[Message]]:
    """The question and history, or a 422 naming the limit they break."""
    try:
        question = validate_question(question, config.max_question_chars)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"question: {exc}") from exc
    if len(history) > config.max_history_turns:
        raise ApiError(
            422, "invalid_request", f"history: {len(history)} messages; the limit is {config.max_history_turns}"
        )
    for number, message in enumerate(history):
        if is_blank(message.content):
            raise ApiError(422, "invalid_request", f"history.{number}.content: the message is empty")
        if not is_text(message.content):
            raise ApiError(422, "invalid_request", f"history.{number}.content: not valid text (lone surrogate)")
        if len(message.content) > config.max_message_chars:
            raise ApiError(
                422,
                "invalid_request",
                f"history.{number}.content: {len(message.content)} characters; the limit is {config.max_message_chars}",
            )
    return question, history


async def utf8_json(request: Request) -> None:
    """Refuse a JSON body that is not UTF-8 (400 ``invalid_json``): the JSON parser also
    reads UTF-16 and UTF-32, which this API does not accept."""
    body = await request.body()
    try:
        body.decode("utf-8")
        # A raw NUL never occurs in JSON text, and UTF-16 or UTF-32 puts one beside every ASCII
        # character: without a byte-order mark those bodies are valid UTF-8 byte for byte.
        utf8 = b"\x00" not in body
    except UnicodeDecodeError:
        utf8 = False
    if not utf8:
        raise ApiError(400, "invalid_json", "the body is not UTF-8 text; send JSON encoded in UTF-8")
