"""The same code against a real Chroma server (`chroma run`)."""

import subprocess

import pytest

from assistant.config import Settings
from assistant.runtime import Runtime, build_runtime
from tests.conftest import BIN, ROOT, SEEDS
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


def test_two_ingest_processes_at_once_lose_and_duplicate_nothing(
    chroma_server: str, embeddings: E5Embeddings, tmp_path
) -> None:
    seed = (SEEDS / "lavrov-visite-coree-du-nord.md").read_text(encoding="utf-8")
    body = seed[: seed.index("\n## ", seed.index("\n## ") + 1)]  # the title and the first section
    shared, folders = tmp_path / "shared", []
    shared.mkdir()
    for i in range(4):
        (shared / f"copie{i}.md").write_text(f"# Copie {i}\n\nNuméro {i}.\n\n{body}", encoding="utf-8")
    for name in ("one", "two"):
        own = tmp_path / name
        own.mkdir()
        (own / f"{name}.md").write_text(f"# Note {name}\n\nUne note à part, numéro {name}.\n", encoding="utf-8")
        folders.append(own)
    env = {
        "ASSISTANT_CHROMA_URL": chroma_server,
        "ASSISTANT_COLLECTION": "twoingests",
        "ASSISTANT_LOG_LEVEL": "warning",
    }
    # Both ingest the shared folder and one of their own, at the same time.
    processes = [
        subprocess.Popen(
            [str(BIN / "assistant"), "ingest", str(shared), str(own)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for own in folders
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    if any(p.returncode for p in processes):  # the whole output, traceback included
        pytest.fail("\n\n".join(f"exit {p.returncode}:\n{out}" for p, out in zip(processes, outputs, strict=True)))
    store = PassageStore(embeddings, chroma_url=chroma_server, collection="twoingests")
    passages = store.all_passages()
    documents = store.documents()
    assert sorted(documents) == sorted([f"copie{i}.md" for i in range(4)] + ["one.md", "two.md"])
    assert len({p.id for p in passages}) == len(passages) == sum(r.passages for r in documents.values())
    for doc_id, record in documents.items():
        assert len(store.passages_of(doc_id)) == record.passages, doc_id
