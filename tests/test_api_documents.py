"""Listing, reading, uploading and deleting documents through the API."""

from assistant.runtime import Runtime
from tests.conftest import app_client
from tests.test_documents import minimal_pdf

SEED = "lavrov-visite-coree-du-nord.md"
NOTE = (
    "# Note sur le port de Rason\n\nLe port de Rason accueille désormais des cargos russes chaque semaine, "
    "selon les autorités portuaires locales. Les échanges passent par une liaison ferroviaire rénovée.\n"
)


def test_list_and_read_a_document_with_its_passage_spans(runtime: Runtime) -> None:
    with app_client(runtime) as client:
        listed = client.get("/api/documents").json()["documents"]
        detail = client.get(f"/api/documents/{SEED}").json()
        cited = client.post("/api/answer", json={"question": "Quels pays mènent des manœuvres militaires conjointes ?"})
    assert [d["id"] for d in listed] == [SEED] and listed[0]["passages"] == len(detail["spans"])
    assert detail["title"].startswith("Sergueï Lavrov") and detail["ingested_at"]
    citation = cited.json()["citations"][0]
    assert detail["text"][citation["start"] : citation["end"]] == citation["text"]
    assert any(s["start"] == citation["start"] and s["end"] == citation["end"] for s in detail["spans"])
    assert detail["spans"] == sorted(detail["spans"], key=lambda s: s["start"])


def test_unknown_document_is_a_404(runtime: Runtime) -> None:
    with app_client(runtime) as client:
        response = client.get("/api/documents/nope.md")
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"


def test_upload_is_seen_by_the_next_question_and_delete_removes_it(isolated_runtime: Runtime) -> None:
    question = {"question": "Quels navires le port de Rason accueille-t-il ?"}
    with app_client(isolated_runtime) as client:
        assert client.post("/api/answer", json=question).json()["found"] is False
        uploaded = client.post("/api/documents", files={"files": ("rason.md", NOTE.encode(), "text/markdown")})
        assert uploaded.status_code == 201
        assert uploaded.json() == {"documents": [{"id": "rason.md", "status": "added", "passages": 1}]}
        answer = client.post("/api/answer", json=question).json()
        assert answer["found"] and answer["citations"][0]["document"] == "rason.md"
        again = client.post("/api/documents", files={"files": ("rason.md", NOTE.encode(), "text/markdown")})
        assert again.json()["documents"][0]["status"] == "unchanged"
        assert client.delete("/api/documents/rason.md").status_code == 204
        assert client.post("/api/answer", json=question).json()["found"] is False
        assert client.delete("/api/documents/rason.md").status_code == 404
        assert [d["id"] for d in client.get("/api/documents").json()["documents"]] == [SEED]


def test_upload_several_files_including_html_and_pdf(isolated_runtime: Runtime) -> None:
    files = [
        ("files", ("page.html", b"<h1>Page</h1><p>Une page web assez longue pour former un passage.</p>", "text/html")),
        (
            "files",
            ("report.pdf", minimal_pdf(["A report of one page, long enough to be a passage."]), "application/pdf"),
        ),
    ]
    with app_client(isolated_runtime) as client:
        response = client.post("/api/documents", files=files)
        assert response.status_code == 201
        assert sorted(d["id"] for d in response.json()["documents"]) == ["page.html", "report.pdf"]
        assert client.get("/api/documents/report.pdf").json()["spans"][0]["section"] == "Page 1"


def test_bad_uploads_get_their_code_and_change_nothing(isolated_runtime: Runtime) -> None:
    good = ("files", ("good.md", NOTE.encode(), "text/markdown"))
    cases = [
        ([("files", ("image.png", b"\x89PNG\r\n", "image/png"))], 415, "unsupported"),
        ([good, ("files", ("binary.txt", b"\x00\x01\x02\x03", "text/plain"))], 415, "unsupported"),
        ([good, ("files", ("latin1.txt", "déjà".encode("latin-1"), "text/plain"))], 415, "unsupported"),
        ([good, ("files", ("empty.txt", b"", "text/plain"))], 422, "empty"),
        ([good, ("files", ("good.md", NOTE.encode(), "text/markdown"))], 422, "invalid_request"),
    ]
    with app_client(isolated_runtime, max_upload_bytes=4096) as client:
        before = client.get("/api/documents").json()
        for files, status, kind in cases:
            response = client.post("/api/documents", files=files)
            assert (response.status_code, response.json()["error"]["type"]) == (status, kind), files
        big = client.post("/api/documents", files=[("files", ("big.txt", b"a" * 5000, "text/plain"))])
        assert big.status_code == 413 and big.json()["error"]["type"] == "too_large"
        no_files = client.post("/api/documents", data={"x": "y"})
        assert no_files.status_code == 422
        assert client.get("/api/documents").json() == before


def test_path_separators_in_upload_names_are_not_followed(isolated_runtime: Runtime) -> None:
    with app_client(isolated_runtime) as client:
        response = client.post("/api/documents", files={"files": ("../../etc/evil.md", NOTE.encode(), "text/markdown")})
        assert response.json()["documents"][0]["id"] == "evil.md"
        assert client.get("/api/documents/evil.md").status_code == 200
