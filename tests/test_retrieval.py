import pytest

import assistant.answering.index
from assistant.answering.condensing import condense, is_follow_up
from assistant.models import Message
from assistant.runtime import Runtime
from tests.conftest import wait_until
from vectorstore.documents import from_text
from vectorstore.embeddings import E5Embeddings
from vectorstore.ingest import ingest_document
from vectorstore.language import fold
from vectorstore.store import PassageStore

RASON = (
    "# Port de Rason\n\nLe port de Rason accueille désormais des cargos russes chaque semaine, selon les autorités "
    "portuaires locales.\n\nUne liaison ferroviaire rénovée relie le port à la frontière russe depuis cette année.\n"
)


def top_texts(runtime: Runtime, query: str, n: int = 3) -> list[str]:
    return [fold(d.page_content) for d in runtime.chain.retriever.invoke(query)[:n]]


def test_english_question_finds_the_french_passage(runtime: Runtime) -> None:
    texts = top_texts(runtime, "Which countries hold joint military exercises in the region?")
    assert any("manoeuvres militaires conjointes" in t for t in texts)


def test_lexical_side_finds_exact_terms(runtime: Runtime) -> None:
    texts = top_texts(runtime, "cryptomonnaies troc")
    assert "cryptomonnaies" in texts[0]


def test_candidates_carry_dense_lexical_and_fused_scores(runtime: Runtime) -> None:
    docs = runtime.chain.retriever.invoke("missiles balistiques")
    assert docs and all({"dense", "lexical", "fused", "start", "end"} <= set(d.metadata) for d in docs)
    assert docs == sorted(docs, key=lambda d: -d.metadata["fused"])
    assert 0.0 < docs[0].metadata["dense"] <= 1.0


def test_follow_ups_are_recognised() -> None:
    assert is_follow_up("Et combien de temps y reste-t-il ?")
    assert is_follow_up("And in the medium term?")
    assert is_follow_up("What topics will it cover?")
    assert not is_follow_up("Quel est le rôle de la Russie dans la dénucléarisation ?")


def test_condense_joins_a_follow_up_to_the_previous_question_and_the_names_of_its_answer() -> None:
    history = [
        Message(role="user", content="Dans quelle ville se rend Sergueï Lavrov ?"),
        Message(role="assistant", content="À Pyongyang [1]."),
    ]
    assert condense("Et combien de temps y reste-t-il ?", history) == (
        "Dans quelle ville se rend Sergueï Lavrov ? Pyongyang Et combien de temps y reste-t-il ?"
    )
    # The answer's sentence stays out: it would pull retrieval back to the passage just quoted.
    short_term = [
        Message(role="user", content="Quelles retombées à court terme ?"),
        Message(role="assistant", content="Une intensification des échanges avec la Chine en 2024 [1]."),
    ]
    assert condense("Et à long terme ?", short_term) == "Quelles retombées à court terme ? Chine 2024 Et à long terme ?"
    standalone = "Quelles technologies duales sont mentionnées dans l'article ?"
    assert condense(standalone, history) == standalone
    assert condense("Et après ?", []) == "Et après ?"


def test_a_large_corpus_is_reindexed_in_the_background(
    isolated_runtime: Runtime, embeddings: E5Embeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assistant.answering.index, "BACKGROUND_FROM", 0)
    corpus = isolated_runtime.corpus
    before = corpus.index()
    # Another process (here, another handle on the same store) adds a document.
    other = PassageStore(embeddings, data_dir=isolated_runtime.settings.data_dir)
    ingest_document(other, from_text("rason.md", RASON, kind=".md"))
    monkeypatch.setattr(assistant.answering.index, "_RECHECK_SECONDS", 0.0)
    assert corpus.index() is before  # answered from the previous index meanwhile
    wait_until(lambda: corpus.index() is not before, what="the background reindex", timeout=30)
    after = corpus.index()
    assert len(after) == len(before) + 2
    assert any(p.document_id == "rason.md" for p in after.passages)
    assert after.vectors.shape == (len(after), embeddings.dimensions)


def test_dense_search_is_exact(runtime: Runtime) -> None:
    index = runtime.corpus.index()
    vector = runtime.store.embeddings.query_vector("manœuvres militaires conjointes")
    hits = index.dense(vector, 5)
    cosines = sorted((float(v @ vector) for v in index.vectors), reverse=True)[:5]
    assert [c for _, c in hits] == pytest.approx(cosines, abs=1e-5)
