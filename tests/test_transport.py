"""What `assistant serve` does before the application: whose forwarded address it believes,
how large and how slow a request may be, how many connections it serves, and what its logs
keep. Real `assistant serve` processes, spoken to over real sockets on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import os
import select
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from assistant.http.guards import RateLimiter, _address
from assistant.http.server import RedactSecrets
from tests.conftest import BIN, ROOT, ServerProcess, free_port, run_cli, stop, wait_http

KEY = "reader-secret-5b1e"
ADMIN = "admin-secret-90c7"
GUESS = "guess-4d1c9a"
# Long enough that a server which never closes a connection fails the test instead of hanging it.
PATIENCE_S = 20


@contextmanager
def serving(data: Path, **env: str) -> Iterator[ServerProcess]:
    server = ServerProcess(data, **env).start()
    try:
        yield server
    finally:
        server.stop()


def server_log(server: ServerProcess) -> str:
    return (server.data / f"server-{server.port}.log").read_text(encoding="utf-8", errors="replace")


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=PATIENCE_S)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def error_type(body: bytes) -> str:
    return json.loads(body)["error"]["type"]


# Forwarded headers and the rate limit


def test_forwarded_for_from_an_unnamed_peer_buys_no_fresh_bucket(tmp_path: Path) -> None:
    with serving(tmp_path, ASSISTANT_API_KEYS=KEY, ASSISTANT_RATE_LIMIT_PER_MINUTE="5") as server:
        statuses = [
            httpx.get(
                f"{server.url}/api/documents",
                headers={"authorization": f"Bearer {GUESS}-{i}", "x-forwarded-for": f"203.0.113.{i}"},
            ).status_code
            for i in range(8)
        ]
        log = server_log(server)
    assert statuses == [401] * 5 + [429] * 3
    assert "203.0.113." not in log, "the access log names the peer, not what it claims"


def test_forwarded_for_from_a_named_proxy_names_the_client(tmp_path: Path) -> None:
    env = {"ASSISTANT_FORWARDED_ALLOW_IPS": "127.0.0.1", "ASSISTANT_RATE_LIMIT_PER_MINUTE": "5"}
    with serving(tmp_path, ASSISTANT_API_KEYS=KEY, **env) as server:

        def guess(client: str) -> int:
            headers = {"authorization": f"Bearer {GUESS}", "x-forwarded-for": client}
            return httpx.get(f"{server.url}/api/documents", headers=headers).status_code

        clients = [guess(f"203.0.113.{i}") for i in range(8)]
        one_client = [guess("198.51.100.7") for _ in range(7)]
        log = server_log(server)
    assert clients == [401] * 8, "each client behind the proxy has a bucket of its own"
    assert one_client == [401] * 5 + [429] * 2
    assert "198.51.100.7" in log


def test_a_proxy_list_that_is_not_addresses_stops_the_server(tmp_path: Path) -> None:
    env = {"ASSISTANT_FORWARDED_ALLOW_IPS": "127.0.0.1, proxy.example", "ASSISTANT_DATA_DIR": str(tmp_path)}
    result = run_cli("serve", "--port", str(free_port()), env=env, timeout=60)
    assert result.returncode == 2
    assert "ASSISTANT_FORWARDED_ALLOW_IPS" in result.stderr and "proxy.example" in result.stderr


def test_the_bucket_table_stays_bounded_under_a_flood_of_clients() -> None:
    limiter = RateLimiter(per_minute=2, max_clients=100)
    for i in range(5000):
        limiter.check(f"ip:{i}")
    assert len(limiter) == 100


def test_a_throttled_client_stays_throttled_while_others_come_and_go() -> None:
    limiter = RateLimiter(per_minute=2, max_clients=100)
    assert [limiter.check("ip:throttled") > 0 for _ in range(3)] == [False, False, True]
    refused = []
    for i in range(2000):
        limiter.check(f"ip:{i}")
        if i % 50 == 0:
            # Seen again before 100 others: it keeps its bucket, empty as it was.
            refused.append(limiter.check("ip:throttled") > 0)
    assert len(limiter) == 100
    assert all(refused) and len(refused) == 40
    # Unseen for longer than the table holds, a client's bucket goes: it starts afresh.
    assert limiter.check("ip:0") == 0


def test_addresses_of_one_ipv6_network_share_a_bucket() -> None:
    def address(host: str) -> str:
        return _address(Request({"type": "http", "client": (host, 1234), "headers": []}))

    assert address("2001:db8:1:2::1") == address("2001:db8:1:2:ffff:ffff:ffff:9")
    assert address("2001:db8:1:2::1") != address("2001:db8:1:3::1")
    assert address("::ffff:192.0.2.1") == address("192.0.2.1") == "192.0.2.1"
    assert address("192.0.2.1") != address("192.0.2.2")


# Sizes, timeouts and the connection cap


def test_request_heads_over_the_cap_are_refused(tmp_path: Path) -> None:
    """With the default cap (32 KiB): 8 KB of headers pass, 100 KB get a 431, and a 20 MB head
    is refused long before its end (uvicorn's httptools parser read it all and answered 200)."""
    with serving(tmp_path, ASSISTANT_RATE_LIMIT_PER_MINUTE="0") as server:
        small = httpx.get(f"{server.url}/healthz", headers={"x-filler": "a" * 8_000})
        large = httpx.get(f"{server.url}/healthz", headers={"x-filler": "a" * 100_000})
        huge = 20 * 1024 * 1024
        sent = 0
        answer = b""
        with connect(server.port) as sock:
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: ")
                while sent < huge:
                    sock.sendall(b"a" * 65536)
                    sent += 65536
                sock.sendall(b"\r\n\r\n")
            except OSError:
                pass  # the server closed the connection: the rest was never read
            # The refusal may be reset away before it can be read.
            with suppress(ConnectionResetError):
                answer = read_until_closed(sock)
        after = httpx.get(f"{server.url}/healthz")
    assert large.status_code == 431 and large.json()["error"]["type"] == "too_large"
    assert sent < huge
    if answer:
        status, _, body = parse(answer)
        assert status == 431 and error_type(body) == "too_large"
    assert small.status_code == after.status_code == 200
    assert "server" not in small.headers


def test_idle_slow_and_surplus_connections_are_closed(tmp_path: Path) -> None:
    env = {
        "ASSISTANT_HEADER_TIMEOUT_S": "2",
        "ASSISTANT_READ_TIMEOUT_S": "2",
        "ASSISTANT_KEEP_ALIVE_S": "1",
        "ASSISTANT_MAX_CONNECTIONS": "3",
        "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0",
    }
    with serving(tmp_path, **env) as server:
        # A connection that never sends a byte.
        with connect(server.port) as idle:
            assert read_until_closed(idle) == b""

        # A head sent a byte at a time, a little faster than any idle timer: still cut off.
        with connect(server.port) as trickle:
            trickle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            closed = False
            for _ in range(80):
                readable, _, _ = select.select([trickle], [], [], 0.25)
                try:
                    if readable:
                        closed = trickle.recv(1) == b""
                        break
                    trickle.sendall(b"x")
                except (ConnectionResetError, BrokenPipeError):
                    # Closed by the server with a byte of ours on its way: the kernel
                    # answers that byte with a reset, not an end of stream.
                    closed = True
                    break
            assert closed, "the server kept a head that never ends"

        # A body that stops halfway: 408, then the connection closes.
        with connect(server.port) as stalled:
            stalled.sendall(
                b"POST /api/answer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 200\r\n\r\n{"question": "Qui'
            )
            status, _, body = parse(read_until_closed(stalled))
            assert status == 408 and error_type(body) == "timeout"

        # A kept-alive connection is closed once idle.
        with connect(server.port) as kept:
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, _, _ = parse(read_until_closed(kept))
            assert status == 200

        # Three connections held open fill the server: a request on a fourth gets 503.
        held = [connect(server.port) for _ in range(3)]
        with connect(server.port) as fourth:
            fourth.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, body = parse(read_until_closed(fourth))
        assert status == 503 and error_type(body) == "overloaded" and headers["retry-after"] == "1"
        # Past twice the cap, a connection is closed unanswered.
        held += [connect(server.port) for _ in range(3)]
        with connect(server.port) as surplus:
            try:
                surplus.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                dropped = read_until_closed(surplus)
            except (ConnectionResetError, BrokenPipeError):
                dropped = b""
        assert dropped == b""
        # The held connections sent nothing: each is closed at the head deadline.
        for sock in held:
            with sock:
                assert read_until_closed(sock) == b""
        after = httpx.get(f"{server.url}/healthz")
    assert after.status_code == 200


# Logs


def test_keys_never_reach_the_log_whatever_the_channel(tmp_path: Path) -> None:
    env = {"ASSISTANT_ADMIN_KEYS": ADMIN, "ASSISTANT_LOG_LEVEL": "debug", "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0"}
    with serving(tmp_path, ASSISTANT_API_KEYS=KEY, **env) as server:
        url = f"{server.url}/api/documents"
        statuses = [
            httpx.get(f"{url}?api_key={GUESS}").status_code,
            httpx.get(f"{url}?lang=fr&api_key={KEY}").status_code,
            httpx.get(url, headers={"authorization": f"Bearer {GUESS}"}).status_code,
            httpx.get(url, headers={"authorization": f"Bearer {ADMIN}", "x-api-key": ADMIN}).status_code,
            httpx.get(f"{url}/{KEY}", headers={"authorization": f"Bearer {KEY}"}).status_code,
        ]
        log = server_log(server)
    assert statuses[:4] == [401, 401, 401, 200]
    for secret in (GUESS, KEY, ADMIN):
        assert secret not in log
    # The requests are in the log, without their keys.
    assert '"GET /api/documents?api_key=*** HTTP/1.1" 401' in log
    assert '"GET /api/documents?lang=***&api_key=*** HTTP/1.1" 401' in log
    assert '"GET /api/documents/*** HTTP/1.1"' in log


def test_redaction_covers_messages_arguments_and_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([KEY, "key with/slash"]))
    logger = logging.getLogger("tests.transport.redaction")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    try:
        logger.warning("refused %s", "key%20with%2Fslash")
        logger.warning("headers: {'authorization': 'Bearer %s'}", GUESS)
        try:
            raise ValueError(f"unknown key {KEY}")
        except ValueError:
            logger.exception("while checking")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "refused ***" in text and "Bearer ***" in text and "ValueError: unknown key ***" in text
    for secret in (KEY, GUESS, "with%2Fslash"):
        assert secret not in text


def test_several_workers_get_the_same_limits_and_logs(tmp_path: Path, chroma_server: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ASSISTANT_CHROMA_URL": chroma_server,
        "ASSISTANT_COLLECTION": "transport",
        "ASSISTANT_API_KEYS": KEY,
        "ASSISTANT_MAX_HEADER_BYTES": "4096",
        "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0",
    }
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "assistant"), "serve", "--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"{url}/readyz", process, timeout=120)
            ready = httpx.get(f"{url}/readyz")
            large = httpx.get(f"{url}/healthz", headers={"x-filler": "a" * 8_000})
            guessed = httpx.get(f"{url}/api/documents?api_key={GUESS}")
        finally:
            stop(process)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert "server" not in ready.headers
    assert large.status_code == 431 and large.json()["error"]["type"] == "too_large"
    assert guessed.status_code == 401
    assert GUESS not in text and KEY not in text
    assert "/api/documents?api_key=***" in text
