"""Scale-out: several workers over one Chroma server answer alike and see the same documents."""

import os
import subprocess
from pathlib import Path

import httpx

from assistant.runtime import Runtime
from tests.conftest import BIN, ROOT, free_port, run_cli, stop, wait_http, wait_until

NOTE = (
    "# Port de Rason\n\nLe port de Rason accueille désormais des cargos russes chaque semaine, selon les autorités "
    "portuaires locales.\n"
)
ABOUT_NOTE = {"question": "Quels navires le port de Rason accueille-t-il ?"}
SEED_QUESTIONS = [
    "Quels pays mènent des manœuvres militaires conjointes ?",
    "What does North Korea offer Russia, according to the conclusion?",
    "Quel est le salaire de Sergueï Lavrov ?",
]


def found_by_all(url: str, times: int = 12) -> list[bool]:
    # A new connection per request, so that the requests spread over the workers.
    return [httpx.post(f"{url}/api/answer", json=ABOUT_NOTE, timeout=30).json()["found"] for _ in range(times)]


def test_two_workers_over_a_chroma_server(chroma_server: str, runtime: Runtime, tmp_path: Path) -> None:
    env = {
        "ASSISTANT_CHROMA_URL": chroma_server,
        "ASSISTANT_COLLECTION": "scaleout",
        "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0",
    }
    assert run_cli("ingest", env=env).returncode == 0
    port = free_port()
    log = (tmp_path / "workers.log").open("wb")
    # Left to the command: how many embedding threads each worker runs.
    unset = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    server = subprocess.Popen(
        [str(BIN / "assistant"), "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env={**unset, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/readyz", server, timeout=90)
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(children) >= 2, "uvicorn should run two worker processes"
        # The cores shared out between the workers' embedding threads.
        threads = str(max(1, (os.cpu_count() or 1) // 2))
        for child in children:
            environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            assert f"OMP_NUM_THREADS={threads}".encode() in environment
        for question in SEED_QUESTIONS:
            served = httpx.post(f"{url}/api/answer", json={"question": question}, timeout=30).json()
            assert served == runtime.chain.answer(question).model_dump(exclude_none=True), question
        assert not any(found_by_all(url))
        uploaded = httpx.post(f"{url}/api/documents", files={"files": ("rason.md", NOTE.encode(), "text/markdown")})
        assert uploaded.status_code == 201
        # Each worker looks for changes in the store at most once a second.
        wait_until(lambda: all(found_by_all(url)), what="every worker to answer from the new note", timeout=30)
        assert httpx.delete(f"{url}/api/documents/rason.md").status_code == 204
        wait_until(lambda: not any(found_by_all(url)), what="every worker to forget the note", timeout=30)
    finally:
        stop(server)
        log.close()


def test_several_workers_need_a_chroma_server(tmp_path: Path) -> None:
    result = run_cli("serve", "--workers", "2", env={"ASSISTANT_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2 and "ASSISTANT_CHROMA_URL" in result.stderr
