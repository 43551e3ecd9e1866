"""What the server lets out, and to whom: no server paths in its answers, debug traces kept for
admin keys, documented error types for malformed bodies, document ids that cannot pass for
one another."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from pydantic import ValidationError

from assistant.config import Settings
from assistant.http.document_routes import shown_source
from assistant.runtime import Runtime
from tests.conftest import ROOT, SEEDS, ServerProcess, app_client, seeded_data, sse_events
from vectorstore.documents import from_text, load, lookalike_key
from vectorstore.ingest import ingest_document, ingest_paths
from vectorstore.store import DocumentRecord, PassageStore

SEED = "lavrov-visite-coree-du-nord.md"
FULLWIDTH_SEED = "ｌavrov-visite-coree-du-nord.md"  # a fullwidth ｌ (U+FF4C) in front
CASE_VARIANT = "Lavrov-visite-coree-du-nord.md"
READER = {"Authorization": "Bearer reader-key"}
ADMIN = {"Authorization": "Bearer admin-key"}
ASK = {"question": "Quels pays mènent des manœuvres militaires conjointes ?"}
NOTE = (
    "# Note sur le port de Rason\n\nLe port de Rason accueille désormais des cargos russes chaque semaine, "
    "selon les autorités portuaires locales.\n"
)
STAGES = ["condense_question", "retrieve", "select_passages", "answer", "check_citations"]


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`assistant serve` over the seeds, ingested by the CLI, with reader and admin keys."""
    data = seeded_data(tmp_path_factory.mktemp("exposure"))
    server = ServerProcess(
        data,
        ASSISTANT_API_KEYS="reader-key",
        ASSISTANT_ADMIN_KEYS="admin-key",
        ASSISTANT_RATE_LIMIT_PER_MINUTE="0",
    ).start()
    try:
        yield server
    finally:
        server.stop()


def documents(server: ServerProcess) -> list[dict]:
    response = httpx.get(f"{server.url}/api/documents", headers=READER, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["documents"]


# Server paths ---------------------------------------------------------------------------


def test_readyz_gives_the_status_to_anyone_and_the_details_to_readers_without_a_path(
    keyed_server: ServerProcess,
) -> None:
    url = f"{keyed_server.url}/readyz"
    anonymous = httpx.get(url, timeout=30)
    reader = httpx.get(url, headers=READER, timeout=30)
    wrong = httpx.get(url, headers={"Authorization": "Bearer guess"}, timeout=30)
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ready"}
    details = reader.json()
    assert reader.status_code == 200 and details["status"] == "ready"
    assert details["store"] == "embedded" and details["documents"] == 1 and details["passages"] > 0
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "unauthorized"
    for response in (anonymous, reader):
        assert str(keyed_server.data) not in response.text and str(ROOT) not in response.text


def test_documents_show_where_they_came_from_without_server_paths(keyed_server: ServerProcess) -> None:
    listed = documents(keyed_server)
    detail = httpx.get(f"{keyed_server.url}/api/documents/{SEED}", headers=READER, timeout=30)
    assert [d["source"] for d in listed] == [SEED]
    assert detail.status_code == 200 and detail.json()["source"] == SEED
    assert str(SEEDS) not in detail.text and str(ROOT) not in json.dumps(listed)


@pytest.mark.parametrize(
    ("source", "root", "shown"),
    [
        ("/srv/corpus/seeds/lavrov.md", "/srv/corpus/seeds", "lavrov.md"),
        ("/srv/corpus/seeds/2024/notes/a.md", "/srv/corpus/seeds", "2024/notes/a.md"),
        ("/srv/corpus/seeds-old/a.md", "/srv/corpus/seeds", "a.md"),
        ("C:\\Users\\ana\\docs\\rapport.pdf", "C:\\Users\\ana", "docs/rapport.pdf"),
        ("D:\\partage\\note.txt", "", "note.txt"),
        ("upload:note.md", "", "upload:note.md"),
    ],
)
def test_a_source_is_shown_under_its_ingested_folder_or_by_name(source: str, root: str, shown: str) -> None:
    record = DocumentRecord(
        id="x", title="x", source=source, root=root, content_hash="", passages=1, ingested_at="", language="fr"
    )
    assert shown_source(record) == shown


# Debug traces ---------------------------------------------------------------------------


def test_debug_traces_need_an_admin_key_on_a_keyed_server(keyed_server: ServerProcess) -> None:
    asked = {**ASK, "debug": True}
    for path in ("/api/answer", "/api/answer/stream"):
        refused = httpx.post(f"{keyed_server.url}{path}", json=asked, headers=READER, timeout=60)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["type"] == "forbidden"
        assert "ASSISTANT_ADMIN_KEYS" in refused.json()["error"]["message"]
    answer = httpx.post(f"{keyed_server.url}/api/answer", json=asked, headers=ADMIN, timeout=60)
    streamed = httpx.post(f"{keyed_server.url}/api/answer/stream", json=asked, headers=ADMIN, timeout=60)
    plain = httpx.post(f"{keyed_server.url}/api/answer", json=ASK, headers=READER, timeout=60)
    assert [step["stage"] for step in answer.json()["trace"]] == STAGES
    done = [data for name, data in sse_events(streamed.text) if name == "done"]
    assert [step["stage"] for step in done[0]["trace"]] == STAGES
    assert plain.status_code == 200 and plain.json()["found"] and "trace" not in plain.json()


@pytest.mark.parametrize(
    ("overrides", "headers", "traced"),
    [
        ({}, {}, True),  # a local open server: traces stay open by default
        ({"admin_keys": "admin-key"}, {}, False),  # reading is open, but keys are set
        ({"admin_keys": "admin-key"}, ADMIN, True),
        ({"api_keys": "reader-key", "admin_keys": "admin-key", "debug_traces": "open"}, READER, True),
        ({"debug_traces": "admin"}, {}, False),  # admin without admin keys: traces for no one
    ],
)
def test_debug_traces_follow_the_setting(
    runtime: Runtime, overrides: dict[str, str], headers: dict[str, str], traced: bool
) -> None:
    with app_client(runtime, **overrides) as client:
        response = client.post("/api/answer", json={**ASK, "debug": True}, headers=headers)
    if traced:
        assert response.status_code == 200 and [s["stage"] for s in response.json()["trace"]] == STAGES
    else:
        assert response.status_code == 403 and response.json()["error"]["type"] == "forbidden"


def test_debug_traces_setting_refuses_other_values() -> None:
    assert Settings(debug_traces=" Admin ").debug_traces == "admin"
    with pytest.raises(ValidationError, match="ASSISTANT_DEBUG_TRACES must be open or admin"):
        Settings(debug_traces="sometimes")


# Error types ----------------------------------------------------------------------------


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "exposure-boundary") -> bytes:
    """A multipart/form-data body written by hand: (field name, file name or None, content)."""
    out = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(out) + f"--{boundary}--\r\n".encode()


FORM = {"Content-Type": "multipart/form-data; boundary=exposure-boundary"}
TEXT = b"Une note assez longue pour former un passage a elle seule, avec deux phrases. La voici."


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind"),
    [
        (multipart([("files", "note.md", TEXT)]), {"Content-Type": "multipart/form-data"}, 400, "invalid_upload"),
        (multipart([("files", f"n{i}.md", TEXT) for i in range(1001)]), FORM, 413, "too_many_files"),
        (multipart([("files", "n" * 5000 + ".md", TEXT)]), FORM, 400, "invalid_upload"),
        (multipart([("files", "n" * 300 + ".md", TEXT)]), FORM, 422, "invalid_upload"),
        (multipart([("files", None, TEXT)]), FORM, 422, "invalid_upload"),
        (multipart([("other", "note.md", TEXT), ("files", None, TEXT)]), FORM, 422, "invalid_upload"),
        (b"--exposure-boundary\r\nno headers at all", FORM, 400, "invalid_upload"),
    ],
    ids=["no-boundary", "1001-files", "5000-char-name", "300-char-name", "text-field", "text-beside-file", "garbage"],
)
def test_malformed_uploads_get_a_documented_error_type_and_change_nothing(
    keyed_server: ServerProcess, body: bytes, headers: dict[str, str], status: int, kind: str
) -> None:
    before = documents(keyed_server)
    response = httpx.post(f"{keyed_server.url}/api/documents", content=body, headers={**ADMIN, **headers}, timeout=60)
    assert (response.status_code, response.json()["error"]["type"]) == (status, kind), response.text
    message = response.json()["error"]["message"]
    assert "<class" not in message and "UploadFile" not in message and len(message) < 200
    assert documents(keyed_server) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/answer", ASK),
        ("/api/answer/stream", ASK),
        ("/v1/chat/completions", {"model": "document-assistant", "messages": [{"role": "user", "content": "Qui ?"}]}),
    ],
)
def test_json_bodies_that_are_not_utf8_are_a_400(keyed_server: ServerProcess, path: str, body: dict) -> None:
    def post(content: bytes) -> httpx.Response:
        headers = {**READER, "Content-Type": "application/json"}
        return httpx.post(f"{keyed_server.url}{path}", content=content, headers=headers, timeout=60)

    assert post(json.dumps(body).encode()).status_code == 200
    assert post(b"\xef\xbb\xbf" + json.dumps(body).encode()).status_code == 200  # UTF-8 with a byte-order mark
    for encoding in ("utf-16", "utf-16-le", "utf-32", "utf-32-be"):
        response = post(json.dumps(body).encode(encoding))
        assert response.status_code == 400, (encoding, response.text)
        assert response.json()["error"]["type"] == "invalid_json"


# Look-alike ids -------------------------------------------------------------------------


def test_a_lookalike_upload_names_the_same_document_and_case_variants_are_flagged(
    isolated_runtime: Runtime,
) -> None:
    seed = (SEEDS / SEED).read_bytes()
    with app_client(isolated_runtime) as client:
        replaced = client.post("/api/documents", files=[("files", (FULLWIDTH_SEED, seed, "text/markdown"))])
        assert replaced.status_code == 201 and [d["id"] for d in replaced.json()["documents"]] == [SEED]
        assert [d["id"] for d in client.get("/api/documents").json()["documents"]] == [SEED]
        assert client.get(f"/api/documents/{quote(FULLWIDTH_SEED)}").json()["id"] == SEED

        added = client.post("/api/documents", files=[("files", (CASE_VARIANT, NOTE.encode(), "text/markdown"))])
        assert added.json()["documents"][0] == {"id": CASE_VARIANT, "status": "added", "passages": 1}
        listed = {d["id"]: d["lookalikes"] for d in client.get("/api/documents").json()["documents"]}
        assert listed == {CASE_VARIANT: [SEED], SEED: [CASE_VARIANT]}

        # Ｌ (fullwidth capital) normalises to the variant's id: read and delete it that way.
        fullwidth_variant = "Ｌ" + CASE_VARIANT[1:]
        assert client.get(f"/api/documents/{quote(fullwidth_variant)}").json()["lookalikes"] == [SEED]
        assert client.delete(f"/api/documents/{quote(fullwidth_variant)}").status_code == 204
        listed = client.get("/api/documents").json()["documents"]
    assert [(d["id"], d["lookalikes"]) for d in listed] == [(SEED, [])]


def test_an_id_stored_before_normalisation_stays_reachable_and_is_flagged(isolated_runtime: Runtime) -> None:
    # What an upload of that name stored before ids were normalised.
    ingest_document(isolated_runtime.store, from_text(FULLWIDTH_SEED, NOTE, kind=".md"))
    with app_client(isolated_runtime) as client:
        listed = {d["id"]: d["lookalikes"] for d in client.get("/api/documents").json()["documents"]}
        old = client.get(f"/api/documents/{quote(FULLWIDTH_SEED)}").json()
        deleted = client.delete(f"/api/documents/{quote(FULLWIDTH_SEED)}")
        left = [d["id"] for d in client.get("/api/documents").json()["documents"]]
    assert listed == {SEED: [FULLWIDTH_SEED], FULLWIDTH_SEED: [SEED]}
    assert old["id"] == FULLWIDTH_SEED and old["text"].startswith("# Note sur le port")
    assert deleted.status_code == 204 and left == [SEED]


def test_ingest_normalises_ids_and_drops_records_kept_under_the_old_form(store: PassageStore, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    ligature = folder / "ﬁche-ｌavrov.md"  # the fi ligature and a fullwidth ｌ
    spaced = folder / "  rason.md"
    ligature.write_text(NOTE, encoding="utf-8")
    spaced.write_text(NOTE.replace("Rason", "Nakhodka"), encoding="utf-8")
    # What an ingest made before ids were normalised: the file's name as it is on disk.
    old = load(ligature, folder)
    ingest_document(store, dataclasses.replace(old, id=ligature.name), str(folder.resolve()))
    assert list(store.documents()) == [ligature.name]

    report = ingest_paths(store, [folder])
    assert report.ok and report.removed == [ligature.name]
    assert sorted(store.documents()) == ["fiche-lavrov.md", "rason.md"]
    again = ingest_paths(store, [folder])
    assert sorted(again.unchanged) == ["fiche-lavrov.md", "rason.md"] and not again.removed


def test_lookalike_keys() -> None:
    assert lookalike_key(FULLWIDTH_SEED) == lookalike_key(CASE_VARIANT) == lookalike_key(f" {SEED} ") == SEED
    assert lookalike_key("ﬁche.md") == lookalike_key("FICHE.md") == "fiche.md"
    assert lookalike_key("lavrov-2.md") != lookalike_key(SEED)
