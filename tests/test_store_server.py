"""The same code against a real Chroma server (`chroma run`)."""

from assistant.config import Settings
from assistant.runtime import Runtime, build_runtime
from tests.conftest import SEEDS
from vectorstore.embeddings import E5Embeddings
from vectorstore.ingest import ingest_paths
from vectorstore.store import PassageStore

QUESTIONS = [
    "Dans quelle ville se rend Sergueï Lavrov ?",
    "What does North Korea offer Russia, according to the conclusion?",
    "Quel est le salaire de Sergueï Lavrov ?",
]


def test_server_mode_ingests_idempotently_and_answers_like_embedded_mode(
    chroma_server: str, embeddings: E5Embeddings, runtime: Runtime
) -> None:
    settings = Settings(chroma_url=chroma_server, collection="servertest")
    store = PassageStore(embeddings, chroma_url=chroma_server, collection=settings.collection)
    first = ingest_paths(store, [SEEDS])
    second = ingest_paths(store, [SEEDS])
    assert first.added and second.unchanged == first.added and second.passages_embedded == 0
    assert store.count() == runtime.store.count()
    remote = build_runtime(settings, store)
    for question in QUESTIONS:
        assert remote.chain.answer(question) == runtime.chain.answer(question), question


def test_unreachable_server_is_a_clear_error(embeddings: E5Embeddings) -> None:
    import pytest

    from vectorstore.store import StoreError

    with pytest.raises(StoreError, match=r"cannot reach the Chroma server at http://127\.0\.0\.1:9"):
        PassageStore(embeddings, chroma_url="http://127.0.0.1:9")
