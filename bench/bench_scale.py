"""Benchmark at scale: ingest, latency, throughput, memory and quality against corpus size,
with the store embedded, behind a Chroma server, and behind it searched in it ("store":
HNSW and the lexical file, as from ASSISTANT_SEARCH_IN_STORE_FROM passages).

    .venv/bin/python bench/bench_scale.py [--sizes 1000 10000 100000] [--modes ...] [--work DIR]

The corpus is real French documentation from Debian packages (see bench/corpus.py), grown
in steps: the corpus folder holds the documents of the size being built, and each size's
store starts from a copy of the previous one, so only new documents are embedded. At each
size, for each mode, a real `assistant serve` (and `chroma run` in server mode) is started
and measured:

- ingest throughput, and the time to re-ingest the unchanged corpus;
- start-up (to /readyz), then one client: `/api/answer` latency on questions asked before
  (vector cache warm) and on never-seen questions;
- 1, 4, 16 and 64 concurrent clients asking never-seen questions: throughput and p95;
- resident memory of the API server (and of the Chroma server);
- answer quality on the question sets, with the large corpus around the seed article;
- searched in the store: the first worker's ready time (building the lexical file), recall
  of the true 20 nearest against exact search, and answer quality searched there.

Figures are kept in DIR/results.json, so a run can be resumed or re-measured without
embedding again; the tables are printed as Markdown, and the latency curve is drawn in
DIR/latency.svg. 100,000 passages take about an hour to embed on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import corpus
from common import (
    BIN,
    ROOT,
    concurrent,
    line_chart,
    payloads,
    quantile,
    question_items,
    rss_mib,
    sequential,
    start_chroma,
    start_server,
    stop,
    table,
    wait_until,
)

# "store": behind a Chroma server and searched in it (HNSW, and the lexical file), as a
# worker does from ASSISTANT_SEARCH_IN_STORE_FROM passages; the others search in memory.
MODES = ("embedded", "server", "store")


def run_ingest(data: Path, folder: Path, log: Path) -> dict:
    """`assistant ingest` as a child process: seconds, passages embedded, peak memory."""
    # The model's throughput, not the vector cache's: every passage is embedded.
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data), "ASSISTANT_EMBEDDING_CACHE_ENTRIES": "0"}
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "assistant"), "ingest", str(folder)], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = log.read_text()
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        sys.exit(f"ingest failed, see {log}")
    embedded = re.search(r"\((\d+) embedded\)", output)
    return {
        "seconds": round(seconds, 1),
        "embedded": int(embedded.group(1)) if embedded else 0,
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
    }


def build(work: Path, size: int, results: dict) -> dict:
    """Grow the corpus to `size` passages and ingest it into this size's store."""
    figures = results.setdefault(str(size), {})
    documents, passages = corpus.fit(work / "corpus", size)
    figures.update(documents=documents, passages=passages)
    data = work / f"data-{size}"
    if "ingest" in figures and "reingest" in figures:
        return figures
    smaller = sorted((int(k) for k in results if int(k) < size and (work / f"data-{k}").is_dir()), reverse=True)
    if smaller and not data.exists():
        shutil.copytree(work / f"data-{smaller[0]}", data)
    print(f"[{size}] ingesting {documents} documents, {passages} passages", flush=True)
    if "ingest" not in figures:
        figures["ingest"] = run_ingest(data, work / "corpus", work / f"ingest-{size}.log")
    figures["reingest"] = run_ingest(data, work / "corpus", work / f"reingest-{size}.log")
    return figures


def measure(data: Path, mode: str, args: argparse.Namespace) -> dict:
    """Start the servers of one mode over a store and measure them."""
    chroma = None
    overrides = {}
    first_ready = None
    if mode in ("server", "store"):
        chroma, chroma_url = start_chroma(data)
        overrides["chroma_url"] = chroma_url
    if mode == "store":
        overrides["search_in_store_from"] = "1"
        # The first worker brings the lexical file up to date; the measured one finds it so.
        lexicon = list(data.glob("*.lexicon.sqlite3*"))
        for path in lexicon:
            path.unlink()
        server, url = start_server(data, **overrides)
        try:
            first_ready = wait_until(f"{url}/readyz", server)
        finally:
            stop(server)
    server, url = start_server(data, **overrides)
    try:
        ready = wait_until(f"{url}/readyz", server)
        asked_before = payloads(unique=False)
        never_seen = payloads(unique=True)
        sequential(url, asked_before, 2 * len(question_items()))  # warm-up: every question, twice
        repeated = sequential(url, asked_before, args.requests)
        fresh = sequential(url, never_seen, args.requests)
        figures = {
            "ready_s": round(ready, 1),
            "repeated": _quantiles(repeated),
            "new": _quantiles(fresh),
            "rss_mib": round(rss_mib(server.pid)[0]),
        }
        if chroma:
            figures["chroma_rss_mib"] = round(rss_mib(chroma.pid)[0])
        if first_ready is not None:
            figures["first_ready_s"] = round(first_ready, 1)
            figures["recall"] = recall(chroma_url, args.widths)
            figures["quality"] = quality(
                data, {"ASSISTANT_CHROMA_URL": chroma_url, "ASSISTANT_SEARCH_IN_STORE_FROM": "1"}
            )
        figures["clients"] = {}
        for clients in args.clients:
            latencies, errors = concurrent(url, clients, args.seconds, never_seen)
            figures["clients"][str(clients)] = {
                "per_s": round(len(latencies) / args.seconds, 1),
                "p95_ms": round(quantile(latencies, 0.95)),
                "errors": errors,
            }
        figures["rss_after_load_mib"] = round(rss_mib(server.pid)[0])
        return figures
    finally:
        stop(server)
        if chroma:
            stop(chroma)


def recall(chroma_url: str, widths: list[int]) -> dict:
    """Recall@20 of the store's HNSW index against exact search, for the validation
    split's questions (see bench_large.recall)."""
    from bench_large import recall as hnsw_recall

    from assistant.config import Settings
    from vectorstore.embeddings import E5Embeddings

    embedder = E5Embeddings()
    rows = (ROOT / "tests" / "eval" / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    queries = np.asarray([embedder.query_vector(json.loads(row)["question"]) for row in rows[:60]], dtype=np.float32)
    return hnsw_recall(chroma_url, queries, widths, Settings().collection)


def quality(data: Path, env: dict[str, str] | None = None) -> dict:
    """`assistant eval` against this store, over the held-out questions that keep their
    meaning in any corpus around the seed: the locked test split's questions about the seed
    or off every document, and the shared dev set. (Nothing was fitted on either.)"""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as file:
        file.write("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in question_items(("test",))))
    questions = Path(file.name)
    result = subprocess.run(
        [str(BIN / "assistant"), "eval", "--json", str(questions)],
        env={**os.environ, "ASSISTANT_DATA_DIR": str(data), **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    questions.unlink()
    summary = json.loads(result.stdout)["summary"]
    return {k: summary[k] for k in ("questions", "facts", "citation", "refusal")}


def _quantiles(latencies: list[float]) -> dict:
    return {f"p{int(q * 100)}_ms": round(quantile(latencies, q), 1) for q in (0.5, 0.95, 0.99)}


def report(results: dict, modes: list[str]) -> str:
    """The figures as Markdown tables."""
    sizes = sorted(results, key=int)
    out = []
    rows = []
    for s in sizes:
        f = results[s]
        if "ingest" not in f:
            continue
        ing, re_ = f["ingest"], f["reingest"]
        rate = f"{ing['embedded'] / ing['seconds']:.0f}" if ing["embedded"] else "-"
        rows.append(
            [
                f"{f['passages']:,}",
                f"{f['documents']:,}",
                f"{ing['embedded']:,} in {ing['seconds']:.0f} s",
                rate,
                f"{ing['peak_rss_mib']}",
                f"{re_['seconds']:.1f} s ({re_['embedded']} embedded)",
            ]
        )
    header = ["passages", "documents", "newly embedded", "passages/s", "ingest peak MiB", "re-ingest unchanged"]
    out.append(table(rows, header))
    rows = []
    for s in sizes:
        for mode in modes:
            m = results[s].get(mode)
            if not m:
                continue
            memory = f"{m['rss_mib']}" + (f" + Chroma {m['chroma_rss_mib']}" if "chroma_rss_mib" in m else "")
            rows.append(
                [
                    f"{results[s]['passages']:,}",
                    mode,
                    f"{m['ready_s']} s",
                    f"{m['new']['p50_ms']} / {m['new']['p95_ms']}",
                    f"{m['repeated']['p50_ms']} / {m['repeated']['p95_ms']}",
                    memory,
                ]
            )
    header = ["passages", "store", "ready", "new question p50 / p95 ms", "repeated p50 / p95 ms", "RSS MiB"]
    out.append(table(rows, header))
    rows = []
    clients = sorted({c for s in sizes for mode in modes for c in results[s].get(mode, {}).get("clients", {})}, key=int)
    for s in sizes:
        for mode in modes:
            m = results[s].get(mode)
            if not m:
                continue
            cells = [f"{m['clients'][c]['per_s']}/s, {m['clients'][c]['p95_ms']} ms" for c in clients]
            errors = sum(v["errors"] for v in m["clients"].values())
            rows.append([f"{results[s]['passages']:,}", mode, *cells, str(errors)])
    header = ["passages", "store", *(f"{c} clients: answers/s, p95" for c in clients), "errors"]
    out.append(table(rows, header))
    rows = [
        [
            f"{results[s]['passages']:,}",
            "memory",
            *(str(results[s]["quality"][k]) for k in ("facts", "citation", "refusal")),
        ]
        for s in sizes
        if "quality" in results[s]
    ]
    rows += [
        [
            f"{results[s]['passages']:,}",
            "store",
            *(str(results[s]["store"]["quality"][k]) for k in ("facts", "citation", "refusal")),
        ]
        for s in sizes
        if "quality" in results[s].get("store", {})
    ]
    out.append(table(rows, ["passages", "searched in", "facts", "citation contains support", "correct refusals"]))
    rows = [
        [
            f"{results[s]['passages']:,}",
            f"{results[s]['store']['first_ready_s']} s",
            *(f"{w}: {r['recall']}" for w, r in results[s]["store"]["recall"].items()),
        ]
        for s in sizes
        if "recall" in results[s].get("store", {})
    ]
    if rows:
        out.append(table(rows, ["passages", "first worker ready (building the file)", "recall@20 by search width"]))
    return "\n\n".join(out)


def plot(results: dict, modes: list[str], path: Path) -> None:
    """Latency (never-seen questions, one client) against corpus size, as an SVG line chart."""
    sizes = [s for s in sorted(results, key=int) if any(mode in results[s] for mode in modes)]
    series = []
    colours = {"embedded": "#1f6feb", "server": "#d2691e", "store": "#2e8b57"}
    for mode in modes:
        for q, dash in (("p50_ms", ""), ("p95_ms", "6 4")):
            points = [(results[s]["passages"], results[s][mode]["new"][q]) for s in sizes if mode in results[s]]
            series.append((f"{mode} {q[:3]}", colours.get(mode, "#555"), dash, points))
    chart = line_chart(series, "/api/answer latency, ms (new questions, 1 client)")
    if chart:
        path.write_text(chart, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="corpus sizes, passages")
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/assistant-scale"), help="corpora and stores")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--requests", type=int, default=300, help="one-client requests per measure")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--widths", type=int, nargs="+", default=[400], help="HNSW search widths for recall (store)")
    parser.add_argument("--seconds", type=float, default=15, help="duration of each concurrency level")
    parser.add_argument("--remeasure", action="store_true", help="measure again sizes already measured")
    args = parser.parse_args()
    if not corpus.available():
        sys.exit("no Debian French documentation installed; see bench/corpus.py")
    args.work.mkdir(parents=True, exist_ok=True)
    results_path = args.work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=2))

    for size in sorted(args.sizes):
        figures = build(args.work, size, results)
        save()
        data = args.work / f"data-{size}"
        for mode in args.modes:
            if mode not in figures or args.remeasure:
                print(f"[{size}] measuring, store {mode}", flush=True)
                figures[mode] = measure(data, mode, args)
                save()
        if "quality" not in figures or args.remeasure:
            figures["quality"] = quality(data)
            save()
    shown = {str(s): results[str(s)] for s in sorted(args.sizes) if str(s) in results}
    print(report(shown, args.modes))
    plot(shown, args.modes, args.work / "latency.svg")
    print(f"\nlatency curve: {args.work / 'latency.svg'}")


if __name__ == "__main__":
    main()
