"""What stands between a client and the chain: API keys, rate limits, body size."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import threading
import time
from collections import OrderedDict

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.config import Settings


class ApiError(Exception):
    """An error to send to the client as it is, in the one error shape."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers or {}


def _matches(given: str, keys: frozenset[str]) -> bool:
    """Constant-time membership: every key is compared, whatever matches first."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(given.encode(), key.encode())
    return found


def bearer(request: Request) -> str | None:
    """The key from ``Authorization: Bearer <key>``, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests a minute, in bursts of as many.

    The table keeps at most ``max_clients`` buckets, dropping the least recently used. A bucket
    untouched for a minute has refilled, the same as a new one, so dropping it loses nothing:
    only more than ``max_clients`` distinct clients within a minute can hand one a fresh bucket
    early, and without trusted proxies a client is a real address (an IPv6 /64) or a real key.
    """

    def __init__(self, per_minute: int, max_clients: int = 10_000) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be 1 or more")
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, client: str) -> float:
        """Take a token for the client; returns 0, or the seconds to wait when none is left."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            allowed = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return 0.0 if allowed else (1.0 - tokens) / rate


class Guard:
    """FastAPI dependencies checking the caller's key and rate."""

    def __init__(self, settings: Settings) -> None:
        # Reading needs a key only when ASSISTANT_API_KEYS is set; admin keys read too.
        self.keys = settings.api_key_set if settings.api_keys.strip() else frozenset()
        self.admin_keys = settings.admin_key_set
        self.limiter = RateLimiter(settings.rate_limit_per_minute)

    @property
    def open(self) -> bool:
        """True when no key is needed to read."""
        return not self.keys

    def reader(self, request: Request) -> None:
        """Any route under /api or /v1."""
        key = self._known_key(request, self.keys)
        self._rate(request, key)
        self._require(request, key)

    def admin(self, request: Request) -> None:
        """Routes that change the documents."""
        key = self._known_key(request, self.keys | self.admin_keys)
        self._rate(request, key)
        self._require(request, key)
        if (self.keys or self.admin_keys) and not (key and _matches(key, self.admin_keys)):
            raise ApiError(403, "forbidden", "changing documents needs a key from ASSISTANT_ADMIN_KEYS")

    @staticmethod
    def _known_key(request: Request, keys: frozenset[str]) -> str | None:
        """The caller's key if it is one of ours; a made-up key counts as none."""
        key = bearer(request)
        return key if key and keys and _matches(key, keys) else None

    def _require(self, request: Request, key: str | None) -> None:
        if self.keys and key is None:
            given = bearer(request)
            message = "this API key is not valid" if given else "an API key is needed: Authorization: Bearer <key>"
            raise ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})

    def _rate(self, request: Request, key: str | None) -> None:
        # Known keys have a bucket each; everyone else, failed key attempts included,
        # shares the bucket of their address.
        client = "key:" + hashlib.sha256(key.encode()).hexdigest()[:16] if key else f"ip:{_address(request)}"
        wait = self.limiter.check(client)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429, "rate_limited", f"too many requests; retry in {seconds} s", {"Retry-After": str(seconds)}
            )


def _address(request: Request) -> str:
    """The client as the rate limit counts it: its address, an IPv6 one by its /64.

    uvicorn has already replaced the peer by the forwarded client when the peer is a trusted
    proxy (ASSISTANT_FORWARDED_ALLOW_IPS); otherwise this is the peer itself.
    """
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        # One host usually holds a whole /64: counting its addresses apart would hand it
        # billions of buckets.
        return str(ipaddress.ip_network((ip, 64), strict=False))
    return str(ip)


class BodyLimit:
    """Refuses request bodies over a size (413) before the application reads them."""

    def __init__(self, app: ASGIApp, default: int, per_path: dict[str, int]) -> None:
        self.app = app
        self.default = default
        self.per_path = per_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, counting its body's bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.default)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received = 0
        refused = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    # FastAPI turns other errors met while reading a body into a 400.
                    raise HTTPException(413, f"the request body is over {limit} bytes")
            return message

        try:
            await self.app(scope, counted, send)
        except HTTPException as exc:
            if not (refused and exc.status_code == 413):
                raise
            await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    await send_error(send, 413, "too_large", f"the request body is over {limit} bytes")


def error_body(kind: str, message: str) -> bytes:
    """The one error shape, as a JSON body."""
    return json.dumps({"error": {"type": kind, "message": message}}).encode()


async def send_error(
    send: Send, status: int, kind: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer with an error in the one shape, from outside the application."""
    body = error_body(kind, message)
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
