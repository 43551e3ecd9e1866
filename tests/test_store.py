"""The Chroma store through its public API: what it keeps, the change stamp, the
LangChain view, and stores written by an earlier version."""

from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from tests.conftest import SEEDS, free_port, run_cli
from vectorstore.embeddings import E5Embeddings
from vectorstore.ingest import ingest_paths
from vectorstore.store import DocumentRecord, PassageStore, StoreError


def client_of(path: Path | str) -> chromadb.ClientAPI:
    """Another client on the store's folder (Chroma wants the same settings per folder)."""
    return chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))


def test_the_stamp_changes_with_every_write_and_is_not_a_record(store: PassageStore) -> None:
    empty = store.version()
    ingest_paths(store, [SEEDS])
    written = store.version()
    assert written != empty
    # Only documents are kept as document records; nothing else hides among them.
    client = client_of(store.location)
    documents = client.get_collection(store.documents_name, embedding_function=None)
    assert documents.get(include=[])["ids"] == ["lavrov-visite-coree-du-nord.md"]
    assert store.version() == written  # reading changes nothing
    store.delete_document("lavrov-visite-coree-du-nord.md")
    assert store.version() not in (written, empty)


def test_the_stamp_changes_when_the_collections_are_made_again_by_other_means(
    tmp_path: Path, embeddings: E5Embeddings
) -> None:
    # Both stores are empty and neither was written through the assistant: only the
    # collections being new tells a running worker that its index is stale.
    data = tmp_path / "data"
    store = PassageStore(embeddings, data_dir=data)
    before = store.version()
    client = client_of(data)
    for name in (store.passages_name, store.documents_name):
        client.delete_collection(name)
    del client
    again = PassageStore(embeddings, data_dir=data)
    assert again.count() == 0 and again.version() != before
    assert store.version() == again.version()  # what a running worker reads, by name


def test_document_records_hold_no_passage_sized_vector(store: PassageStore) -> None:
    ingest_paths(store, [SEEDS])
    client = client_of(store.location)
    documents = client.get_collection(store.documents_name, embedding_function=None)
    vectors = documents.get(include=["embeddings"])["embeddings"]
    assert len(vectors) == 1 and len(vectors[0]) < store.embeddings.dimensions
    passages = client.get_collection(store.passages_name, embedding_function=None)
    assert len(passages.get(limit=1, include=["embeddings"])["embeddings"][0]) == store.embeddings.dimensions


def test_the_passages_as_a_langchain_vector_store(seeded_store: PassageStore) -> None:
    found = seeded_store.vectorstore.similarity_search("Combien de jours dure la visite de Lavrov ?", k=3)
    assert len(found) == 3
    text = seeded_store.document_text(found[0].metadata["document"])
    assert text is not None
    for doc in found:
        assert text[doc.metadata["start"] : doc.metadata["end"]] == doc.page_content
    assert any("trois jours" in doc.page_content for doc in found)


# Slow: it writes a whole store the way the earlier version did.
@pytest.mark.slow
def test_a_store_written_by_the_earlier_version_is_named_with_what_to_do(
    tmp_path: Path, embeddings: E5Embeddings
) -> None:
    data = tmp_path / "data"
    store = PassageStore(embeddings, data_dir=data)
    names = (store.passages_name, store.documents_name)
    del store
    client = client_of(data)
    for name in names:
        client.delete_collection(name)
        client.create_collection(
            name, embedding_function=None, metadata={"embedding_model": embeddings.model_id, "schema": 1}
        )
    with pytest.raises(StoreError, match="reindex --yes"):
        PassageStore(embeddings, data_dir=data)
    for command in (["ingest"], ["serve", "--port", str(free_port())]):
        refused = run_cli(*command, env={"ASSISTANT_DATA_DIR": str(data)}, timeout=120)
        assert refused.returncode == 1, command
        assert "reindex --yes" in refused.stderr and "Traceback" not in refused.stderr + refused.stdout
    rebuilt = run_cli("reindex", "--yes", env={"ASSISTANT_DATA_DIR": str(data)})
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert PassageStore(embeddings, data_dir=data).count() > 0


def test_document_records_written_together_take_a_request_per_batch_and_keep_their_fields(
    store: PassageStore,
) -> None:
    records = [
        (
            DocumentRecord(f"doc-{i}", f"Titre {i}", f"doc-{i}.md", "root", f"hash-{i}", i + 1, "2026-12-08", "fr"),
            f"texte {i}",
        )
        for i in range(7)
    ]
    requests: list[list[str]] = []
    upsert = store._documents.upsert

    def recording(*, ids: list[str], **rest: object) -> None:
        requests.append(list(ids))
        upsert(ids=ids, **rest)

    store._batch = 3
    store._documents.upsert = recording  # type: ignore[method-assign]
    before = store.version()
    store.put_documents(records)
    assert requests == [["doc-0", "doc-1", "doc-2"], ["doc-3", "doc-4", "doc-5"], ["doc-6"]]
    assert store.documents() == {record.id: record for record, _ in records}
    assert [store.document_text(record.id) for record, _ in records] == [text for _, text in records]
    assert store.version() != before
