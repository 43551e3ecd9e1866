"""Faults: the store changing under concurrent questions."""

import os
import shutil
import signal
import subprocess
import threading
import time

import httpx
import pytest

from assistant.http.app import create_app
from assistant.runtime import Runtime
from tests.conftest import BIN, ServerProcess, ThreadServer, free_port, run_cli, seeded_data, wait_http, wait_until

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

    env = {"ASSISTANT_DATA_DIR": str(seeded_data(tmp_path / "data"))}
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


@pytest.mark.parametrize("search", ["in memory", "in the store"])
def test_chroma_server_killed_gives_503s_and_service_resumes_when_it_returns(tmp_path, search: str) -> None:
    chroma = shutil.which("chroma", path=str(BIN)) or "chroma"
    port = free_port()
    args = [chroma, "run", "--path", str(tmp_path / "chroma"), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}

    def start_chroma() -> subprocess.Popen:
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", process)
        return process

    store = start_chroma()
    settings = {"ASSISTANT_CHROMA_URL": f"http://127.0.0.1:{port}", "ASSISTANT_COLLECTION": "faults"}
    assert run_cli("ingest", env=settings).returncode == 0
    threshold = "1" if search == "in the store" else "200000"
    api = ServerProcess(
        tmp_path, ASSISTANT_RATE_LIMIT_PER_MINUTE="0", ASSISTANT_SEARCH_IN_STORE_FROM=threshold, **settings
    ).start()
    question = {"question": "Quels pays mènent des manœuvres militaires conjointes ?"}
    try:
        assert httpx.post(f"{api.url}/api/answer", json=question, timeout=30).status_code == 200
        store.send_signal(signal.SIGKILL)
        store.wait()
        # Deliberately a sleep: for up to a second the server answers from its in-memory index
        # without looking at the store, and nothing outside it shows when it looks again.
        time.sleep(1.1)
        started = time.monotonic()
        down = httpx.post(f"{api.url}/api/answer", json=question, timeout=30)
        assert down.status_code == 503 and down.json()["error"]["type"] == "store_unavailable"
        assert time.monotonic() - started < 10
        assert httpx.get(f"{api.url}/readyz", timeout=30).status_code == 503
        store = start_chroma()

        def answered() -> dict | None:
            response = httpx.post(f"{api.url}/api/answer", json=question, timeout=30)
            return response.json() if response.status_code == 200 else None

        back = wait_until(answered, what="an answer once the Chroma server is back", timeout=20, interval=0.5)
        assert "Japon" in back["answer"]
        assert httpx.get(f"{api.url}/readyz", timeout=30).status_code == 200
        assert (tmp_path / "faults-multilingual-e5-small-q4-passages.lexicon.sqlite3").exists() == (
            search == "in the store"
        )
    finally:
        api.stop()
        store.kill()
        store.wait()
