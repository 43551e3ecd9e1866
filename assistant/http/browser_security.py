"""What the browser is told and checked for: allowed host names, cross-site writes, security headers.

Three pure ASGI middlewares, so that they answer before any route (or the static page) runs:

- ``AllowedHosts`` answers only to the host names the server is meant to be reached by, which
  defeats DNS rebinding (a page on another site whose name is made to resolve to this server);
- ``SameOriginWrites`` refuses requests that change something (POST, DELETE, ...) when a
  browser says they come from another site, unless CORS allows that site;
- ``SecurityHeaders`` adds the Content-Security-Policy and its companions to every response.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The chat page (web/) loads its module scripts, stylesheet, starters and answers from its
# own origin, and nothing else; it never runs inline script or style.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Hosts that stand for "every address": a server listening there is reached by a real address.
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})


def host_name(value: str) -> str | None:
    """The host name of a ``Host`` header or of an origin's ``host[:port]``, lowercased, without
    the port, the IPv6 brackets or a final dot; None when it cannot be read."""
    value = value.strip()
    # Nothing but a name and a port: "evil.example@localhost" must not read as localhost.
    if not value or any(c in value for c in "@/\\?#% \t"):
        return None
    try:
        name = urlsplit(f"//{value}").hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def allowed_hosts(names: Iterable[str], listen_host: str) -> frozenset[str]:
    """The host names to answer to: those given, and the address the server listens on."""
    allowed = {name if name == "*" else host_name(name) or name.lower() for name in names}
    if listen_host not in WILDCARD_ADDRESSES:
        allowed.add(host_name(listen_host) or listen_host.lower())
    return frozenset(allowed)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def send_error(send: Send, status: int, kind: str, message: str) -> None:
    """Answer with an error in the one shape clients see, without running the application."""
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AllowedHosts:
    """Refuses (400 ``invalid_host``) a request whose ``Host`` is not one of the server's names.

    The address the connection arrived on is always allowed: an address in ``Host`` means the
    browser was pointed at the address itself, not at a name another site's DNS can re-point.
    A request without ``Host`` (HTTP/1.0) names nothing to check and is let through.
    """

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.any = "*" in hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the host name, then pass the request on."""
        if scope["type"] not in ("http", "websocket") or self.any:
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"host")
        name = host_name(given) if given is not None else None
        if given is None or self._allowed(name, scope):
            await self.app(scope, receive, send)
            return
        shown = name or given
        shown = shown if len(shown) <= 100 else shown[:100] + "…"
        message = (
            f"this server does not answer to the host name {shown!r}; "
            "to serve it, add the name to ASSISTANT_ALLOWED_HOSTS (comma-separated, or * for any)"
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_error(send, 400, "invalid_host", message)

    def _allowed(self, name: str | None, scope: Scope) -> bool:
        if name is None:
            return False
        if name in self.hosts:
            return True
        # The socket's own address: an IP without brackets (or a socket path, matching no name).
        server = scope.get("server")
        return bool(server and server[0]) and name == str(server[0]).lower()


class SameOriginWrites:
    """Refuses (403 ``cross_site``) a request that changes something when a browser sent it from
    a page of another origin, unless that origin is allowed by CORS.

    Browsers send ``Origin`` with every POST and DELETE, and ``Sec-Fetch-Site`` too over HTTPS or
    to localhost; pages cannot forge either. A client that sends neither (curl, scripts, other
    servers) is not a browser carrying someone else's page, and goes through.
    """

    def __init__(self, app: ASGIApp, cors_origins: Iterable[str]) -> None:
        self.app = app
        self.cors_origins = frozenset(origin.rstrip("/").lower() for origin in cors_origins)
        self.any_origin = "*" in self.cors_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check where a changing request comes from, then pass it on."""
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await send_error(send, 403, "cross_site", refusal)

    def _refusal(self, scope: Scope) -> str | None:
        site = (_header(scope, b"sec-fetch-site") or "").lower()
        origin = _header(scope, b"origin")
        # The browser vouches for the page's origin, even behind a proxy that rewrites Host.
        if site == "same-origin":
            return None
        if origin is not None:
            if self._cors_allows(origin) or self._own(origin, scope):
                return None
            return (
                f"a page of {origin[:100]!r} cannot change anything on this server; "
                "to allow that site, add its origin to ASSISTANT_CORS_ORIGINS"
            )
        if site == "cross-site":
            return "a page of another site cannot change anything on this server"
        return None

    def _cors_allows(self, origin: str) -> bool:
        return self.any_origin or origin.rstrip("/").lower() in self.cors_origins

    @staticmethod
    def _own(origin: str, scope: Scope) -> bool:
        # Scheme aside (a proxy may end TLS), the page's origin is this server when its
        # host and port are the ones the request was sent to.
        host = _header(scope, b"host")
        if host is None or origin == "null":
            return False
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:
            return False
        return bool(netloc) and netloc.lower() == host.strip().lower()


class SecurityHeaders:
    """Adds the Content-Security-Policy, ``nosniff``, no framing and no referrer to every response.

    ``policies`` gives another CSP to the paths that need one (the API documentation pages);
    everything else gets ``PAGE_CSP``. A header the application set itself is left as it is.
    """

    def __init__(self, app: ASGIApp, policies: dict[str, str] | None = None) -> None:
        self.app = app
        self.policies = policies or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, adding the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)

    def _headers(self, path: str) -> list[tuple[bytes, bytes]]:
        policy = self.policies.get(path, PAGE_CSP)
        return [
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]
