"""The index of a large corpus: dense search in Chroma, BM25 in a lexical index on disk,
passages and document facts read on demand; the same answers as the in-memory index."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from assistant.answering.decision import focus_of
from assistant.answering.index import Corpus, PassageIndex, StoreIndex
from assistant.answering.lexical import LexicalIndex
from assistant.config import Settings
from assistant.runtime import Runtime, build_runtime
from tests.conftest import ROOT
from tests.test_retrieval import RASON
from vectorstore import lexicon as lexicon_module
from vectorstore.chunking import Passage, chunk
from vectorstore.documents import from_text, load
from vectorstore.embeddings import E5Embeddings, beside_other_work
from vectorstore.ingest import ingest_document
from vectorstore.language import query_terms
from vectorstore.lexicon import DiskLexicon, match_expression
from vectorstore.store import PassageStore

QUESTIONS = [
    "Quels pays mènent des manœuvres militaires conjointes ?",
    "Combien de jours a duré la visite de Lavrov ?",
    "Which countries hold joint military exercises in the region?",
    "What did Lavrov say about sanctions?",
    "Quel temps faisait-il à Pyongyang pendant la visite ?",
    "Qui a accueilli Lavrov à l'aéroport ?",
    "Où est situé le port de Rason ?",
]


@pytest.fixture
def two_runtimes(tmp_path: Path, embeddings: E5Embeddings, seeded_template: Path) -> tuple[Runtime, Runtime]:
    """Runtimes over two copies of the seeds and a note: one searching in memory, one in
    the store (its threshold at one passage)."""
    runtimes = []
    for name, threshold in (("memory", 10**9), ("store", 1)):
        settings = Settings(data_dir=tmp_path / name, search_in_store_from=threshold)
        shutil.copytree(seeded_template, settings.data_dir)
        store = PassageStore(embeddings, data_dir=settings.data_dir)
        ingest_document(store, from_text("rason.md", RASON, kind=".md"))
        runtimes.append(build_runtime(settings, store))
    return runtimes[0], runtimes[1]


def test_answers_searched_in_the_store_are_those_searched_in_memory(two_runtimes: tuple[Runtime, Runtime]) -> None:
    memory, store = two_runtimes
    assert isinstance(memory.corpus.index(), PassageIndex)
    assert isinstance(store.corpus.index(), StoreIndex)
    assert store.corpus.lexicon_path.exists()
    for question in QUESTIONS:
        expected, got = memory.chain.answer(question), store.chain.answer(question)
        assert got.found == expected.found, question
        assert [c.id for c in got.citations] == [c.id for c in expected.citations], question
        assert [r.id for r in got.related] == [r.id for r in expected.related], question
    # A French question, and an English one whose vector Chroma searches while its
    # rendering is embedded: the same candidates, scored the same.
    for question in (QUESTIONS[0], QUESTIONS[2]):
        retrieved = store.chain.retriever.invoke(question)
        reference = {d.id: d.metadata for d in memory.chain.retriever.invoke(question)}
        assert {d.id for d in retrieved} == set(reference), question
        for document in retrieved:
            mine, theirs = document.metadata, reference[document.id]
            for key in ("dense", "bridged"):
                assert mine[key] == pytest.approx(theirs[key], abs=1e-5)
            for key in ("terms", "lemmas", "document_terms", "document_lemmas", "facts", "start", "end", "section"):
                assert mine[key] == theirs[key], key


def test_the_store_index_keeps_bounded_caches(two_runtimes: tuple[Runtime, Runtime], monkeypatch) -> None:
    _, store = two_runtimes
    monkeypatch.setattr(StoreIndex, "ROWS", 5)
    monkeypatch.setattr(StoreIndex, "DOCUMENTS", 1)
    store.corpus.invalidate()
    index = store.corpus.index()
    for question in QUESTIONS:
        store.chain.retriever.invoke(question)
    assert len(index._rows) <= 5 and len(index._documents) <= 1
    assert not hasattr(index, "passages") and not hasattr(index, "vectors")


def _search_held_until_passes(
    passes: int, embeddings: E5Embeddings, monkeypatch: pytest.MonkeyPatch, alone: int
) -> tuple[list[int], threading.Event]:
    """The engine's thread count recorded at each pass (``alone`` when nothing runs
    beside it), and the store's lexical search held until that many passes have begun."""
    assert embeddings._threads is not None  # the engine's OpenMP runtime was found
    real, _ = embeddings._threads
    sent: list[int] = []
    released = threading.Event()

    def recorded(count: int) -> None:
        sent.append(count)
        if len(sent) == passes:
            released.set()
        real(count)

    search = StoreIndex.lexical_hits

    def held(self: StoreIndex, query: list[frozenset[str]], k: int) -> list[tuple[str, float]]:
        assert released.wait(30)
        return search(self, query, k)

    monkeypatch.setattr(embeddings, "_threads", (recorded, alone))
    monkeypatch.setattr(StoreIndex, "lexical_hits", held)
    return sent, released


def test_the_embedder_leaves_a_core_to_the_lexical_search_while_it_runs(
    two_runtimes: tuple[Runtime, Runtime], embeddings: E5Embeddings, monkeypatch
) -> None:
    alone = 2  # whatever this run's OMP_NUM_THREADS, so that the two counts differ
    # The search waits for the question's pass and its rendering's.
    sent, released = _search_held_until_passes(2, embeddings, monkeypatch, alone)
    memory, store = two_runtimes
    question = "Which countries hold joint military exercises near Rason?"
    memory.chain.retriever.invoke(question + " (in memory)")
    assert sent and set(sent) == {alone}  # nothing runs beside it
    sent.clear()
    released.clear()
    retrieved = store.chain.retriever.invoke(question + " (in the store)")
    assert sent == [1, 1]  # the question and its rendering, while the search runs
    # Once the other work is done, the engine has every core again.
    busy = [False]
    with beside_other_work(until=lambda: not busy[0]):
        again = embeddings._run([question + " (in the store)"], is_query=True, limit=256)[0]
        busy[0] = True
        embeddings._run(["another text"], is_query=True, limit=256)
    assert sent == [1, 1, alone, 1]
    # One thread or several, the engine computes the same vectors.
    assert {d.id: d.metadata["dense"] for d in retrieved} == {
        d.id: float(d.metadata["vector"] @ again) for d in retrieved
    }


def test_the_lexical_index_follows_the_store(store: PassageStore, tmp_path: Path) -> None:
    lexicon = DiskLexicon(tmp_path / "lexicon.sqlite3")
    assert lexicon.sync(store) == 0 and len(lexicon) == 0
    ingest_document(store, from_text("rason.md", RASON, kind=".md"))
    assert lexicon.sync(store) == 1
    assert lexicon.stamp() == store.version() and len(lexicon) == store.count() == 2
    ids = {p.id for p in store.passages_of("rason.md")}
    hits = lexicon.search(query_terms("cargos ferroviaire"), 5)
    assert {pid for pid, _ in hits} == ids and all(score > 0 for _, score in hits)
    assert lexicon.sync(store) == 0  # nothing changed
    # A second process on the same file finds it current.
    other = DiskLexicon(tmp_path / "lexicon.sqlite3")
    assert other.sync(store) == 0 and other.search(query_terms("cargos"), 5) == lexicon.search(query_terms("cargos"), 5)
    # A changed document is reindexed, a removed one leaves.
    ingest_document(store, from_text("rason.md", RASON.replace("cargos", "pétroliers"), kind=".md"))
    assert lexicon.sync(store) == 1
    assert lexicon.search(query_terms("cargos"), 5) == [] and lexicon.search(query_terms("pétroliers"), 5)
    store.delete_document("rason.md")
    assert lexicon.sync(store) == 1 and len(lexicon) == 0 and lexicon.search(query_terms("pétroliers"), 5) == []


def test_an_interrupted_sync_leaves_the_index_as_it_was(store: PassageStore, tmp_path: Path, monkeypatch) -> None:
    lexicon = DiskLexicon(tmp_path / "lexicon.sqlite3")
    ingest_document(store, from_text("rason.md", RASON, kind=".md"))
    lexicon.sync(store)
    before = (lexicon.stamp(), len(lexicon), lexicon.search(query_terms("cargos"), 5))
    ingest_document(store, from_text("autre.md", RASON.replace("Rason", "Nakhodka"), kind=".md"))
    ingest_document(store, from_text("rason.md", RASON.replace("cargos", "pétroliers"), kind=".md"))

    def fail(doc_ids: list[str]) -> list:
        raise ConnectionError("the store went away")

    monkeypatch.setattr(store, "passages_of_documents", fail)
    with pytest.raises(ConnectionError):
        lexicon.sync(store)
    assert (lexicon.stamp(), len(lexicon), lexicon.search(query_terms("cargos"), 5)) == before
    monkeypatch.undo()
    assert lexicon.sync(store) == 2 and len(lexicon) == 4 and lexicon.stamp() == store.version()


def test_passages_deleted_behind_the_lexical_index_are_left_out(two_runtimes: tuple[Runtime, Runtime]) -> None:
    _, runtime = two_runtimes
    runtime.corpus.index()
    # Passages deleted without their document record: the lexical index still holds them.
    gone = [p.id for p in runtime.store.passages_of("rason.md")]
    runtime.store.delete_passages(gone)
    runtime.corpus.invalidate()
    found = runtime.chain.retriever.invoke("port de Rason cargos russes")
    assert found and not {d.id for d in found} & set(gone)


def test_any_question_text_is_a_safe_full_text_query(store: PassageStore, tmp_path: Path) -> None:
    lexicon = DiskLexicon(tmp_path / "lexicon.sqlite3")
    ingest_document(store, from_text("rason.md", RASON, kind=".md"))
    lexicon.sync(store)
    for text in ('" OR NEAR(', "AND NOT port*", "cargos) OR (", "^rason", "", "???"):
        assert isinstance(lexicon.search(query_terms(text), 5), list)
    assert match_expression([frozenset({'a"b'})]) == '"a""b"'


def test_a_corpus_from_the_threshold_searches_in_the_store(isolated_runtime: Runtime, embeddings: E5Embeddings) -> None:
    store = isolated_runtime.store
    count = store.count()
    corpus = Corpus(store, search_in_store_from=count + 2, folder=isolated_runtime.settings.data_dir)
    assert isinstance(corpus.index(), PassageIndex)
    ingest_document(store, from_text("rason.md", RASON, kind=".md"))
    corpus.invalidate()
    index = corpus.index()
    assert isinstance(index, StoreIndex) and len(index) == count + 2
    assert index.holds("fr") and not index.holds("de")


def test_a_lexical_index_of_another_format_is_rebuilt(store: PassageStore, tmp_path: Path) -> None:
    import sqlite3

    ingest_document(store, from_text("rason.md", RASON, kind=".md"))
    DiskLexicon(tmp_path / "lexicon.sqlite3").sync(store)
    with sqlite3.connect(tmp_path / "lexicon.sqlite3") as db:
        db.execute("PRAGMA user_version = 0")
    reopened = DiskLexicon(tmp_path / "lexicon.sqlite3")
    assert len(reopened) == 0 and reopened.stamp() is None
    assert reopened.sync(store) == 1 and len(reopened) == 2


class _Passages:
    """A store's three reads the lexical index syncs from, over passages made here (120
    passages through the embedder would be slow; the sync itself is checked above on a real
    store): one passage a document for ``texts``, or the given passages."""

    def __init__(self, texts: list[str], passages: list[Passage] = ()) -> None:
        made = [Passage(f"doc{i}", f"Doc {i}", None, 0, len(t), t, "text", 0, 0) for i, t in enumerate(texts)]
        self.by_document: dict[str, list[Passage]] = {}
        for passage in [*made, *passages]:
            self.by_document.setdefault(passage.document_id, []).append(passage)

    def version(self) -> str:
        return str(len(self.by_document))

    def documents(self) -> dict[str, SimpleNamespace]:
        return {
            doc_id: SimpleNamespace(id=doc_id, content_hash=doc_id, passages=len(found), ingested_at="t")
            for doc_id, found in self.by_document.items()
        }

    def passages_of_documents(self, doc_ids: list[str]) -> list[Passage]:
        return [p for d in doc_ids for p in self.by_document[d]]


def test_terms_in_most_passages_are_left_out_of_queries_on_large_indexes(tmp_path: Path, monkeypatch) -> None:
    texts = [f"Le port commun numéro {i} reçoit des cargos." for i in range(119)]
    texts.append("Le port commun reçoit un brise-glace.")
    lexicon = DiskLexicon(tmp_path / "lexicon.sqlite3")
    passages = _Passages(texts)
    rare = passages.by_document["doc119"][0].id
    lexicon.sync(passages)
    question = query_terms("port commun brise-glace")
    full = lexicon.search(question, 5)
    assert full[0][0] == rare and len(full) == 5  # every passage has "port" and "commun"
    # The same index counted as large: the common terms drop out, the rare one ranks alone.
    monkeypatch.setattr(lexicon_module, "COMMON_POSTINGS", 10)
    pruned = lexicon.search(question, 5)
    assert [pid for pid, _ in pruned] == [rare]
    assert pruned[0][1] > 0
    # A question of common terms only finds nothing in words (the dense search ranks it
    # alone); the same index counted as small still ranks it by them.
    assert lexicon.search(query_terms("port commun"), 5) == lexicon.search(query_terms("port cargos"), 5) == []
    monkeypatch.setattr(lexicon_module, "COMMON_POSTINGS", 10_000)
    assert len(lexicon.search(query_terms("port commun"), 5)) == 5
    assert len(lexicon.search(query_terms("port cargos"), 200)) == 120


def test_a_query_on_a_large_index_reads_its_rarest_terms_within_a_budget(tmp_path: Path, monkeypatch) -> None:
    # 5 passages about coal, 10 others about cargo ships, 30 others (a quarter) about the port.
    words = ["charbon"] * 5 + ["cargos"] * 10 + ["port"] * 30 + ["quai"] * 75
    lexicon = DiskLexicon(tmp_path / "lexicon.sqlite3")
    passages = _Passages([f"Le bassin {i} : {word}." for i, word in enumerate(words)])
    lexicon.sync(passages)
    question = query_terms("Le charbon, les cargos et le port")

    word_of = {p.id: p.text.split(": ")[1].rstrip(".") for [p] in passages.by_document.values()}

    def found(budget: int) -> set[str]:
        monkeypatch.setattr(lexicon_module, "QUERY_POSTINGS", budget)
        return {word_of[pid] for pid, _ in lexicon.search(question, 100)}

    assert len(lexicon.search(question, 100)) == 45  # a small index reads every term
    monkeypatch.setattr(lexicon_module, "COMMON_POSTINGS", 10)  # counted as large
    assert found(12) == {"charbon"}
    assert found(15) == {"charbon", "cargos"}
    assert found(1000) == {"charbon", "cargos"}  # "port" is in more than a fifth of the passages
    assert found(1) == {"charbon"}  # the rarest term stays, whatever the budget


def test_questions_search_the_file_side_by_side(store: PassageStore, tmp_path: Path) -> None:
    lexicon = DiskLexicon(tmp_path / "lexicon.sqlite3")
    ingest_document(store, from_text("rason.md", RASON, kind=".md"))
    lexicon.sync(store)
    questions = [query_terms(q) for q in ("cargos ferroviaire", "port Rason", "Chine Russie", "charbon")] * 10
    serial = [lexicon.search(q, 5) for q in questions]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda q: lexicon.search(q, 5), questions)) == serial
    assert lexicon._opened <= lexicon_module._READERS
    lexicon.close()
    with pytest.raises(sqlite3.ProgrammingError):
        lexicon.search(questions[0], 5)


def test_the_file_ranks_every_question_of_the_bank_as_the_memory_index_does(tmp_path: Path) -> None:
    files = [*sorted((ROOT / "seeds").iterdir()), *sorted((ROOT / "tests" / "eval" / "documents").iterdir())]
    passages = [p for file in files for p in chunk(load(file, file.parent))]
    banks = sorted((ROOT / "tests" / "eval").glob("*.jsonl"))
    questions = [json.loads(line)["question"] for bank in banks for line in bank.open()]
    assert len(questions) > 700
    lexicon = DiskLexicon(tmp_path / "lexicon.sqlite3")

    def differing(passages: list[Passage], questions: list[str]) -> list[str]:
        memory = LexicalIndex(passages)
        lexicon.sync(_Passages([], passages))
        differing = []
        for question in questions:
            terms = query_terms(question)
            expected = [(passages[i].id, score) for i, score in memory.search(terms, 40)]
            got = lexicon.search(terms, 40)
            # Passages of equal score may come in either order.
            same_scores = [s for _, s in got] == pytest.approx([s for _, s in expected])
            if not same_scores or {pid for pid, _ in got} != {pid for pid, _ in expected}:
                differing.append(question)
        return differing

    assert differing(passages, questions) == []
    # A document removed: the counts BM25 weighs by follow (the first 150 questions again).
    seed = passages[0].document_id
    assert differing([p for p in passages if p.document_id != seed], questions[:150]) == []


def test_the_focus_embedded_ahead_also_leaves_a_core_to_the_lexical_search(
    two_runtimes: tuple[Runtime, Runtime], embeddings: E5Embeddings, monkeypatch
) -> None:
    # The search waits for the question's pass, its rendering's, and its focus's.
    sent, _ = _search_held_until_passes(3, embeddings, monkeypatch, alone=2)
    _, store = two_runtimes
    question = "Which countries hold joint military exercises near Rason? (focus ahead)"
    assert focus_of(question) is not None and store.chain.decision.quick is None
    assert store.chain.answer(question).answer
    # The focus was embedded while the search was still held, on one core, and only then.
    assert sent == [1, 1, 1]
