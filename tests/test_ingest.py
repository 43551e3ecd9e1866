import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vectorstore.ingest
from tests.conftest import ROOT, SEEDS, run_cli, wait_until
from vectorstore.documents import DocumentError, from_text
from vectorstore.embeddings import E5Embeddings, embedding_text
from vectorstore.ingest import citable_passages, ingest_document, ingest_paths
from vectorstore.store import PassageStore, StoreError, embedding_key

SENTENCES = [
    "La première phrase du document parle de la visite officielle du ministre.",
    "La deuxième phrase évoque les échanges économiques entre les deux pays voisins.",
    "La troisième phrase mentionne la sécurité régionale et les manœuvres militaires.",
]


def stored(store: PassageStore) -> list[tuple[str, str]]:
    return sorted((p.document_id, p.text) for p in store.all_passages())


def test_reingesting_unchanged_documents_embeds_and_changes_nothing(store: PassageStore) -> None:
    first = ingest_paths(store, [SEEDS])
    before = stored(store)
    second = ingest_paths(store, [SEEDS])
    assert first.added == ["lavrov-visite-coree-du-nord.md"] and first.passages_embedded == len(before)
    assert second.unchanged == first.added and not second.added and not second.updated
    assert second.passages_embedded == 0 and second.passages_written == 0
    assert stored(store) == before


def test_changed_document_replaces_its_passages_reusing_unchanged_embeddings(
    store: PassageStore, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(" ".join(SENTENCES), encoding="utf-8")
    ingest_paths(store, [folder])
    (folder / "a.txt").write_text(
        " ".join([*SENTENCES[:2], "Une toute nouvelle phrase remplace désormais entièrement la troisième."])
    )
    report = ingest_paths(store, [folder])
    assert report.updated == ["a.txt"]
    assert report.passages_embedded == 1 and report.passages_deleted == 1
    texts = [t for _, t in stored(store)]
    assert (
        SENTENCES[2] not in texts and "Une toute nouvelle phrase remplace désormais entièrement la troisième." in texts
    )
    assert len(texts) == 3


def test_a_passage_vector_is_made_with_its_document_title_and_a_new_title_embeds_again(store: PassageStore) -> None:
    body = " ".join(SENTENCES)
    ingest_document(store, from_text("a.md", f"# Visite du ministre\n\n{body}\n", kind=".md"))
    passages = store.passages_of("a.md")
    vectors = store.passage_vectors_of("a.md")
    assert len(passages) == 3 and len(vectors) == 3
    for passage in passages:
        # Made by the model itself: the store's embedder may read vectors back from its cache.
        expected = E5Embeddings().embed_documents([embedding_text("Visite du ministre", passage.text)])[0]
        assert np.allclose(vectors[embedding_key(passage)], expected, atol=1e-5)
    # Same sentences under another title: every vector is made again, none reused.
    status, _ = ingest_document(store, from_text("a.md", f"# Sommet économique\n\n{body}\n", kind=".md"))
    assert status == "updated"
    again = store.passage_vectors_of("a.md")
    assert len(again) == 3 and not set(again) & set(vectors)


def test_document_removed_from_folder_is_removed_from_store(store: PassageStore, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, sentence in zip("abc", SENTENCES, strict=True):
        (folder / f"{name}.txt").write_text(sentence, encoding="utf-8")
    ingest_paths(store, [folder])
    (folder / "b.txt").unlink()
    report = ingest_paths(store, [folder])
    assert report.removed == ["b.txt"] and report.unchanged == ["a.txt", "c.txt"]
    assert sorted(store.documents()) == ["a.txt", "c.txt"]
    assert {d for d, _ in stored(store)} == {"a.txt", "c.txt"}


def test_bad_files_are_reported_and_skipped_and_nothing_stored_is_lost(store: PassageStore, tmp_path: Path) -> None:
    ingest_paths(store, [SEEDS])
    before = stored(store)
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("# Bon\n\n" + SENTENCES[0], encoding="utf-8")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02\x03")
    (folder / "latin1.txt").write_bytes("déjà vu".encode("latin-1"))
    report = ingest_paths(store, [folder, tmp_path / "nope"])
    assert report.added == ["good.md"]
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == {"empty.txt", "binary.txt", "latin1.txt", "nope"}
    assert "binary" in failed["binary.txt"] and "UTF-8" in failed["latin1.txt"] and "empty" in failed["empty.txt"]
    assert not report.ok
    assert set(before) <= set(stored(store))


def test_same_relative_path_in_two_folders_keeps_both(store: PassageStore, tmp_path: Path) -> None:
    for name, sentence in (("one", SENTENCES[0]), ("two", SENTENCES[1])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text(sentence, encoding="utf-8")
    ingest_paths(store, [tmp_path / "one"])
    ingest_paths(store, [tmp_path / "two"])
    assert len(store.documents()) == 2
    assert {t for _, t in stored(store)} == {SENTENCES[0], SENTENCES[1]}


def test_ingest_document_from_memory(store: PassageStore) -> None:
    doc = from_text("upload.md", "# Titre\n\n" + " ".join(SENTENCES), kind=".md")
    assert ingest_document(store, doc) == ("added", 3)
    assert ingest_document(store, doc) == ("unchanged", 3)
    assert store.document_text("upload.md") == doc.text


def test_passages_reproduce_their_document_text(store: PassageStore) -> None:
    ingest_paths(store, [SEEDS])
    text = store.document_text("lavrov-visite-coree-du-nord.md")
    assert text is not None
    for p in store.all_passages():
        assert text[p.start : p.end] == p.text


def test_unwritable_data_dir_is_named(tmp_path: Path, embeddings) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/assistant-data")  # not writable even for root
    else:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(0o500)
    with pytest.raises(StoreError, match=str(target)):
        PassageStore(embeddings, data_dir=target)


# Enough copies of the seed's first half that the ingest is killed with some, not all,
# stored (about a third of the way through).
COPIES = 12


@pytest.mark.slow
def test_ingest_killed_half_way_is_completed_by_the_next_run(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    seed = (ROOT / "seeds" / "lavrov-visite-coree-du-nord.md").read_text(encoding="utf-8")
    body = seed[: seed.index("\n## ", seed.index("\n## ", seed.index("\n## ") + 1) + 1)]
    for i in range(COPIES):
        (folder / f"doc{i:02}.md").write_text(f"# Copie {i}\n\nNuméro {i} de la série.\n\n{body}", encoding="utf-8")
    data = tmp_path / "data"
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data)}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "assistant"), "ingest", str(folder)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it once some, not all, documents are stored.
    sqlite = data / "chroma.sqlite3"
    wait_until(
        lambda: process.poll() is not None or (sqlite.exists() and sqlite.stat().st_size > 600_000),
        what="the ingest to store some documents",
        timeout=120,
    )
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the ingest ended before it was killed"
    result = run_cli("ingest", str(folder), env={"ASSISTANT_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    again = run_cli("ingest", str(folder), env={"ASSISTANT_DATA_DIR": str(data)})
    assert f"{COPIES} unchanged" in again.stdout and "0 embedded" in again.stdout

    store = PassageStore(E5Embeddings(), data_dir=data)
    passages = store.all_passages()
    per_doc = len(passages) // COPIES
    assert len(store.documents()) == COPIES
    assert len(passages) == COPIES * per_doc
    assert len({p.id for p in passages}) == len(passages)


def test_another_embedding_model_gets_collections_of_its_own(tmp_path: Path, embeddings) -> None:

    class OtherModel(E5Embeddings):
        model_id = "another-model"

    data = tmp_path / "data"
    first = PassageStore(embeddings, data_dir=data)
    ingest_paths(first, [SEEDS])
    other = PassageStore(OtherModel(), data_dir=data)
    assert other.count() == 0 and other.documents() == {}
    assert other.passages_name != first.passages_name
    assert PassageStore(embeddings, data_dir=data).count() == first.count() > 0


def test_a_foreign_collection_under_our_name_is_refused(tmp_path: Path, embeddings) -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    data = tmp_path / "data"
    name = PassageStore(embeddings, data_dir=data).passages_name
    client = chromadb.PersistentClient(path=str(data), settings=ChromaSettings(anonymized_telemetry=False))
    client.delete_collection(name)
    client.create_collection(name, embedding_function=None, metadata={"owner": "someone else"})
    with pytest.raises(StoreError, match="was not written by this version"):
        PassageStore(embeddings, data_dir=data)


def test_fragments_without_two_words_are_not_stored(store: PassageStore) -> None:
    text = "# Aide\n\nSuivant\n\n-\n\n42\n\nLe filtre adoucit les contours de l'image sélectionnée.\n\nNote\n"
    doc = from_text("aide.md", text, kind=".md")
    assert [p.text for p in citable_passages(doc)] == ["Le filtre adoucit les contours de l'image sélectionnée."]
    with pytest.raises(DocumentError, match="no sentence to cite"):
        citable_passages(from_text("nav.md", "# Aide\n\nSuivant\n\nPrécédent\n\n12\n", kind=".md"))


def test_new_passage_rules_rewrite_documents_without_embedding_again(
    store: PassageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ingest_paths(store, [SEEDS])
    assert first.passages_embedded > 0
    monkeypatch.setattr(vectorstore.ingest, "PASSAGE_RULES", "next")
    again = ingest_paths(store, [SEEDS])
    assert again.updated == first.added and again.passages_embedded == 0
    assert ingest_paths(store, [SEEDS]).unchanged == first.added
