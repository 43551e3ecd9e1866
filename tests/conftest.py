"""Shared fixtures: the real embedder, a real Chroma store holding the seeds, servers."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import httpx
import pytest

from assistant.answering.chain import AnswerChain
from assistant.config import Settings
from assistant.runtime import Runtime, build_embeddings, build_runtime
from tests.launcher import LAUNCHER, Launched
from vectorstore.embeddings import E5Embeddings
from vectorstore.ingest import ingest_paths
from vectorstore.store import PassageStore

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
BIN = Path(sys.executable).parent
T = TypeVar("T")


# The fast tier (`make check`) leaves out what starts processes, servers or a browser, or
# asks the whole question bank: modules made of such tests, and tests using such fixtures.
SLOW_MODULES = {
    "test_web",
    "test_web_defects",
    "test_security",
    "test_transport",
    "test_disk",
    "test_faults",
    "test_cli",
    "test_scale",
    "test_store_server",
    "test_evaluation",
    "test_llm_server",
}
SLOW_FIXTURES = {"server", "chroma_server", "keyed_server", "budget_server", "browser", "bank_runtime"}


def pytest_configure(config: pytest.Config) -> None:
    """One file of passage vectors for the run, shared by its workers and the commands they
    start (set before the workers start, so they inherit it), and removed after it: a text
    embedded by one test is read back by the next, never carried from an earlier run."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    folder = Path(tempfile.mkdtemp(prefix="assistant-test-vectors-"))
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    os.environ["ASSISTANT_EMBEDDING_CACHE_FILE"] = str(folder / "vectors.sqlite3")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tier."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _no_chroma_default_embedder() -> Iterator[None]:
    """Chroma's own embedding function downloads a model: any call to it fails the run."""
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Chroma's default embedding function was used")

    original = ONNXMiniLM_L6_V2._download_model_if_not_exists
    ONNXMiniLM_L6_V2._download_model_if_not_exists = refuse  # type: ignore[method-assign]
    yield
    ONNXMiniLM_L6_V2._download_model_if_not_exists = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def embeddings() -> E5Embeddings:
    return build_embeddings(Settings())


@pytest.fixture(scope="session")
def seeded_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("seeded"))


_SHARED_ROOT: list[Path] = []


@pytest.fixture(autouse=True, scope="session")
def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where folders built once for the whole run are kept: beside the workers' own
    temporary folders under `pytest -n 2`, so that both find them."""
    base = tmp_path_factory.getbasetemp()
    _SHARED_ROOT[:] = [base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base]


def shared_folder(name: str, build: Callable[[Path], None]) -> Path:
    """A folder ``build`` fills once for the whole run, whichever worker asks first (the
    others wait for it, under a lock); never written afterwards, so tests copy it."""
    import fcntl

    [root] = _SHARED_ROOT
    folder = root / f"shared-{name}"
    with (root / f"shared-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder / "data")
            (folder / "built").touch()
    return folder / "data"


def _ingested(embeddings: E5Embeddings, *paths: Path) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        report = ingest_paths(PassageStore(embeddings, data_dir=folder), list(paths))
        assert report.ok and report.added, report.failed

    return build


@pytest.fixture(scope="session")
def seeded_template(embeddings: E5Embeddings) -> Path:
    """A data folder holding the seeds, ingested once a run and never opened again: each
    test or store that needs the seeds gets a copy (ingesting anew cost each seconds)."""
    return shared_folder("seeds", _ingested(embeddings, SEEDS))


@pytest.fixture(scope="session")
def seeded_store(seeded_settings: Settings, embeddings: E5Embeddings, seeded_template: Path) -> PassageStore:
    shutil.copytree(seeded_template, seeded_settings.data_dir, dirs_exist_ok=True)
    store = PassageStore(embeddings, data_dir=seeded_settings.data_dir)
    assert store.count() > 0 and "lavrov-visite-coree-du-nord.md" in store.documents()
    return store


@pytest.fixture(scope="session")
def runtime(seeded_settings: Settings, seeded_store: PassageStore) -> Runtime:
    return build_runtime(seeded_settings, seeded_store)


@pytest.fixture(scope="session")
def bank_runtime(tmp_path_factory: pytest.TempPathFactory, embeddings: E5Embeddings) -> Runtime:
    """The seed and the articles written for the tests, in one store."""
    documents = ROOT / "tests" / "eval" / "documents"
    template = shared_folder("bank", _ingested(embeddings, SEEDS, documents))
    settings = Settings(data_dir=tmp_path_factory.mktemp("bank") / "data")
    shutil.copytree(template, settings.data_dir)
    store = PassageStore(embeddings, data_dir=settings.data_dir)
    assert len(store.documents()) == 1 + len(list(documents.iterdir()))
    return build_runtime(settings, store)


@pytest.fixture
def store(tmp_path: Path, embeddings: E5Embeddings) -> PassageStore:
    """An empty store of its own."""
    return PassageStore(embeddings, data_dir=tmp_path / "data")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], T], *, what: str, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and
    return that; past ``timeout`` seconds, an AssertionError saying ``what`` was awaited.

    For waiting on something another thread or process does. A test never sleeps for that:
    a sleep is either too short on a loaded machine or wasted on a fast one."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return result


def wait_http(url: str, process: Launched | subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    wait_until(answers, what=f"{url} to answer", timeout=timeout, interval=0.1)


def stop(process: Launched | subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (the `chroma` command of the chromadb wheel) on loopback."""
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    chroma = shutil.which("chroma", path=str(BIN)) or shutil.which("chroma")
    assert chroma, "the chroma command is missing"
    log = (path / "server.log").open("wb")
    process = subprocess.Popen(
        [chroma, "run", "--path", str(path / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/api/v2/heartbeat", process)
        yield url
    finally:
        stop(process)
        log.close()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the `assistant` command (forked by the launcher, see tests/launcher.py)."""
    return LAUNCHER.run(list(args), env={**os.environ, **(env or {})}, cwd=ROOT, timeout=timeout)


@pytest.fixture
def isolated_runtime(tmp_path: Path, embeddings: E5Embeddings, seeded_template: Path) -> Runtime:
    """A store of its own holding the seeds, for tests that change documents."""
    settings = Settings(data_dir=tmp_path / "data")
    shutil.copytree(seeded_template, settings.data_dir)
    return build_runtime(settings, PassageStore(embeddings, data_dir=settings.data_dir))


def with_own_chain(runtime: Runtime) -> Runtime:
    """The runtime with an answer chain of its own, built like its chain, over the same store
    and corpus: for a test that replaces the chain's stages, leaving the shared chain alone."""
    chain = runtime.chain
    own = AnswerChain(runtime.corpus, runtime.settings, chain.chat_model, chain.decision)
    return Runtime(settings=runtime.settings, store=runtime.store, corpus=runtime.corpus, chain=own)


def app_client(runtime: Runtime, **overrides: object):
    """A test client over the real app, chain and store, with settings overridden."""
    from fastapi.testclient import TestClient

    from assistant.http.app import create_app

    settings = runtime.settings.model_copy(update=overrides)
    return TestClient(create_app(settings, runtime))


class ThreadServer:
    """uvicorn serving an app in a thread of this process (to reach into the app)."""

    def __init__(self, app: object) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()

        def started() -> bool:
            if not self.thread.is_alive():
                raise RuntimeError("the in-process server stopped before it started")
            return self.server.started

        wait_until(started, what="the in-process server to start", timeout=30, interval=0.02)
        return f"http://127.0.0.1:{self.port}"

    def idle(self) -> bool:
        """No request is being handled (uvicorn's own set of request tasks is empty)."""
        return not self.server.server_state.tasks

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`assistant serve` in its own process, over its own store holding the seeds."""
    data = seeded_data(tmp_path_factory.mktemp("api-data"))
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data)}
    port = free_port()
    log = (Path(data) / "server.log").open("wb")
    process = LAUNCHER.popen(["serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", process)
        yield url
    finally:
        stop(process)
        log.close()


class ServerProcess:
    """`assistant serve` in its own process over a given data folder, with extra settings."""

    def __init__(self, data: Path, **env: str) -> None:
        self.data = data
        self.env = {**os.environ, "ASSISTANT_DATA_DIR": str(data), **env}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Launched | subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        log = (self.data / f"server-{self.port}.log").open("ab")
        self.process = LAUNCHER.popen(
            ["serve", "--port", str(self.port)], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        wait_http(f"{self.url}/readyz", self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            stop(self.process)


def _cli_ingested(folder: Path) -> None:
    result = run_cli("ingest", env={"ASSISTANT_DATA_DIR": str(folder)})
    assert result.returncode == 0, result.stderr


def seeded_data(folder: Path) -> Path:
    """A data folder holding the seeds as the CLI ingests them: a copy of one folder the CLI
    filled once a run (each ingest by a process of its own cost a test seconds)."""
    shutil.copytree(shared_folder("cli-seeds", _cli_ingested), folder, dirs_exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def _chromium() -> Iterator:
    """Debian's Chromium driven by Playwright, launched once a worker (a launch cost seconds
    of CPU); skipped, or an error under ASSISTANT_REQUIRE_BROWSER, where it is missing."""
    from tests.web_helpers import CHROMIUM, FLAGS, playwright_api

    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def browser(_chromium) -> Iterator:
    """The worker's browser; the contexts (and pages) a test opens are closed after it, so
    that none keeps running beside the next tests."""
    yield _chromium
    for context in _chromium.contexts:
        context.close()


def sse_events(text: str) -> list[tuple[str, dict]]:
    """(event name, JSON data) of every event of a Server-Sent Events body."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((fields.get("event", "message"), json.loads(fields["data"])))
    return out


# A near miss: the article covers Russia's exchanges with North Korea but gives no amount, so
# the answer is refused and the closest passages are offered. If a refitted decision stops
# offering passages for it, pick another detail the article leaves out about a topic it covers.
NEAR_MISS = "Quel est le montant des échanges commerciaux entre la Russie et la Corée du Nord ?"
ANSWERED = "Quels mécanismes alternatifs de paiement pourraient être utilisés ?"
CITATION_FIELDS = {"id", "document", "title", "section", "text", "start", "end", "score"}


def document_getter(get: Callable[..., httpx.Response]) -> Callable[[str], dict]:
    """GET /api/documents/{id} through a client's ``get`` (httpx or TestClient), as JSON."""

    def fetch(document: str) -> dict:
        response = get(f"/api/documents/{quote(document)}")
        assert response.status_code == 200, response.text
        return response.json()

    return fetch


def assert_refusal_with_related(
    answer: str, found: bool, citations: list[dict], related: list[dict], document: Callable[[str], dict]
) -> None:
    """A refusal: nothing cited, and the closest passages have the citation shape and point
    at their exact span in the document (document_text[start:end] == text)."""
    assert found is False and citations == []
    assert related, "the refusal offers no closest passages"
    assert not re.search(r"\[\d", answer), "a refusal cites nothing"
    assert [c["id"] for c in related] == list(range(1, len(related) + 1))
    for passage in related:
        assert set(passage) == CITATION_FIELDS
        text = document(passage["document"])["text"]
        assert text[passage["start"] : passage["end"]] == passage["text"]


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the disk up, then give back `leave` bytes."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler
