"""Side by side: the plain LangChain tutorial pipeline against this assistant, on the same
questions, documents and embedder.

    .venv/bin/python bench/bench_compare.py [--sizes 1 10000]

The tutorial pipeline: the documents' text, `RecursiveCharacterTextSplitter(chunk_size=1000,
chunk_overlap=200)`, a Chroma collection, `similarity_search(question, k=4)`; its four
chunks are what it cites. Ours: the sentence passages, hybrid retrieval, the relevance test,
the extractive answer and its citations. Both use the same multilingual-e5-small embedder.

For each corpus size (passages of our chunking; 1 = the seed article alone, more adds the
Debian French documentation of bench/corpus.py around it), over the question sets:

- hit rate: answerable questions whose first 4 retrieved units include one containing the
  supporting text (ours: the first 4 passages of the ranking the answerer chooses from);
- cited support: answerable questions where a cited unit contains the supporting text;
- citation precision: the share of cited units that contain it;
- characters cited: what a reader must read to check an answer;
- unanswerable questions given citations anyway (the tutorial pipeline always cites 4);
- the time to build the index, and latency per question, in process (p50 / p95).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# As the assistant's own processes do (assistant/__init__.py), before chromadb loads numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import chromadb
import corpus
from chromadb.config import Settings as ChromaSettings
from common import quantile, question_items, table
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from assistant.answering.condensing import condense
from assistant.config import Settings
from assistant.models import Message
from assistant.runtime import build_runtime
from vectorstore.documents import discover, load
from vectorstore.embeddings import E5Embeddings
from vectorstore.ingest import ingest_paths
from vectorstore.language import fold
from vectorstore.store import PassageStore


def contains(text: str, support: str) -> bool:
    """Whether a unit holds the supporting text (case, accents and spacing ignored)."""
    return " ".join(fold(support).split()) in " ".join(fold(text).split())


class Tally:
    """The figures of one pipeline."""

    def __init__(self) -> None:
        self.hits: list[bool] = []
        self.cited_support: list[bool] = []
        self.precision: list[float] = []
        self.cited_chars: list[int] = []
        self.cites_unanswerable: list[bool] = []
        self.ms: list[float] = []

    def add(self, item: dict, retrieved: list[str], cited: list[str], ms: float) -> None:
        """Score one question: the first units retrieved and the units cited."""
        self.ms.append(ms)
        if not item["answerable"]:
            self.cites_unanswerable.append(bool(cited))
            return
        support = item.get("support", "")
        if not support:
            return
        self.hits.append(any(contains(t, support) for t in retrieved[:4]))
        self.cited_support.append(any(contains(t, support) for t in cited))
        self.precision.append(sum(contains(t, support) for t in cited) / len(cited) if cited else 0.0)
        self.cited_chars.append(sum(len(t) for t in cited))

    def row(self, name: str, build: float) -> list[str]:
        """The figures as table cells."""
        return [
            name,
            f"{build:.0f} s",
            f"{statistics.fmean(self.hits):.3f}",
            f"{statistics.fmean(self.cited_support):.3f}",
            f"{statistics.fmean(self.precision):.3f}",
            f"{statistics.fmean(self.cited_chars):.0f}",
            f"{statistics.fmean(self.cites_unanswerable):.3f}",
            f"{quantile(self.ms, 0.5):.1f} / {quantile(self.ms, 0.95):.1f}",
        ]


def tutorial(documents: list[Document], items: list[dict]) -> tuple[Tally, float]:
    """The tutorial pipeline: split, embed into Chroma, similarity search k=4."""
    started = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)
    chunks = splitter.split_documents(documents)
    client = chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))
    store = Chroma.from_documents(chunks, E5Embeddings(), client=client, collection_name="tutorial")
    build = time.perf_counter() - started
    tally = Tally()
    for item in items:
        t0 = time.perf_counter()
        found = store.similarity_search(item["question"], k=4)
        ms = (time.perf_counter() - t0) * 1000
        texts = [d.page_content for d in found]
        tally.add(item, texts, texts, ms)
    print(f"  tutorial: {len(chunks)} chunks, built in {build:.0f} s", flush=True)
    return tally, build


def ours(folder: Path, items: list[dict], work: Path) -> tuple[Tally, float]:
    """This assistant, in process: ingest, then the chain's two halves."""
    settings = Settings(data_dir=work / "ours")
    started = time.perf_counter()
    store = PassageStore(E5Embeddings(), data_dir=settings.data_dir)
    ingest_paths(store, [folder])
    runtime = build_runtime(settings, store)
    build = time.perf_counter() - started
    chain = runtime.chain
    tally = Tally()
    for item in items:
        history = [Message(**m) for m in item.get("history", [])]
        t0 = time.perf_counter()
        state = chain.prepare.invoke(chain.start(item["question"], history))
        ranked = [d.page_content for d in state.selected.ranked]
        answer = chain.result(chain.finish.invoke(state))
        ms = (time.perf_counter() - t0) * 1000
        tally.add(item, ranked, [c.text for c in answer.citations], ms)
    print(f"  ours: {store.count()} passages, built in {build:.0f} s", flush=True)
    return tally, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1], help="corpus sizes (1 = the seed article)")
    args = parser.parse_args()
    items = question_items()
    for item in items:
        # The tutorial pipeline has no conversation: it is given the question as condensed
        # by our rule, so that follow-ups are fair to it.
        if item.get("history"):
            item["question_alone"] = condense(item["question"], [Message(**m) for m in item["history"]])
    tables = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="assistant-compare-") as tmp:
            work = Path(tmp)
            documents, passages = corpus.fit(work / "corpus", size)
            print(f"corpus: {documents} documents, {passages} passages", flush=True)
            loaded = [load(f, r) for f, r in discover([work / "corpus"])[0]]
            lc_docs = [Document(page_content=d.text, metadata={"source": d.id}) for d in loaded]
            plain = [{**i, "question": i.get("question_alone", i["question"])} for i in items]
            tutorial_tally, tutorial_build = tutorial(lc_docs, plain)
            our_tally, our_build = ours(work / "corpus", items, work)
            rows = [
                tutorial_tally.row("tutorial: splitter 1000/200, similarity k=4", tutorial_build),
                our_tally.row("this assistant", our_build),
            ]
            header = [
                f"{passages:,} passages",
                "indexing",
                "hit rate @4",
                "cited support",
                "citation precision",
                "chars cited",
                "unanswerable cited",
                "ms p50 / p95",
            ]
            tables.append(table(rows, header))
    print(f"\n{len(items)} questions ({sum(1 for i in items if i['answerable'])} answerable)\n")
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
