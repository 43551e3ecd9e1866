"""Benchmark of search in the store, on corpora made without the embedder.

    .venv/bin/python bench/bench_large.py [--sizes 100000 1000000] [--work DIR]

Vectors are made from the real ones of the seed and the test articles (each a blend of two
of them and noise, normalised, so that the corpus has the clustered shape real embeddings
have) and texts from their words; the seed and the test articles themselves are ingested as
they are, so the question bank can be asked (a store filled before they were is kept as it
is). Everything is written to a real Chroma server. At each size:

- Chroma's HNSW index against exact search: recall of the true 20 nearest for real
  question vectors, at several search widths (``ef_search``);
- a worker (a process of its own, as `assistant serve` builds it) over the store: time to
  ready, resident memory, and never-seen question latency p50/p95 from 1, 4 and 16 threads;
- with ``--bank``, the question bank's validation figures searched in the store and in
  memory (at 100,000 passages).

Figures go to DIR/results.json and bench/results-large.json, charts of memory and latency
against size to bench/large-memory.svg and bench/large-latency.svg, and a table is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import BIN, ROOT, line_chart, quantile, start_chroma, stop, table

PER_DOCUMENT = 30
SEED = 7


def real_material() -> tuple[np.ndarray, list[str]]:
    """Real passage vectors and words: the seed and the test articles, embedded once."""
    from vectorstore.documents import discover, load
    from vectorstore.embeddings import E5Embeddings, embedding_text
    from vectorstore.ingest import citable_passages
    from vectorstore.language import words

    texts, titles = [], []
    for file, root in discover([ROOT / "seeds", ROOT / "tests" / "eval" / "documents"])[0]:
        document = load(file, root)
        for passage in citable_passages(document):
            texts.append(passage.text)
            titles.append(passage.title)
    embedder = E5Embeddings()
    vectors = np.asarray(embedder.embed_documents([embedding_text(t, x) for t, x in zip(titles, texts, strict=True)]))
    vocabulary = sorted({w for t in texts for w in words(t) if len(w) > 3})
    return vectors.astype(np.float32), vocabulary


def synthetic(count: int, base: np.ndarray, vocabulary: list[str], rng: np.random.Generator):
    """``count`` vectors and texts shaped like the real ones."""
    i = rng.integers(0, len(base), count)
    j = rng.integers(0, len(base), count)
    w = rng.uniform(0.2, 0.8, (count, 1)).astype(np.float32)
    vectors = w * base[i] + (1 - w) * base[j] + rng.normal(0, 0.03, (count, base.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Zipf-like word choice: a few words in many passages, most in few.
    ranks = np.minimum(rng.zipf(1.3, (count, 40)) - 1, len(vocabulary) - 1)
    texts = [" ".join(vocabulary[r] for r in row) + "." for row in ranks]
    return vectors, texts


def fill(url: str, size: int, base: np.ndarray, vocabulary: list[str]) -> float:
    """Write the seed and synthetic passages up to ``size`` into the server; seconds spent."""
    from assistant.config import Settings
    from assistant.runtime import build_store
    from vectorstore.chunking import Passage
    from vectorstore.ingest import ingest_paths
    from vectorstore.store import DocumentRecord

    store = build_store(Settings(chroma_url=url, collection="large"))
    started = time.perf_counter()
    if not store.documents():
        assert ingest_paths(store, [ROOT / "seeds", ROOT / "tests" / "eval" / "documents"]).ok
    rng = np.random.default_rng(SEED + store.count())
    have = store.count()
    batch = PER_DOCUMENT * 200
    while have < size:
        n = min(batch, size - have)
        vectors, texts = synthetic(n, base, vocabulary, rng)
        passages, records = [], []
        for d in range(0, n, PER_DOCUMENT):
            doc_id = f"synthetic/{have + d:08d}"
            part = texts[d : d + PER_DOCUMENT]
            offset = 0
            for k, text in enumerate(part):
                passages.append(
                    Passage(doc_id, f"Document {have + d}", None, offset, offset + len(text), text, "text", k, k)
                )
                offset += len(text) + 2
            record = DocumentRecord(doc_id, f"Document {have + d}", doc_id, "", doc_id, len(part), "", "fr")
            records.append((record, "\n\n".join(part)))
        store.upsert_passages(passages, vectors)
        store.put_documents(records)
        have += n
        print(f"  {have} passages, {time.perf_counter() - started:.0f} s", flush=True)
    return time.perf_counter() - started


def recall(url: str, queries: np.ndarray, widths: list[int], collection: str = "large") -> dict:
    """Recall@20 of the HNSW index against exact search, per ef_search, and query ms."""
    import chromadb

    from assistant.config import Settings
    from assistant.runtime import build_store

    store = build_store(Settings(chroma_url=url, collection=collection))
    client = chromadb.HttpClient(host="127.0.0.1", port=int(url.rsplit(":", 1)[1]))
    collection = client.get_collection(store.passages_name)
    ids, rows = [], []
    for offset in range(0, store.count(), 5000):
        page = collection.get(include=["embeddings"], limit=5000, offset=offset)
        ids.extend(page["ids"])
        rows.append(np.asarray(page["embeddings"], dtype=np.float32))
    matrix = np.concatenate(rows)
    truth = [set(np.array(ids)[np.argsort(-(matrix @ q))[:20]]) for q in queries]
    del matrix
    results = {}
    for width in widths:
        collection.modify(configuration={"hnsw": {"ef_search": width}})
        found, times = [], []
        for q, true in zip(queries, truth, strict=True):
            started = time.perf_counter()
            hit = collection.query(query_embeddings=[q], n_results=20, include=[])
            times.append((time.perf_counter() - started) * 1000)
            found.append(len(true & set(hit["ids"][0])) / 20)
        results[str(width)] = {"recall": round(float(np.mean(found)), 4), "p50_ms": round(quantile(times, 0.5), 1)}
        print(f"  ef_search {width}: recall@20 {results[str(width)]['recall']}, {results[str(width)]['p50_ms']} ms")
    return results


SWEEP = ((16, 100, 100), (16, 200, 200), (32, 200, 200), (32, 400, 400), (48, 400, 400))


def sweep(
    url: str,
    size: int,
    base: np.ndarray,
    vocabulary: list[str],
    queries: np.ndarray,
    settings: tuple[tuple[int, int, int], ...] = SWEEP,
) -> dict:
    """Recall@20 and query time of HNSW settings, each on a collection of ``size`` bare
    synthetic vectors of its own (the settings are fixed when a collection is made)."""
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=int(url.rsplit(":", 1)[1]))
    vectors, _ = synthetic(size, base, vocabulary, np.random.default_rng(SEED))
    truth = [set(np.argsort(-(vectors @ q))[:20].tolist()) for q in queries]
    results = {}
    for m, construction, search in settings:
        name = f"sweep-{m}-{construction}-{search}"
        with contextlib.suppress(Exception):
            client.delete_collection(name)
        config = {"space": "cosine", "max_neighbors": m, "ef_construction": construction, "ef_search": search}
        collection = client.create_collection(name, embedding_function=None, configuration={"hnsw": config})
        started = time.perf_counter()
        for i in range(0, size, 5000):
            collection.add(ids=[str(k) for k in range(i, min(size, i + 5000))], embeddings=vectors[i : i + 5000])
        written = time.perf_counter() - started
        found, times = [], []
        for q, true in zip(queries, truth, strict=True):
            started = time.perf_counter()
            hit = collection.query(query_embeddings=[q], n_results=20, include=[])
            times.append((time.perf_counter() - started) * 1000)
            found.append(len(true & {int(k) for k in hit["ids"][0]}) / 20)
        key = f"M {m}, construction {construction}, search {search}"
        results[key] = {
            "recall": round(float(np.mean(found)), 4),
            "p50_ms": round(quantile(times, 0.5), 1),
            "p95_ms": round(quantile(times, 0.95), 1),
            "write_s": round(written, 1),
        }
        print(f"  {key}: {results[key]}", flush=True)
        client.delete_collection(name)
    return results


WORKER = """
import json, os, sys, threading, time, resource
from pathlib import Path
started = time.perf_counter()
from assistant.config import Settings
from assistant.runtime import build_runtime
settings = Settings(chroma_url=sys.argv[1], collection="large", data_dir=Path(sys.argv[2]),
                    search_in_store_from=int(sys.argv[3]))
warm_up = json.loads(sys.argv[5])
runtime = build_runtime(settings)
ready = time.perf_counter() - started
questions = json.loads(sys.argv[4])
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
out = {"ready_s": round(ready, 1), "kind": type(runtime.corpus.index()).__name__, "rss_ready_mib": round(rss())}
# A worker's first questions load what every later one shares (the parsers' caches, the
# first pages of the file and of Chroma's index); they are reported apart.
first = []
for q in warm_up:
    t = time.perf_counter(); runtime.chain.answer(q + " (first)")
    first.append(round((time.perf_counter() - t) * 1000, 1))
out["first_ms"] = first
for clients in (1, 4, 16):
    times, lock, left = [], threading.Lock(), list(questions)
    def client():
        while True:
            with lock:
                if not left:
                    return
                q = left.pop()
            t = time.perf_counter(); runtime.chain.answer(q + f" ({clients})"); d = (time.perf_counter() - t) * 1000
            with lock:
                times.append(d)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    [t.start() for t in threads]; [t.join() for t in threads]
    times.sort()
    out[str(clients)] = {"p50_ms": round(times[len(times) // 2], 1), "p95_ms": round(times[int(len(times) * 0.95)], 1)}
out["rss_mib"] = round(rss())
print(json.dumps(out))
"""


def worker(
    url: str, data: Path, threshold: int, questions: list[str], warm_up: tuple[str, ...] | list[str] = ()
) -> dict:
    """A worker process over the store: ready time, memory, the latency of its first
    questions (``warm_up``, others than those measured), then of never-seen ones from 1, 4
    and 16 threads."""
    env = {**os.environ, "ASSISTANT_LOG_LEVEL": "warning"}
    done = subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            WORKER,
            url,
            str(data),
            str(threshold),
            json.dumps(questions),
            json.dumps(list(warm_up)),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def bank_figures(url: str, data: Path) -> dict:
    """The validation split's figures (``assistant eval``), searched in the store and in
    memory over the same corpus."""
    figures = {}
    for mode, threshold in (("store", 1), ("memory", 10**9)):
        env = {
            **os.environ,
            "ASSISTANT_CHROMA_URL": url,
            "ASSISTANT_COLLECTION": "large",
            "ASSISTANT_DATA_DIR": str(data),
            "ASSISTANT_SEARCH_IN_STORE_FROM": str(threshold),
            "ASSISTANT_LOG_LEVEL": "warning",
        }
        done = subprocess.run(
            [str(BIN / "assistant"), "eval", "tests/eval/validation.jsonl", "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
        try:  # figures below the evaluation's thresholds are figures too
            summary = json.loads(done.stdout)["summary"]
        except (json.JSONDecodeError, KeyError):
            sys.exit(done.stderr[-3000:])
        figures[mode] = {key: summary[key] for key in ("questions", "facts", "citation", "refusal", "p50_ms", "p95_ms")}
        print(f"  question bank searched in {mode}: {figures[mode]}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--work", type=Path, default=ROOT / ".bench-large")
    parser.add_argument("--widths", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--questions", type=int, default=150, help="never-seen questions per measure")
    parser.add_argument("--sweep", type=int, help="only compare HNSW settings at this many passages")
    parser.add_argument(
        "--settings",
        nargs="+",
        metavar="M,CONSTRUCTION,SEARCH",
        help="the HNSW settings --sweep compares (neighbours, construction and search widths)",
    )
    parser.add_argument(
        "--bank",
        action="store_true",
        help="ask the validation split, in the store and in memory (at sizes up to --recall-up-to)",
    )
    parser.add_argument(
        "--recall-up-to",
        type=int,
        default=200_000,
        help="measure recall at sizes up to this (exact search reads every vector)",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results_path = args.work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    from vectorstore.embeddings import E5Embeddings

    bank = [json.loads(line) for line in (ROOT / "tests" / "eval" / "validation.jsonl").read_text().splitlines()]
    questions = [row["question"] for row in bank][: args.questions]
    warm_up = [row["question"] for row in bank][args.questions :][:4]
    embedder = E5Embeddings()
    queries = np.asarray([embedder.query_vector(q) for q in questions], dtype=np.float32)
    base, vocabulary = real_material()
    chroma, url = start_chroma(args.work / "chroma")
    if args.sweep:
        try:
            settings = tuple(tuple(map(int, s.split(","))) for s in args.settings) if args.settings else SWEEP
            found = sweep(url, args.sweep, base, vocabulary, queries, settings)  # type: ignore[arg-type]
            results[f"sweep {args.sweep}"] = {**results.get(f"sweep {args.sweep}", {}), **found}
            results_path.write_text(json.dumps(results, indent=2))
        finally:
            stop(chroma)
        return
    try:
        for size in sorted(args.sizes):
            print(f"{size} passages", flush=True)
            entry = results.setdefault(str(size), {})
            entry["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            entry["fill_s"] = round(fill(url, size, base, vocabulary), 1)
            if size <= args.recall_up_to:
                entry["recall"] = recall(url, queries, args.widths)
            entry["first_worker"] = worker(url, args.work / "data", 1, questions[:4])
            entry["store"] = worker(url, args.work / "data", 1, questions, warm_up)
            print(f"  worker searching in the store: {entry['store']}", flush=True)
            if args.bank and size <= args.recall_up_to:
                entry["bank"] = bank_figures(url, args.work / "data")
            results_path.write_text(json.dumps(results, indent=2))
    finally:
        stop(chroma)
    # Sizes measured in other work folders stay beside this run's; of two figures for a
    # size, the newer.
    banked = ROOT / "bench" / "results-large.json"
    for size, entry in (json.loads(banked.read_text()) if banked.exists() else {}).items():
        if entry.get("measured", "") > results.get(size, {}).get("measured", ""):
            results[size] = entry
    banked.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, ROOT / "bench")
    rows = [
        [
            size,
            *(str(r.get("recall", {}).get(w, {}).get("recall", "-")) for w in map(str, args.widths)),
            str(r["store"]["ready_s"]),
            str(r["store"]["rss_mib"]),
            str(r["store"]["1"]["p50_ms"]),
            str(r["store"]["1"]["p95_ms"]),
            str(r["store"]["16"]["p95_ms"]),
        ]
        for size, r in results.items()
        if "store" in r
    ]
    print(
        table(
            rows,
            [
                "passages",
                *(f"recall@20 ef {w}" for w in args.widths),
                "ready s",
                "RSS MiB",
                "p50 ms",
                "p95 ms",
                "p95 ms, 16",
            ],
        )
    )


def plot(results: dict, folder: Path) -> None:
    """Worker memory, and never-seen latency, against corpus size: two SVG charts."""
    sizes = sorted((int(size), r["store"]) for size, r in results.items() if size.isdigit() and "store" in r)
    memory = [
        ("ready", "#1f6feb", "", [(n, w["rss_ready_mib"]) for n, w in sizes]),
        ("after 16 clients", "#1f6feb", "6 4", [(n, w["rss_mib"]) for n, w in sizes]),
    ]
    latency = [
        (
            f"{clients} client{'s' if clients > 1 else ''} {q[:3]}",
            colour,
            dash,
            [(n, w[str(clients)][q]) for n, w in sizes],
        )
        for clients, colour in ((1, "#1f6feb"), (4, "#d2691e"))
        for q, dash in (("p50_ms", ""), ("p95_ms", "6 4"))
    ]
    for name, series, label in (
        ("large-memory.svg", memory, "worker resident memory, MiB"),
        ("large-latency.svg", latency, "never-seen question, ms (search in the store)"),
    ):
        chart = line_chart(series, label)
        if chart:
            (folder / name).write_text(chart, encoding="utf-8")


if __name__ == "__main__":
    main()
