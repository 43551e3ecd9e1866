"""Benchmark: ingest throughput, server start-up, warm /api/answer latency, server memory.

    .venv/bin/python bench/bench_api.py [--requests 500] [--copies 40]

Everything runs for real: the `assistant` command ingests into a fresh embedded store,
`assistant serve` starts uvicorn, and an HTTP client asks the question sets in turn.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, ROOT, quantile, question_items, rss_mib, start_server


def ingest(data: Path, paths: list[Path]) -> tuple[float, int]:
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data)}
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "assistant"), "ingest", *map(str, paths)], env=env, cwd=ROOT, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"ingest failed: {result.stderr}")
    embedded = int(re.search(r"\((\d+) embedded\)", result.stdout).group(1))
    return elapsed, embedded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="timed requests after warm-up")
    parser.add_argument("--copies", type=int, default=40, help="documents in the ingest-throughput corpus")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="assistant-bench-"))
    rows: list[tuple[str, str]] = []
    try:
        # Ingest throughput: the seed, then a corpus of distinct documents made of its paragraphs.
        seed = ROOT / "seeds" / "lavrov-visite-coree-du-nord.md"
        paragraphs = [p for p in seed.read_text(encoding="utf-8").split("\n\n") if not p.startswith("#")]
        corpus = work / "corpus"
        corpus.mkdir()
        for i in range(args.copies):
            rotated = paragraphs[i % len(paragraphs) :] + paragraphs[: i % len(paragraphs)]
            body = "\n\n".join(f"{p} (Édition {i}.)" for p in rotated)
            (corpus / f"doc{i:03}.md").write_text(f"# Document {i}\n\n{body}\n", encoding="utf-8")
        data = work / "data"
        seconds, passages = ingest(data, [ROOT / "seeds"])
        rows.append(("ingest seeds/ (cold, incl. start-up)", f"{passages} passages in {seconds:.2f} s"))
        seconds, passages = ingest(data, [corpus])
        rows.append(
            (
                f"ingest {args.copies} documents",
                f"{passages} passages in {seconds:.2f} s = {passages / seconds:.0f} passages/s",
            )
        )
        seconds, passages = ingest(data, [ROOT / "seeds", corpus])
        rows.append(("re-ingest unchanged", f"{passages} embedded, {seconds:.2f} s"))

        # The server, on the seed corpus alone.
        served = work / "served"
        ingest(served, [ROOT / "seeds"])
        started = time.perf_counter()
        server, url = start_server(served)
        client = httpx.Client(base_url=url, timeout=30)
        try:
            while True:
                try:
                    if client.post("/api/answer", json={"question": "Qui est Sergueï Lavrov ?"}).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.02)
            rows.append(("server ready (start to first answer)", f"{time.perf_counter() - started:.2f} s"))
            items = question_items()
            payloads = [{"question": i["question"], "history": i.get("history", [])} for i in items]
            for payload in payloads * 2:  # warm-up: every question twice
                client.post("/api/answer", json=payload)
            latencies = []
            for n in range(args.requests):
                t0 = time.perf_counter()
                response = client.post("/api/answer", json=payloads[n % len(payloads)])
                latencies.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
            rows.append(
                (
                    f"warm POST /api/answer, questions repeated ({args.requests}, 1 client)",
                    f"p50 {quantile(latencies, 0.5):.1f} ms, p95 {quantile(latencies, 0.95):.1f} ms, "
                    f"p99 {quantile(latencies, 0.99):.1f} ms, mean {statistics.fmean(latencies):.1f} ms",
                )
            )
            fresh = []
            for n in range(args.requests // 2):
                payload = payloads[n % len(payloads)]
                unseen = {**payload, "question": f"{payload['question']} ({n})"}  # nothing cached helps
                t0 = time.perf_counter()
                client.post("/api/answer", json=unseen).raise_for_status()
                fresh.append((time.perf_counter() - t0) * 1000)
            rows.append(
                (
                    f"POST /api/answer, every question new ({len(fresh)})",
                    f"p50 {quantile(fresh, 0.5):.1f} ms, p95 {quantile(fresh, 0.95):.1f} ms, "
                    f"p99 {quantile(fresh, 0.99):.1f} ms",
                )
            )
            current, peak = rss_mib(server.pid)
            rows.append(("server resident memory", f"{current:.0f} MiB (peak {peak:.0f} MiB)"))
        finally:
            client.close()
            server.terminate()
            server.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  figure")
    for name, figure in rows:
        print(f"{name:<{width}}  {figure}")


if __name__ == "__main__":
    main()
