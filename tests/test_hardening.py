"""Regressions: inputs and interleavings that once broke the service."""

import sys
import threading
from pathlib import Path

import pytest

from assistant.runtime import Runtime
from tests.conftest import app_client, run_cli
from vectorstore.documents import DocumentError, parse
from vectorstore.language import stem

ASK = {"question": "Qui est Sergueï Lavrov ?"}
HEADINGS_ONLY = ("files", ("titles.md", b"# Un titre\n\n## Un autre titre\n", "text/markdown"))
GOOD = (
    "files",
    ("good.md", "# Bon\n\nUne phrase assez longue pour former un passage à elle seule.".encode(), "text/markdown"),
)


def test_stemming_from_many_threads_gives_the_same_stems() -> None:
    words = [f"{w}{i}ations" for i in range(3000) for w in ("développ", "négoci", "coopér")]
    expected = [stem.__wrapped__(w, "fr") for w in words]
    results: list[list[str]] = []
    errors: list[BaseException] = []
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def work() -> None:
            try:
                results.append([stem.__wrapped__(w, "fr") for w in words])
            except BaseException as exc:  # an unsafe stemmer raises IndexError
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert not errors and all(r == expected for r in results)


def test_upload_with_a_file_of_headings_only_changes_nothing(isolated_runtime: Runtime) -> None:
    with app_client(isolated_runtime) as client:
        before = client.get("/api/documents").json()
        response = client.post("/api/documents", files=[GOOD, HEADINGS_ONLY])
        assert response.status_code == 422 and response.json()["error"]["type"] == "empty"
        assert "titles.md" in response.json()["error"]["message"]
        assert client.get("/api/documents").json() == before


@pytest.mark.slow
def test_ingest_reports_a_file_of_headings_only(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "titles.md").write_text("# Un titre\n\n## Un autre\n", encoding="utf-8")
    result = run_cli("ingest", str(tmp_path / "docs"), env={"ASSISTANT_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 1 and "titles.md" in result.stderr and "no sentence to cite" in result.stderr


def test_lone_surrogates_are_a_422_everywhere(runtime: Runtime) -> None:
    bad = '"Lavrov \\ud800 ?"'  # valid JSON, but no valid text
    bodies = {
        "/api/answer": f'{{"question": {bad}}}',
        "/api/answer/stream": f'{{"question": "Qui ?", "history": [{{"role": "user", "content": {bad}}}]}}',
        "/v1/chat/completions": f'{{"model": "document-assistant", "messages": [{{"role": "user", "content": {bad}}}]}}'
        "",
    }
    with app_client(runtime) as client:
        for path, body in bodies.items():
            response = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
            assert response.status_code == 422, path
            message = response.json()["error"]["message"]
            assert "surrogate" in message or "unicode" in message, message


def test_made_up_keys_do_not_escape_the_rate_limit(runtime: Runtime) -> None:
    with app_client(runtime, rate_limit_per_minute=3) as client:
        codes = [
            client.get("/v1/models", headers={"Authorization": f"Bearer made-up-{n}"}).status_code for n in range(5)
        ]
    assert codes.count(429) == 2


def test_failed_key_attempts_are_rate_limited(runtime: Runtime) -> None:
    with app_client(runtime, api_keys="real", rate_limit_per_minute=3) as client:
        codes = [client.get("/v1/models", headers={"Authorization": f"Bearer guess-{n}"}).status_code for n in range(5)]
    assert codes == [401, 401, 401, 429, 429]


def test_admin_keys_alone_leave_reading_open(runtime: Runtime) -> None:
    with app_client(runtime, admin_keys="boss") as client:
        assert client.post("/api/answer", json=ASK).status_code == 200
        assert client.delete("/api/documents/x.md").status_code == 403


def test_chunked_body_over_the_limit_is_a_413_and_bad_encoding_a_400(runtime: Runtime) -> None:
    def chunks():
        yield b'{"question": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}'

    with app_client(runtime, max_body_bytes=100_000) as client:
        big = client.post("/api/answer", content=chunks(), headers={"content-type": "application/json"})
        latin = client.post(
            "/api/answer", content=b'{"question": "caf\xe9"}', headers={"content-type": "application/json"}
        )
    assert big.status_code == 413 and big.json()["error"]["type"] == "too_large"
    assert latin.status_code == 400 and latin.json()["error"]["type"] == "invalid_json"


def pdf_with_stream(filter_name: bytes, data: bytes) -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter %s >>\nstream\n" % (len(data), filter_name) + data + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


@pytest.mark.parametrize("pdf", [pdf_with_stream(b"/BrotliDecode", b"\x00" * 20)], ids=["unknown-filter"])
def test_pdfs_the_reader_cannot_handle_are_refused_not_crashed(pdf: bytes) -> None:
    with pytest.raises(DocumentError, match="PDF"):
        parse(pdf, doc_id="x.pdf", source="x.pdf", name="x.pdf")
