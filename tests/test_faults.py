"""Faults: the store changing under concurrent questions."""

import threading

import httpx

from assistant.api import create_app
from assistant.runtime import Runtime
from tests.conftest import ThreadServer

NOTE = (
    "# Port de Rason\n\nLe port de Rason accueille désormais des cargos russes chaque semaine, selon les autorités "
    "portuaires locales.\n\nUne liaison ferroviaire rénovée relie le port à la frontière russe depuis cette année.\n"
)


def test_documents_removed_while_questions_are_answered_cause_no_5xx(isolated_runtime: Runtime) -> None:
    settings = isolated_runtime.settings.model_copy(update={"rate_limit_per_minute": 0})
    statuses: list[int] = []
    stop = threading.Event()
    with ThreadServer(create_app(settings, isolated_runtime)) as url:

        def ask() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    for question in ("Quels navires accueille le port de Rason ?", "Qui est Sergueï Lavrov ?"):
                        statuses.append(client.post("/api/answer", json={"question": question}).status_code)

        askers = [threading.Thread(target=ask) for _ in range(3)]
        for thread in askers:
            thread.start()
        with httpx.Client(base_url=url, timeout=30) as admin:
            for _ in range(8):
                added = admin.post("/api/documents", files={"files": ("rason.md", NOTE.encode(), "text/markdown")})
                assert added.status_code == 201
                assert admin.delete("/api/documents/rason.md").status_code == 204
        stop.set()
        for thread in askers:
            thread.join()
    assert statuses and set(statuses) == {200}


def test_foreign_collection_is_reported_and_reindex_rebuilds_it(tmp_path) -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from tests.conftest import run_cli

    env = {"ASSISTANT_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("ingest", env=env).returncode == 0
    client = chromadb.PersistentClient(path=str(tmp_path / "data"), settings=ChromaSettings(anonymized_telemetry=False))
    name = next(c.name for c in client.list_collections() if c.name.endswith("-passages"))
    client.delete_collection(name)
    client.create_collection(name, embedding_function=None, metadata={"owner": "another tool"})
    del client
    broken = run_cli("ask", "Qui est Sergueï Lavrov ?", env=env)
    assert broken.returncode == 1 and "assistant reindex" in broken.stderr and "Traceback" not in broken.stderr
    assert run_cli("reindex", env=env).returncode == 2  # not without --yes
    rebuilt = run_cli("reindex", "--yes", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "1 added" in rebuilt.stdout
    answer = run_cli("ask", "Quels pays mènent des manœuvres militaires conjointes ?", env=env)
    assert answer.returncode == 0 and "Japon" in answer.stdout
