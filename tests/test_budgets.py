"""Bounded work: splitting is linear, uploads and long texts have budgets, and nothing
heavy runs on the event loop."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import textwrap
import threading

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.http import document_routes as routes_documents
from assistant.models import Message
from assistant.runtime import Runtime
from tests.conftest import ROOT, ServerProcess, app_client, seeded_data, wait_until
from vectorstore.chunking import chunk
from vectorstore.documents import MAX_LABEL_CHARS, from_text
from vectorstore.embeddings import QUERY_TOKENS, Abandoned, Account, E5Embeddings, FairLock, account
from vectorstore.ingest import ingest_document
from vectorstore.store import PassageStore

SEED = "lavrov-visite-coree-du-nord.md"
# Shapes that made the splitter retry a line from every dot, space or line break.
SHAPES = {
    "numbered dots": "12. ",
    "initials": "J. ",
    "a run of dots": ".",
    "one word, no space": "a",
    "short lines": "mot\n",
    "wrapped lines": "un mot qui continue\n",
    "list items": "- a.\n",
    "nested brackets": "((((]]]]",
    "dot then spaces": "x." + " " * 200,
    "closing quotes": ".»",
    "heading hashes": "# x # # #\n",
}


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(sorted(SHAPES.values())), min_size=1, max_size=6),
    repeats=st.integers(1, 3000),
    tail=st.text(max_size=40),
)
def test_passages_stay_exact_slices_whatever_the_shape(pieces: list[str], repeats: int, tail: str) -> None:
    text = "".join(pieces) * repeats + tail
    document = from_text("shape.md", text, kind=".md")
    passages = chunk(document)
    for passage in passages:
        assert document.text[passage.start : passage.end] == passage.text and passage.text.strip()
    assert all(a.end <= b.start for a, b in itertools.pairwise(passages))


@pytest.mark.slow
def test_ten_megabytes_of_any_shape_are_split() -> None:
    """Each shape at the upload limit; a splitter that is quadratic would take days (a
    40 KB file of "12. " took 17 s), a linear one takes seconds."""
    script = textwrap.dedent(
        f"""
        from vectorstore.chunking import chunk
        from vectorstore.documents import from_text
        shapes = {SHAPES!r}
        for name, piece in shapes.items():
            size = 10 * 1024 * 1024 if name == "numbered dots" else 2 * 1024 * 1024
            passages = chunk(from_text("big.md", piece * (size // len(piece)), kind=".md"))
            print(name, len(passages), flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(SHAPES)


def test_upload_work_runs_off_the_event_loop(isolated_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    on_loop: dict[str, bool] = {}

    def spy(name: str, real):
        def wrapped(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                on_loop[name] = True
            except RuntimeError:
                on_loop.setdefault(name, False)
            return real(*args, **kwargs)

        return wrapped

    for name in ("parse", "citable_passages", "ingest_document"):
        monkeypatch.setattr(routes_documents, name, spy(name, getattr(routes_documents, name)))
    note = "Le port de Rason accueille des cargos russes chaque semaine, selon les autorités locales."
    with app_client(isolated_runtime) as client:
        response = client.post("/api/documents", files={"files": ("rason.txt", note.encode(), "text/plain")})
    assert response.status_code == 201
    assert on_loop == {"parse": False, "citable_passages": False, "ingest_document": False}


def test_an_upload_reads_the_document_list_once(isolated_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = []
    real = PassageStore.documents

    def counted(self: PassageStore):
        reads.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(PassageStore, "documents", counted)
    files = [
        ("files", (f"note-{i}.txt", f"La note numéro {i} parle du port de Rason et des cargos.".encode(), "text/plain"))
        for i in range(12)
    ]
    with app_client(isolated_runtime) as client:
        response = client.post("/api/documents", files=files)
    assert response.status_code == 201 and len(response.json()["documents"]) == 12
    assert len(reads) == 1


def test_a_sentence_a_document_repeats_is_stored_once(isolated_runtime: Runtime) -> None:
    page = "Rapport annuel de la société, page confidentielle.\n\n"
    body = "Le port de Rason accueille des cargos russes chaque semaine.\n\n"
    text = (page * 3000) + body
    with app_client(isolated_runtime) as client:
        response = client.post("/api/documents", files={"files": ("pages.txt", text.encode(), "text/plain")})
        detail = client.get("/api/documents/pages.txt").json()
    assert response.status_code == 201
    assert response.json()["documents"][0]["passages"] == 2
    assert sorted(detail["text"][s["start"] : s["end"]] for s in detail["spans"]) == sorted(
        [page.strip(), body.strip()]
    )


@pytest.fixture(scope="module")
def budget_server(tmp_path_factory: pytest.TempPathFactory):
    """A real server with small upload budgets, over its own copy of the seeds."""
    data = seeded_data(tmp_path_factory.mktemp("budgets"))
    server = ServerProcess(
        data,
        ASSISTANT_MAX_DOCUMENT_PASSAGES="40",
        ASSISTANT_MAX_UPLOAD_PASSAGES="60",
        ASSISTANT_MAX_UPLOAD_FILES="3",
    ).start()
    yield server.url
    server.stop()


def _sentences(count: int, topic: str) -> bytes:
    return "\n\n".join(f"La phrase {i} sur {topic} décrit un fait distinct du rapport." for i in range(count)).encode()


def _stored(url: str) -> list[str]:
    return sorted(d["id"] for d in httpx.get(f"{url}/api/documents").json()["documents"])


@pytest.mark.parametrize(
    ("files", "kind", "names"),
    [
        ([("long.txt", _sentences(45, "le port"))], "too_large", ["long.txt", "40", "ASSISTANT_MAX_DOCUMENT_PASSAGES"]),
        (
            [("first.txt", _sentences(35, "le port")), ("second.txt", _sentences(35, "le rail"))],
            "too_large",
            ["60", "ASSISTANT_MAX_UPLOAD_PASSAGES"],
        ),
        (
            [(f"n{i}.txt", _sentences(2, f"la note {i}")) for i in range(4)],
            "too_many_files",
            ["3", "ASSISTANT_MAX_UPLOAD_FILES"],
        ),
    ],
    ids=["passages of one document", "passages of one upload", "files of one upload"],
)
def test_an_upload_over_its_budget_is_refused_before_anything_is_stored(
    budget_server: str, files: list[tuple[str, bytes]], kind: str, names: list[str]
) -> None:
    response = httpx.post(
        f"{budget_server}/api/documents",
        files=[("files", (name, data, "text/plain")) for name, data in files],
        timeout=120,
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["type"] == kind and all(name in error["message"] for name in names)
    assert _stored(budget_server) == [SEED]


def test_an_upload_within_its_budget_is_stored(budget_server: str) -> None:
    response = httpx.post(
        f"{budget_server}/api/documents",
        files=[("files", ("fits.txt", _sentences(30, "le port"), "text/plain"))],
        timeout=120,
    )
    assert response.status_code == 201 and response.json()["documents"][0]["passages"] == 30
    assert _stored(budget_server) == ["fits.txt", SEED]
    assert httpx.delete(f"{budget_server}/api/documents/fits.txt").status_code == 204


def test_text_given_to_the_model_is_cut_to_what_it_reads(embeddings: E5Embeddings) -> None:
    long = "Le ministre russe des Affaires étrangères se rend à Pyongyang pour trois jours. " * 120
    cut, tokens = embeddings.fit(long, QUERY_TOKENS, is_query=True)
    assert long.startswith(cut) and len(cut) < len(long)
    assert tokens == embeddings.token_count(cut, is_query=True) <= QUERY_TOKENS
    # The next word would not fit.
    longer = long[: len(cut) + len(long[len(cut) :].split(" ", 2)[0]) + 1]
    assert embeddings.token_count(longer, is_query=True) > QUERY_TOKENS or longer == cut
    short = "Combien de jours dure la visite ?"
    assert embeddings.fit(short, QUERY_TOKENS, is_query=True)[0] == short


def test_a_follow_up_with_the_longest_history_costs_a_bounded_embedding_budget(runtime: Runtime) -> None:
    turn = "La visite de Lavrov à Pyongyang porte sur la coopération et la sécurité régionale. " * 95
    history = [Message(role="user" if i % 2 == 0 else "assistant", content=turn[:8000]) for i in range(20)]
    with account() as spent:
        answer = runtime.chain.answer("Et pourquoi ?", history)
    assert answer.answer
    # Query, question, focus and the two latest answers: each cut to what a question needs.
    assert spent.calls <= 5 and spent.tokens <= 5 * QUERY_TOKENS


def _engine_order(waiters: list[tuple[str, int, int, int]]) -> list[str]:
    """The order in which waiters (name, tokens served, start order, tokens of this pass),
    queued one after the other while the lock is held, get the engine."""
    lock = FairLock()
    order: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with lock.hold(0):
            holding.set()
            release.wait(10)
            order.append("holder")

    def waiter(name: str, served: int, started: int, cost: int) -> None:
        with lock.hold(served, started, cost):
            order.append(name)

    first = threading.Thread(target=holder)
    first.start()
    holding.wait(10)
    threads = []
    for n, (name, served, started, cost) in enumerate(waiters, start=1):
        thread = threading.Thread(target=waiter, args=(name, served, started, cost))
        thread.start()
        threads.append(thread)
        # Queued in this order: each waits before the next asks.
        wait_until(lambda n=n: len(lock._waiting) >= n, what=f"{name} to wait for the lock", interval=0.01)
    release.set()
    for thread in [first, *threads]:
        thread.join(10)
    return order


def test_the_engine_serves_questions_in_the_order_they_started_and_heavy_requests_after() -> None:
    # A heavy request (an upload, a long history) waits behind a question that came later.
    assert _engine_order([("heavy", 5000, 1, 20), ("light", 30, 2, 20)]) == ["holder", "light", "heavy"]
    # So does a request whose pass alone is heavy: a batch of passages, a full-window text.
    assert _engine_order([("batch", 0, 1, 8 * 60), ("question", 0, 2, 20)]) == ["holder", "question", "batch"]
    # A question waiting for its second pass keeps its place ahead of questions that started
    # after it, though they have been served nothing yet: least-served first starved it.
    assert _engine_order([("new", 0, 3, 20), ("newer", 0, 4, 20), ("second pass", 40, 2, 15)]) == [
        "holder",
        "second pass",
        "new",
        "newer",
    ]
    # Among heavy requests, the least served goes first.
    assert _engine_order([("heavier", 9000, 1, 480), ("heavy", 2000, 2, 480)]) == ["holder", "heavy", "heavier"]


def test_uploads_are_charged_to_their_request(isolated_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload's embedding counts against it, so questions asked meanwhile go first."""
    seen: list[int] = []
    embeddings = isolated_runtime.store.embeddings  # the session's embedder, shared by every store
    real = embeddings._run

    def spy(texts: list[str], **kwargs: object):
        from vectorstore.embeddings import _ACCOUNT

        charged = _ACCOUNT.get()
        seen.append(-1 if charged is None else charged.tokens)
        return real(texts, **kwargs)

    monkeypatch.setattr(embeddings, "_run", spy)
    with app_client(isolated_runtime) as client:
        response = client.post("/api/documents", files={"files": ("many.txt", _sentences(20, "le port"), "text/plain")})
    assert response.status_code == 201
    assert -1 not in seen and seen == sorted(seen) and seen[-1] > 0


def test_a_huge_title_or_heading_is_stored_and_embedded_as_a_short_label(store: PassageStore) -> None:
    # Every passage stores its document's title and section and embeds the title before its
    # sentence: a 1 MB heading must not be copied, tokenized and hashed once per passage.
    body = " ".join(f"La phrase numéro {i} parle de la visite du ministre." for i in range(30))
    text = "# " + "titre " * 200_000 + "\n\n## " + "x" * 300_000 + "\n\n" + body + "\n"
    ingest_document(store, from_text("huge-title.md", text, kind=".md"))
    passages = store.passages_of("huge-title.md")
    assert passages
    assert all(len(p.title) <= MAX_LABEL_CHARS and len(p.section or "") <= MAX_LABEL_CHARS for p in passages)
    assert passages[0].title.endswith("…")
    stored = store.document_text("huge-title.md")
    assert stored == text and all(stored[p.start : p.end] == p.text for p in passages)


def test_embedding_work_of_a_request_past_its_budget_is_dropped(embeddings: E5Embeddings) -> None:
    with account() as gone:
        gone.abandoned = True
        with pytest.raises(Abandoned):
            embeddings.query_vector("une question que personne n'attend plus zqa")
    assert gone.calls == 0
    # Abandoned while it waits its turn: the engine goes to the next waiter instead.
    waiting = Account()
    failures: list[BaseException] = []

    def ask() -> None:
        with account(waiting):
            try:
                embeddings.query_vector("une autre question que personne n'attend plus zqb")
            except Abandoned as exc:
                failures.append(exc)

    with embeddings._engine.hold(0):
        thread = threading.Thread(target=ask)
        thread.start()
        wait_until(lambda: len(embeddings._engine._waiting) >= 1, what="the request to wait for the engine")
        waiting.abandoned = True
    thread.join(10)
    assert len(failures) == 1 and waiting.calls == 0
    with account() as live:
        embeddings.query_vector("une question attendue zqc")
    assert live.calls == 1
