"""Load benchmark: concurrent clients on /api/answer, and memory over many requests.

    .venv/bin/python bench/bench_load.py [--clients 16] [--seconds 60] [--sequential 5000] [--unique]

Starts `assistant serve` over a fresh store holding seeds/ (rate limit off), then:
1. N concurrent clients ask questions in a loop for S seconds: throughput, errors, p50/p95/p99;
2. one client sends R requests in a row: resident memory after warm-up and at the end.

Questions come from tests/eval (and ../shared/eval/dev.jsonl). With --unique every
request is a question the server has not seen (a question plus a varying suffix), so
no cache helps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, ROOT, concurrent, payloads, quantile, rss_mib, start_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--sequential", type=int, default=5000)
    parser.add_argument("--unique", action="store_true", help="never repeat a question")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="assistant-load-"))
    data = work / "data"
    ingest = [str(BIN / "assistant"), "ingest"]
    subprocess.run(
        ingest, env={**os.environ, "ASSISTANT_DATA_DIR": str(data)}, cwd=ROOT, check=True, capture_output=True
    )
    server, url = start_server(data)
    rows: list[tuple[str, str]] = []
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        source = payloads(args.unique)
        concurrent(url, 2, 5, source)  # warm-up
        latencies, errors = concurrent(url, args.clients, args.seconds, source)
        count = len(latencies)
        label = f"{args.clients} clients, {args.seconds:g} s" + (" (unique questions)" if args.unique else "")
        p50, p95, p99 = (quantile(latencies, q) for q in (0.5, 0.95, 0.99))
        figures = f"{count} requests, {count / args.seconds:.1f}/s, {errors} errors, "
        rows.append((label, figures + f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms"))
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(200):
                http.post("/api/answer", json=next(source))
            before = rss_mib(server.pid)[0]
            failures = 0
            started = time.perf_counter()
            for _ in range(args.sequential):
                failures += http.post("/api/answer", json=next(source)).status_code != 200
            elapsed = time.perf_counter() - started
            after = rss_mib(server.pid)[0]
        growth = (after / before - 1) * 100
        memory = f"RSS {before:.0f} -> {after:.0f} MiB ({growth:+.1f} %)"
        rows.append((f"{args.sequential} requests in a row", f"{elapsed:.0f} s, {failures} errors, {memory}"))
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    for name, figure in rows:
        print(f"{name:<{width}}  {figure}")


if __name__ == "__main__":
    main()
