"""Faults of the disk under an embedded store: full, or read-only. Each gives a clear error,
and nothing already stored is lost.

The disk is a small tmpfs mounted for the test, which needs root (as in CI)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import vectorstore.store
from assistant.config import Settings
from assistant.runtime import build_runtime
from tests.conftest import SEEDS, app_client, fill, run_cli, seeded_data
from vectorstore.embeddings import E5Embeddings
from vectorstore.ingest import ingest_paths
from vectorstore.store import PassageStore

NOTE = (
    "# Port de Rason\n\nLe port de Rason accueille désormais des cargos russes chaque semaine, selon les autorités "
    "portuaires locales.\n\nUne liaison ferroviaire rénovée relie le port à la frontière russe depuis cette année.\n"
)
QUESTION = {"question": "Combien de jours dure la visite de Lavrov ?"}


def _mount(disk: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)], check=True, capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB filesystem of its own."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        _mount(disk, "size=64m")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_ingest_on_a_full_disk_is_refused_before_writing(disk: Path, tmp_path: Path) -> None:
    env = {"ASSISTANT_DATA_DIR": str(seeded_data(disk / "data")), "ASSISTANT_STORE_MIN_FREE_MB": "16"}
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "rason.md").write_text(NOTE, encoding="utf-8")
    filler = fill(disk, leave=4 * 2**20)

    refused = run_cli("ingest", str(folder), env=env)
    assert refused.returncode == 1
    assert "not enough free space" in refused.stderr and "nothing was changed" in refused.stderr
    assert "Traceback" not in refused.stderr
    answer = run_cli("ask", QUESTION["question"], env=env)
    assert answer.returncode == 0 and "trois jours" in answer.stdout

    filler.unlink()
    added = run_cli("ingest", str(folder), env=env)
    assert added.returncode == 0, added.stderr
    assert "1 added" in added.stdout


def test_disk_filling_up_during_an_upload_is_a_507_and_nothing_is_lost(
    disk: Path, embeddings: E5Embeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=disk / "data", store_min_free_mb=0)
    store = PassageStore(embeddings, data_dir=settings.data_dir, min_free_bytes=0)
    ingest_paths(store, [SEEDS])
    before = sorted(p.id for p in store.all_passages())
    # Let the write itself meet the full disk, as when something else fills it meanwhile.
    monkeypatch.setattr(vectorstore.store, "BYTES_PER_PASSAGE", 0)
    with app_client(build_runtime(settings, store), rate_limit_per_minute=0) as client:
        filler = fill(disk)
        upload = {"files": ("rason.md", NOTE.encode(), "text/markdown")}
        for _ in range(2):
            refused = client.post("/api/documents", files=upload)
            assert refused.status_code == 507
            assert refused.json()["error"]["type"] == "storage_full"
            assert str(disk) not in refused.text
        assert client.post("/api/answer", json=QUESTION).status_code == 200
        assert [d["id"] for d in client.get("/api/documents").json()["documents"]] == ["lavrov-visite-coree-du-nord.md"]
        assert sorted(p.id for p in store.all_passages()) == before

        filler.unlink()
        assert client.post("/api/documents", files=upload).status_code == 201
        answer = client.post("/api/answer", json={"question": "Quels navires accueille le port de Rason ?"}).json()
        assert answer["found"] and "cargos" in answer["answer"]
    assert len(store.all_passages()) == len(before) + 2


def test_a_read_only_data_directory_is_named_and_left_intact(disk: Path) -> None:
    env = {"ASSISTANT_DATA_DIR": str(seeded_data(disk / "data")), "ASSISTANT_STORE_MIN_FREE_MB": "16"}
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    try:
        refused = run_cli("ingest", env=env)
        assert refused.returncode == 1
        assert "not writable" in refused.stderr and str(disk / "data") in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    again = run_cli("ingest", env=env)
    assert again.returncode == 0 and "1 unchanged" in again.stdout and "0 embedded" in again.stdout


def test_store_turning_read_only_under_the_server_is_a_503(
    disk: Path, embeddings: E5Embeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=disk / "data", store_min_free_mb=16)
    store = PassageStore(embeddings, data_dir=settings.data_dir, min_free_bytes=16 * 2**20)
    ingest_paths(store, [SEEDS])
    # A filesystem the kernel remounts read-only under open files cannot be staged here
    # (remounting is refused while the store has them open), so the database's own
    # error is raised in its place.
    collection = store._passages

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(collection, "upsert", read_only)
    monkeypatch.setattr(collection, "delete", read_only)
    with app_client(build_runtime(settings, store), rate_limit_per_minute=0) as client:
        refused = client.post("/api/documents", files={"files": ("rason.md", NOTE.encode(), "text/markdown")})
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "store_read_only"
        assert client.delete("/api/documents/lavrov-visite-coree-du-nord.md").status_code == 503
        assert client.post("/api/answer", json=QUESTION).json()["found"]
        assert [d["id"] for d in client.get("/api/documents").json()["documents"]] == ["lavrov-visite-coree-du-nord.md"]
