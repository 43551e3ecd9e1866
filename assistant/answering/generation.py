"""Generated answers: the chat model chosen by settings, run within a time budget.

A model that is down, slow or confused never costs the user an answer: callers fall back
to the extractive answerer (see chain.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from assistant.config import Settings

log = logging.getLogger("assistant.answering.generation")

DEFAULT_MODELS = {"ollama": "llama3.2", "openai": "gpt-4o-mini"}
DEFAULT_URLS = {"ollama": "http://localhost:11434"}


class BackendError(RuntimeError):
    """The configured language-model backend cannot be used; the message says what to do."""


class GenerationFailed(RuntimeError):
    """The model did not answer usefully in time."""


def make_chat_model(settings: Settings) -> BaseChatModel | None:
    """The chat model for ``ASSISTANT_LLM``; None for the extractive backend."""
    model = settings.llm_model or DEFAULT_MODELS.get(settings.llm, "")
    match settings.llm:
        case "extractive":
            return None
        case "ollama":
            try:
                from langchain_ollama import ChatOllama
            except ImportError as exc:
                raise BackendError("ASSISTANT_LLM=ollama needs the ollama extra: pip install '.[ollama]'") from exc
            return ChatOllama(
                model=model,
                base_url=settings.llm_url or DEFAULT_URLS["ollama"],
                temperature=0,
                num_predict=settings.llm_max_tokens,
                client_kwargs={"timeout": settings.llm_timeout_s},
            )
        case "openai":
            try:
                from langchain_openai import ChatOpenAI
            except ImportError as exc:
                raise BackendError("ASSISTANT_LLM=openai needs the openai extra: pip install '.[openai]'") from exc
            return ChatOpenAI(
                model=model,
                base_url=settings.llm_url,
                api_key=settings.llm_api_key or "unused",
                temperature=0,
                timeout=settings.llm_timeout_s,
                max_retries=0,
                # OpenAI's API takes max_completion_tokens (what max_tokens becomes here);
                # OpenAI-compatible servers (llama.cpp, vLLM) know max_tokens.
                **(
                    {"extra_body": {"max_tokens": settings.llm_max_tokens}}
                    if settings.llm_url
                    else {"max_tokens": settings.llm_max_tokens}
                ),
            )
        case other:
            raise BackendError(f"ASSISTANT_LLM={other!r} is not one of extractive, ollama, openai")


def invoke(model: BaseChatModel, messages: list[BaseMessage], timeout: float) -> str:
    """The model's reply, or GenerationFailed when it errs or takes longer than ``timeout``."""
    return "".join(stream(model, messages, timeout))


def stream(model: BaseChatModel, messages: list[BaseMessage], timeout: float) -> Iterator[str]:
    """The model's reply as it arrives; GenerationFailed past the deadline or on error.

    The model runs in a thread of its own so that the deadline holds even when the
    model's client does not honour its own time-out. Past the deadline, or when the
    reader stops reading, the model's stream is closed, which closes its connection: a
    model server that serves one request at a time is not left generating for nobody.
    """
    chunks: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        replies = model.stream(messages)
        try:
            for chunk in replies:
                if stop.is_set():
                    break
                chunks.put(("text", chunk.content if isinstance(chunk.content, str) else ""))
            chunks.put(("end", None))
        except Exception as exc:
            chunks.put(("error", exc))
        finally:
            close = getattr(replies, "close", None)
            if close is not None:
                close()

    threading.Thread(target=produce, daemon=True, name="llm-stream").start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GenerationFailed(f"no complete answer within {timeout:g} s")
            try:
                kind, value = chunks.get(timeout=remaining)
            except queue.Empty as exc:
                raise GenerationFailed(f"no complete answer within {timeout:g} s") from exc
            if kind == "end":
                return
            if kind == "error":
                raise GenerationFailed(f"the model failed: {value}") from value
            if value:
                yield value
    finally:
        stop.set()


def probe(settings: Settings) -> dict[str, Any]:
    """What /readyz says about the language model (the server answers without it anyway)."""
    if settings.llm == "extractive":
        return {"backend": "extractive"}
    model = settings.llm_model or DEFAULT_MODELS.get(settings.llm, "")
    state: dict[str, Any] = {"backend": settings.llm, "model": model}
    if settings.llm == "ollama":
        url = f"{(settings.llm_url or DEFAULT_URLS['ollama']).rstrip('/')}/api/tags"
    else:
        url = f"{(settings.llm_url or 'https://api.openai.com/v1').rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=2.0)
        state["reachable"] = response.status_code < 500
        if response.status_code >= 400:
            state["status"] = response.status_code
    except httpx.HTTPError as exc:
        state["reachable"] = False
        state["error"] = type(exc).__name__
    return state
