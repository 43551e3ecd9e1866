"""Passage vectors kept on disk: read back by any store or process, bounded, never needed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SEEDS, run_cli
from vectorstore.embeddings import DIMENSIONS, E5Embeddings, vector_cache
from vectorstore.ingest import ingest_paths
from vectorstore.store import PassageStore
from vectorstore.vector_cache import VectorCache

TEXTS = [
    "Visite du ministre : le port de Rason accueille des cargos russes chaque semaine.",
    "Visite du ministre : les deux pays ont signé un accord sur le tourisme.",
    "Visite du ministre : la délégation a visité une usine de Wonsan.",
]


class Counted(E5Embeddings):
    """The real model, recording every text it is made to embed."""

    def __init__(self, cache: VectorCache | None) -> None:
        super().__init__(cache)
        self.embedded: list[str] = []

    def _run(self, texts: list[str], **kwargs: object) -> np.ndarray:
        self.embedded += texts
        return super()._run(texts, **kwargs)


def _vectors(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, DIMENSIONS), dtype=np.float32)


def test_a_passage_embedded_once_is_read_back_by_another_embedder_bit_for_bit(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite3"
    first = Counted(vector_cache(path, 100))
    made = first.embed_documents(TEXTS)
    assert first.embedded == TEXTS
    # Another process's embedder, another batch around them: only the new text is embedded.
    second = Counted(vector_cache(path, 100))
    new = "Visite du ministre : un texte que personne n'a encore embarqué."
    again = second.embed_documents([TEXTS[1], new, TEXTS[0], TEXTS[2]])
    assert second.embedded == [new]
    assert again[0] == made[1] and again[2] == made[0] and again[3] == made[2]
    # What the model itself makes, without any cache.
    assert np.array_equal(np.asarray(again), np.asarray(E5Embeddings().embed_documents([TEXTS[1], new, *TEXTS[::2]])))


def test_another_model_or_window_does_not_read_these_vectors(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite3"
    ours = VectorCache(path, identity="model-a|512", dimensions=DIMENSIONS, max_entries=100)
    ours.put(TEXTS, _vectors(3))
    for identity in ("model-b|512", "model-a|256"):
        other = VectorCache(path, identity=identity, dimensions=DIMENSIONS, max_entries=100)
        assert other.get(TEXTS) == [None, None, None]
    same = VectorCache(path, identity="model-a|512", dimensions=DIMENSIONS, max_entries=100)
    assert all(v is not None for v in same.get(TEXTS))
    # A vector of another size under a key is a miss, not a wrong vector.
    short = VectorCache(path, identity="model-a|512", dimensions=DIMENSIONS // 2, max_entries=100)
    assert short.get(TEXTS[:1]) == [None]


def test_the_file_keeps_the_vectors_last_used_within_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite3"
    texts = [f"texte {i}" for i in range(30)]
    vectors = _vectors(30)
    # Each write by a cache of its own, as short-lived processes would write.
    for i in range(0, 30, 3):
        VectorCache(path, identity="m", dimensions=DIMENSIONS, max_entries=4).put(texts[i : i + 3], vectors[i : i + 3])
    cache = VectorCache(path, identity="m", dimensions=DIMENSIONS, max_entries=4)
    assert len(cache) == 4
    kept = cache.get(texts)
    assert all(v is None for v in kept[:26])
    assert all(np.array_equal(k, v) for k, v in zip(kept[26:], vectors[26:], strict=True))
    # A vector read back counts as the newest: the least recently used goes first.
    for text in (texts[27], texts[26], texts[29]):
        assert cache.get([text])[0] is not None
    cache.put(["texte nouveau"], _vectors(1, seed=5))
    assert [v is not None for v in cache.get([*texts[26:], "texte nouveau"])] == [True, True, False, True, True]
    # Off: nothing kept, nothing read.
    assert vector_cache(tmp_path / "off.sqlite3", 0) is None
    off = VectorCache(tmp_path / "off.sqlite3", identity="m", dimensions=DIMENSIONS, max_entries=0)
    off.put(texts[:2], vectors[:2])
    assert off.get(texts[:2]) == [None, None]


def test_a_corrupt_file_is_started_afresh_and_an_unusable_place_embeds_without_it(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite3"
    path.write_bytes(b"not a database at all " * 200)
    embedder = Counted(vector_cache(path, 100))
    made = embedder.embed_documents(TEXTS[:2])
    assert embedder.embedded == TEXTS[:2]
    # Set aside, not deleted: the setting may have named a file of the user's.
    assert (tmp_path / "vectors.sqlite3.corrupt").read_bytes().startswith(b"not a database")
    reader = Counted(vector_cache(path, 100))
    assert reader.embed_documents(TEXTS[:2]) == made and reader.embedded == []
    # A file where the folder should be: nothing can be created under it, whoever runs this.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    nowhere = Counted(vector_cache(blocker / "cache" / "vectors.sqlite3", 100))
    assert nowhere.embed_documents(TEXTS[:2]) == made
    assert nowhere.embed_documents(TEXTS[:2]) == made and nowhere.embedded == TEXTS[:2] * 2


def test_writers_at_once_keep_every_vector(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite3"
    vectors = _vectors(400, seed=1)
    failures: list[BaseException] = []

    def write(part: int) -> None:
        cache = VectorCache(path, identity="m", dimensions=DIMENSIONS, max_entries=10_000)
        try:
            for i in range(part, 400, 4 * 8):
                texts = [f"texte {j}" for j in range(i, min(i + 8, 400))]
                cache.put(texts, vectors[i : i + len(texts)])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(part * 8,)) for part in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    reader = VectorCache(path, identity="m", dimensions=DIMENSIONS, max_entries=10_000)
    kept = reader.get([f"texte {j}" for j in range(400)])
    assert all(np.array_equal(k, v) for k, v in zip(kept, vectors, strict=True))


def test_a_store_built_again_reads_every_vector_back(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite3"
    first = Counted(vector_cache(path, 10_000))
    report = ingest_paths(PassageStore(first, data_dir=tmp_path / "one"), [SEEDS])
    assert report.passages_embedded > 0 and len(first.embedded) == report.passages_embedded
    # Another store of the machine, the same documents: nothing for the model to do.
    second = Counted(vector_cache(path, 10_000))
    store = PassageStore(second, data_dir=tmp_path / "two")
    again = ingest_paths(store, [SEEDS])
    assert again.added == report.added and second.embedded == []
    one = PassageStore(first, data_dir=tmp_path / "one")
    [doc] = report.added
    assert one.passage_vectors_of(doc).keys() == store.passage_vectors_of(doc).keys()
    for key, vector in one.passage_vectors_of(doc).items():
        assert np.array_equal(vector, store.passage_vectors_of(doc)[key])


@pytest.mark.slow
def test_the_commands_keep_vectors_in_the_configured_file_or_none_when_off(tmp_path: Path) -> None:
    data, kept, unused = tmp_path / "data", tmp_path / "kept.sqlite3", tmp_path / "unused.sqlite3"
    first = run_cli("ingest", env={"ASSISTANT_DATA_DIR": str(data), "ASSISTANT_EMBEDDING_CACHE_FILE": str(kept)})
    assert first.returncode == 0, first.stderr
    passages = PassageStore(E5Embeddings(), data_dir=data).count()
    rows = VectorCache(kept, identity="", dimensions=DIMENSIONS, max_entries=1)
    assert len(rows) == passages > 0
    off = {"ASSISTANT_DATA_DIR": str(data), "ASSISTANT_EMBEDDING_CACHE_FILE": str(unused)}
    again = run_cli("reindex", "--yes", env={**off, "ASSISTANT_EMBEDDING_CACHE_ENTRIES": "0"})
    assert again.returncode == 0, again.stderr
    assert not unused.exists() and PassageStore(E5Embeddings(), data_dir=data).count() == passages
