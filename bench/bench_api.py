"""Benchmark: ingest throughput, server start-up, warm /api/answer latency, server memory,
and what a never-seen question costs beside a bare query embedding of it.

    .venv/bin/python bench/bench_api.py [--requests 500] [--copies 40]

Everything runs for real: the `assistant` command ingests into a fresh embedded store,
`assistant serve` starts uvicorn, and an HTTP client asks the question sets in turn. Then,
in this process, the same never-seen questions are embedded bare (the engine alone, no
cache) and answered by the chain, so that the chain's cost reads as a multiple of the one
step it cannot skip.
"""

from __future__ import annotations

import argparse
import itertools
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
from common import BIN, ROOT, made_up_word, quantile, question_items, rss_mib, start_server

# Imported after common (for the path) and before anything loads numpy: `assistant` pins BLAS.
from assistant.answering.chain import AnswerChain
from assistant.config import Settings
from assistant.models import Message
from assistant.runtime import build_runtime


def ingest(data: Path, paths: list[Path]) -> tuple[float, int]:
    # The model's throughput, not the vector cache's: every passage is embedded.
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data), "ASSISTANT_EMBEDDING_CACHE_ENTRIES": "0"}
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "assistant"), "ingest", *map(str, paths)], env=env, cwd=ROOT, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"ingest failed: {result.stderr}")
    embedded = int(re.search(r"\((\d+) embedded\)", result.stdout).group(1))
    return elapsed, embedded


def in_process(
    data: Path, warm_up: list[dict], unseen: list[dict], unseen_quick: list[dict]
) -> tuple[list[float], list[float], list[float]]:
    """Latencies (ms) of a bare query embedding, of the answer chain, and of the chain with
    quick decisions (ASSISTANT_QUICK_DECISIONS), question by question, in turn.

    The bare embedding calls the engine the chain uses, past the embedder's cache, so it
    leaves nothing the chain could reuse; the chains are warmed up on the original
    questions. The quick chain gets the same questions with other made-up words, so that
    no vector the first chain cached helps it."""
    runtime = build_runtime(Settings(data_dir=data))
    quick = AnswerChain(runtime.corpus, runtime.settings.model_copy(update={"quick_decisions": True}))
    engine = runtime.store.embeddings._model
    for payload in warm_up:
        runtime.chain.answer(payload["question"], [Message(**m) for m in payload["history"]])
        quick.answer(payload["question"], [Message(**m) for m in payload["history"]])
    bare, chain, quick_chain = [], [], []
    for payload, other in zip(unseen, unseen_quick, strict=True):
        history = [Message(**m) for m in payload["history"]]
        t0 = time.perf_counter()
        engine.query(payload["question"])
        bare.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        runtime.chain.answer(payload["question"], history)
        chain.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        quick.answer(other["question"], history)
        quick_chain.append((time.perf_counter() - t0) * 1000)
    return bare, chain, quick_chain


def spread(latencies: list[float]) -> str:
    """p50 and p95."""
    return f"p50 {quantile(latencies, 0.5):.1f} ms, p95 {quantile(latencies, 0.95):.1f} ms"


def ratios(latencies: list[float], bare: list[float]) -> str:
    """p50 over p50 and p95 over p95."""
    return (
        f"p50 {quantile(latencies, 0.5) / quantile(bare, 0.5):.1f}x, "
        f"p95 {quantile(latencies, 0.95) / quantile(bare, 0.95):.1f}x"
    )


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
            # Nothing cached helps; a made-up word, not a number (a number the documents
            # never state makes every passage contradict the question).
            unseen_payloads = [
                {**payload, "question": f"{payload['question']} {made_up_word(n)}"}
                for n, payload in zip(range(args.requests // 2), itertools.cycle(payloads))
            ]
            for unseen in unseen_payloads:
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
            beside = len(rows)  # where the in-process figures go: next to the API's
            current, peak = rss_mib(server.pid)
            rows.append(("server resident memory", f"{current:.0f} MiB (peak {peak:.0f} MiB)"))
        finally:
            client.close()
            server.terminate()
            server.wait(timeout=10)

        # In this process, once the server is gone (an embedded store has one owner): the
        # same never-seen questions, embedded bare and answered by the chain, in turn.
        unseen_quick = [
            {**payload, "question": f"{payload['question'].rsplit(' ', 1)[0]} {made_up_word(n + len(unseen_payloads))}"}
            for n, payload in enumerate(unseen_payloads)
        ]
        bare, chain, quick = in_process(served, payloads, unseen_payloads, unseen_quick)
        rows[beside:beside] = [
            (f"bare query embedding, the same new questions ({len(bare)})", spread(bare)),
            ("  POST /api/answer new / bare embedding", ratios(fresh, bare)),
            (f"chain.answer in-process, every question new ({len(chain)})", spread(chain)),
            ("  chain.answer new / bare embedding (target 2x, 3x)", ratios(chain, bare)),
            (f"  the same with quick decisions ({len(quick)})", spread(quick)),
            ("  quick decisions new / bare embedding", ratios(quick, bare)),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  figure")
    for name, figure in rows:
        print(f"{name:<{width}}  {figure}")


if __name__ == "__main__":
    main()
