"""How `assistant serve` meets the network: uvicorn's options, the limits uvicorn lacks, and
logs that never hold a key.

uvicorn runs with its h11 protocol, whose parser caps a request line and headers still
arriving (``h11_max_incomplete_event_size``); its httptools protocol has no cap at all. uvicorn
has a keep-alive timeout but no deadline for a request's head, no limit on pauses within a body,
and its connection limit (``limit_concurrency``) answers in plain text while every connection
is still accepted: ``BoundedH11Protocol`` adds the first two and replaces the third.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import http
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from assistant.config import Settings
from assistant.http.guards import error_body, send_error


@dataclass(frozen=True)
class Limits:
    """What one connection may take of a worker."""

    max_header_bytes: int
    header_timeout_s: float
    read_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits the settings name."""
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_s=settings.header_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            max_connections=settings.max_connections,
        )


def server_options(settings: Settings, log_format: str, log_levels: dict[str, str]) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run``, the same for one worker and for several.

    ``log_format`` and ``log_levels`` are the CLI's own logging, which uvicorn's logging
    configuration replaces in the server's processes.
    """
    proxies = [p for p in settings.forwarded_allow_ips.split(",") if p]
    return {
        # A partial of a module-level class: several workers get it pickled.
        "http": functools.partial(BoundedH11Protocol, limits=Limits.from_settings(settings)),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_s,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies,
        "server_header": False,
        # No route speaks WebSocket: an upgrade request is served as plain HTTP.
        "ws": "none",
        "log_level": settings.log_level,
        "log_config": log_config(settings, log_format, log_levels),
    }


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head, a limit on pauses in
    its body, a cap on connections, and its own errors in the one error shape."""

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.app = _Bounded(self.app, limits, self.server_state)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's head, or close a connection over the cap."""
        super().connection_made(transport)
        if len(self.connections) > 2 * self.limits.max_connections:
            # Past the cap requests get a 503 (see _Bounded); this far past it, answering
            # would still cost a socket each, so the connection is dropped at once.
            transport.abort()
            return
        self._expect_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._stop_head_clock()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        """Parse what arrived; a complete head stops the clock."""
        scope = self.scope
        super().handle_events()
        if self.scope is not scope:
            self._stop_head_clock()

    def on_response_complete(self) -> None:
        """Start the clock for the next request's head (before a pipelined one is parsed)."""
        if not self.transport.is_closing():
            self._expect_head()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """Refuse what h11 could not parse: 431 when the head outgrew the cap, else 400."""
        if len(self.conn.trailing_data[0]) > self.limits.max_header_bytes:
            status = 431
            body = error_body(
                "too_large", f"the request line and headers are over {self.limits.max_header_bytes} bytes"
            )
        else:
            status, body = 400, error_body("bad_request", "this is not a valid HTTP/1.1 request")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        reason = http.HTTPStatus(status).phrase.encode()
        for event in (h11.Response(status_code=status, headers=headers, reason=reason), h11.Data(data=body)):
            self.transport.write(self.conn.send(event))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()

    def _expect_head(self) -> None:
        # A deadline, not an idle timer: a client sending a byte now and then still runs out.
        self._stop_head_clock()
        self._head_deadline = self.loop.call_later(self.limits.header_timeout_s, self._head_too_slow)

    def _stop_head_clock(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class _Bounded:
    """The application as one connection calls it: refused past the connection cap, and cut
    off with a 408 when the client pauses too long within the request body."""

    def __init__(self, app: ASGIApp, limits: Limits, state: ServerState) -> None:
        self.app = app
        self.limits = limits
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, or refuse it when its head is too large or the worker is full."""
        # h11 checks its buffer only while a head is incomplete: a head that arrives whole in
        # one read (up to 256 KiB) gets through it, so its size is checked here as well.
        if _head_size(scope) > self.limits.max_header_bytes:
            await send_error(
                send,
                431,
                "too_large",
                f"the request line and headers are over {self.limits.max_header_bytes} bytes",
                [(b"connection", b"close")],
            )
            return
        cap = self.limits.max_connections
        # Both sets hold this request's own connection and task.
        if len(self.state.connections) > cap or len(self.state.tasks) > cap:
            await send_error(
                send,
                503,
                "overloaded",
                f"the server is serving its most connections ({cap}); retry shortly",
                [(b"retry-after", b"1"), (b"connection", b"close")],
            )
            return
        body_read = False
        started = False
        answered = False

        async def timed_receive() -> Message:
            nonlocal body_read, answered
            if body_read:
                # Past the body, receive() only waits for a disconnect (while streaming): no limit.
                return await receive()
            if answered:
                return {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(receive(), self.limits.read_timeout_s)
            except TimeoutError:
                if not started:
                    answered = True
                    await send_error(
                        send,
                        408,
                        "timeout",
                        f"the request body stalled: nothing arrived for {self.limits.read_timeout_s:g} s",
                        [(b"connection", b"close")],
                    )
                return {"type": "http.disconnect"}
            body_read = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 408 went out: what the application says next has no one to read it
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, timed_receive, tracked_send)


def _head_size(scope: Scope) -> int:
    """The size of the request line and headers as they were sent, near enough."""
    line = len(scope["method"]) + len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) + 12
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


_MASK = "***"


class RedactSecrets(logging.Filter):
    """Takes keys out of log records: this server's keys wherever they appear, every value of
    an access line's query string, and whatever follows ``Bearer`` or ``Basic``."""

    _credentials = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+")

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        # Logged paths are percent-encoded again by uvicorn; query strings are as sent.
        forms = {form for secret in secrets or [] if secret for form in _spellings(secret)}
        longest_first = sorted(forms, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, longest_first))) if forms else None

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record without secrets; never drops one."""
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            # uvicorn's access formatter reads these five arguments by position.
            client, method, path, version, status = record.args
            record.args = (client, method, self.clean(_mask_query(str(path))), version, status)
            return True
        message = record.getMessage()
        cleaned = self.clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
            record.__dict__.pop("color_message", None)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.clean(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info)
        return True

    def clean(self, text: str) -> str:
        """The text with every secret masked."""
        if self._secrets is not None:
            text = self._secrets.sub(_MASK, text)
        return self._credentials.sub(rf"\1\2{_MASK}", text)


def _spellings(secret: str) -> set[str]:
    return {secret, quote(secret), quote(secret, safe=""), quote_plus(secret)}


def _mask_query(path: str) -> str:
    """The path with each query parameter's value masked (names kept)."""
    path, mark, query = path.partition("?")
    if not mark:
        return path

    def mask(part: str) -> str:
        if part in ("&", ";", ""):
            return part
        name, equals, _ = part.partition("=")
        return f"{name}={_MASK}" if equals else _MASK

    return f"{path}?{''.join(mask(part) for part in re.split(r'([&;])', query))}"


def log_config(settings: Settings, log_format: str, log_levels: dict[str, str]) -> dict[str, Any]:
    """uvicorn's logging configuration, with the CLI's format for the application's loggers and
    ``RedactSecrets`` on every handler (applied again in each worker process)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    secrets = sorted(settings.api_key_set | ({settings.llm_api_key} if settings.llm_api_key else set()))
    config["filters"] = {"redact": {"()": "assistant.http.server.RedactSecrets", "secrets": secrets}}
    config["formatters"]["app"] = {"format": log_format}
    config["handlers"]["app"] = {"class": "logging.StreamHandler", "formatter": "app", "stream": "ext://sys.stderr"}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["root"] = {"handlers": ["app"], "level": settings.log_level.upper()}
    config["loggers"].update({name: {"level": level} for name, level in log_levels.items()})
    return config
