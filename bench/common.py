"""What the benchmarks share: a free port, quantiles, a process's resident memory."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of the values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory of a process and its peak, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    current = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return current, peak


def start_server(data_dir: Path, **env_overrides: str) -> tuple[subprocess.Popen[bytes], str]:
    """`assistant serve` over a data folder, quiet, without a rate limit (the benchmark is
    one client measuring, not a client to limit) or vector cache; returns the process and its URL.

    Keyword arguments are further `ASSISTANT_*` settings, e.g. ``chroma_url``."""
    port = free_port()
    env = {
        **os.environ,
        "ASSISTANT_DATA_DIR": str(data_dir),
        "ASSISTANT_LOG_LEVEL": "warning",
        "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0",
        # Uploads measured as the model's work: none read back from an earlier run's vectors.
        "ASSISTANT_EMBEDDING_CACHE_ENTRIES": "0",
        **{f"ASSISTANT_{name.upper()}": value for name, value in env_overrides.items()},
    }
    server = subprocess.Popen(
        [str(BIN / "assistant"), "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, f"http://127.0.0.1:{port}"


def start_chroma(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`chroma run` over a persistent folder; returns the process and its URL once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "chroma"), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(f"{url}/api/v2/heartbeat", server)
    return server, url


def wait_until(url: str, process: subprocess.Popen[bytes], timeout: float = 600) -> float:
    """Poll a URL until it answers 200; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            sys.exit(f"the process serving {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    sys.exit(f"{url} did not answer in {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server, killing it if it does not stop by itself."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


SEED_DOCUMENT = "lavrov-visite-coree-du-nord.md"


def question_items(splits: tuple[str, ...] | None = None) -> list[dict]:
    """The questions about the seed article (and those off every document) from
    tests/eval/*.jsonl (or only the named splits), once each, and ../shared/eval/dev.jsonl
    when present: the ones that keep their meaning whatever corpus surrounds the seed."""
    folder = ROOT / "tests" / "eval"
    chosen = sorted(folder.glob("*.jsonl")) if splits is None else [folder / f"{name}.jsonl" for name in splits]
    files = [*chosen, ROOT.parent / "shared" / "eval" / "dev.jsonl"]
    items: dict[str, dict] = {}
    for path in files:
        for number, line in enumerate(path.read_text().splitlines() if path.exists() else [], start=1):
            item = json.loads(line) if line.strip() else None
            if item and item.get("document", SEED_DOCUMENT) in (SEED_DOCUMENT, "none"):
                items.setdefault(item.get("id", f"{path.stem}:{number}"), item)
    return list(items.values())


def payloads(unique: bool) -> Iterator[dict]:
    """Request bodies for /api/answer, endlessly: the question sets in turn, or, with
    `unique`, each question with a varying suffix so that no cache ever helps.

    The suffix is a made-up word ("zqab"): a number would match numbers in the documents
    and change which passages are retrieved, which real questions do not do."""
    base = [{"question": i["question"], "history": i.get("history", [])} for i in question_items()]
    if not unique:
        return itertools.cycle(base)
    return (
        {**base[n % len(base)], "question": f"{base[n % len(base)]['question']} {made_up_word(n)}"}
        for n in itertools.count()
    )


def made_up_word(n: int) -> str:
    """A word no document holds, different for every ``n`` ("zqa", "zqb"…): appended to a
    question, it defeats every cache without changing what is retrieved, as a number would."""
    letters = ""
    while True:
        n, digit = divmod(n, 26)
        letters += "abcdefghijklmnopqrstuvwxyz"[digit]
        if not n:
            return "zq" + letters


async def concurrent_clients(url: str, clients: int, seconds: float, source: Iterator[dict]) -> tuple[list[float], int]:
    """N clients asking questions in a loop for S seconds, inside a running event loop."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await http.post("/api/answer", json=next(source))
                    errors += response.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors


def concurrent(url: str, clients: int, seconds: float, source: Iterator[dict]) -> tuple[list[float], int]:
    """N clients asking questions in a loop for S seconds: every latency (ms) and the error count."""
    return asyncio.run(concurrent_clients(url, clients, seconds, source))


def sequential(url: str, source: Iterator[dict], requests: int) -> list[float]:
    """One client asking `requests` questions in a row: every latency in ms."""
    latencies = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(requests):
            started = time.perf_counter()
            http.post("/api/answer", json=next(source)).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def line_chart(series: list[tuple[str, str, str, list[tuple[float, float]]]], y_label: str) -> str | None:
    """An SVG line chart against corpus size (log scale): each series is (label, colour,
    dash pattern, points). None with fewer than two sizes."""
    import math

    xs = [math.log10(x) for *_, pts in series for x, _ in pts]
    if len(set(xs)) < 2:
        return None
    top = max(y for *_, pts in series for _, y in pts) * 1.15
    x0, x1 = min(xs), max(xs)
    width, height, left, bottom = 640, 380, 60, 50

    def px(x: float, y: float) -> tuple[float, float]:
        return (
            left + (math.log10(x) - x0) / (x1 - x0 or 1) * (width - left - 50),
            height - bottom - y / top * (height - bottom - 20),
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="12"><rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">passages in the store (log scale)</text>',
        f'<text x="14" y="{(height - bottom) / 2}" transform="rotate(-90 14 {(height - bottom) / 2})" '
        f'text-anchor="middle">{y_label}</text>',
    ]
    for size in sorted({x for *_, pts in series for x, _ in pts}):
        x, y = px(size, 0)
        parts.append(f'<text x="{x}" y="{y + 16}" text-anchor="middle">{int(size):,}</text>')
    step = 10 ** math.floor(math.log10(top / 2)) if top > 2 else 1
    tick = 0.0
    while tick <= top:
        x, y = px(10**x0, tick)
        parts.append(f'<line x1="{left}" x2="{width - 50}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{tick:g}</text>')
        tick += step
    for n, (label, colour, dash, points) in enumerate(series):
        coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(x, y) for x, y in points))
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
        )
        parts.append(
            f'<text x="{left + 10}" y="{24 + 16 * n}" fill="{colour}">{"- - " if dash else "—— "}{label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
