"""Three attacks that used to stall the server for everyone, each against a fresh real
server, while a well-behaved client asks new questions: its p50/p95 and errors.

1. An upload whose text makes sentence splitting slow (a file of "12. " repeated).
2. Three clients sending the longest allowed history (20 turns of 8,000 characters) in a loop.
3. Uploads without a work budget: a PDF of 3,000 identical pages, then 1,000 tiny files.

Usage: python bench/bench_abuse.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, ROOT, concurrent_clients, payloads, quantile, start_server, stop, table, wait_until

SEEDS = ROOT / "seeds"


def pdf_of_identical_pages(pages: int, line: str) -> bytes:
    """A PDF whose pages all show the same line (one shared content stream)."""
    stream = f"BT /F1 12 Tf 20 180 Td ({line}) Tj ET"
    kids = " ".join(f"{6 + i} 0 R" for i in range(pages))
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        "<< /Font << /F1 4 0 R >> >>",
    ]
    objects += ["<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 3 0 R /Resources 5 0 R >>"] * pages
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


async def health_gaps(url: str, seconds: float) -> float:
    """The longest /healthz took to answer (ms) while the attack ran."""
    worst = 0.0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=seconds) as http:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await http.get("/healthz")
            worst = max(worst, (time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.1)
    return worst


async def pathological_upload(url: str, seconds: float) -> str:
    text = "12. " * 50_000  # 200 KB
    async with httpx.AsyncClient(base_url=url, timeout=seconds) as http:
        started = time.perf_counter()
        try:
            response = await http.post("/api/documents", files={"files": ("dots.txt", text.encode(), "text/plain")})
            return f"{response.status_code} in {time.perf_counter() - started:.1f} s"
        except httpx.HTTPError:
            return f"no answer within {seconds:.0f} s"


async def long_histories(url: str, seconds: float) -> str:
    turn = "La visite de Lavrov à Pyongyang porte sur la coopération et la sécurité régionale. " * 100
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": turn[:8000]} for i in range(20)]
    done = itertools.count()
    deadline = time.monotonic() + seconds

    async def attacker(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for i in itertools.count():
                if time.monotonic() >= deadline:
                    return
                try:
                    await http.post("/api/answer", json={"question": f"Et pourquoi ? {n}-{i}", "history": history})
                    next(done)
                except httpx.HTTPError:
                    pass

    await asyncio.gather(*(attacker(n) for n in range(3)))
    return f"{next(done)} long-history requests answered"


async def unbudgeted_uploads(url: str, seconds: float) -> str:
    pdf = pdf_of_identical_pages(3000, "Rapport confidentiel de la société, page de garde identique.")
    tiny = [
        ("files", (f"note-{i}.txt", f"La note {i} parle du port de Rason.".encode(), "text/plain")) for i in range(1000)
    ]
    results = []
    async with httpx.AsyncClient(base_url=url, timeout=seconds) as http:
        for name, files in (
            ("3,000-page PDF", {"files": ("pages.pdf", pdf, "application/pdf")}),
            ("1,000 files", tiny),
        ):
            started = time.perf_counter()
            try:
                response = await http.post("/api/documents", files=files)
                results.append(f"{name}: {response.status_code} in {time.perf_counter() - started:.1f} s")
            except httpx.HTTPError:
                results.append(f"{name}: no answer within {seconds:.0f} s")
    return "; ".join(results)


async def measure(url: str, seconds: float, attack: Callable[[str, float], Awaitable[str]] | None) -> list[str]:
    # The well-behaved client asks new questions (never cached), one after another.
    tasks = [concurrent_clients(url, 1, seconds, payloads(unique=True)), health_gaps(url, seconds)]
    if attack is not None:
        tasks.append(attack(url, seconds))
    results = await asyncio.gather(*tasks)
    (latencies, errors), worst_health = results[0], results[1]
    outcome = results[2] if attack is not None else "-"
    return [
        str(len(latencies)),
        f"{quantile(latencies, 0.5):.0f}",
        f"{quantile(latencies, 0.95):.0f}",
        str(errors),
        f"{worst_health:.0f}",
        outcome,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each attack")
    args = parser.parse_args()
    attacks: list[tuple[str, Callable[[str, float], Awaitable[str]] | None]] = [
        ("none (baseline)", None),
        ("pathological upload", pathological_upload),
        ("3 clients, longest histories", long_histories),
        ("uploads without a budget", unbudgeted_uploads),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        seeded = Path(work) / "seeded"
        # Ingest once through the CLI, then copy the store for each attack.
        subprocess.run(
            [str(BIN / "assistant"), "ingest", str(SEEDS)],
            env={**os.environ, "ASSISTANT_DATA_DIR": str(seeded)},
            check=True,
            capture_output=True,
        )
        for name, attack in attacks:
            data = Path(work) / name.replace(" ", "-").replace(",", "")
            shutil.copytree(seeded, data)
            server, url = start_server(data)
            try:
                wait_until(f"{url}/readyz", server)
                rows.append([name, *asyncio.run(measure(url, args.seconds, attack))])
            finally:
                stop(server)
            print(f"{name}: done", flush=True)
    print()
    print(
        table(
            rows,
            ["attack", "good client's questions", "p50 ms", "p95 ms", "errors", "worst /healthz ms", "attack outcome"],
        )
    )


if __name__ == "__main__":
    main()
