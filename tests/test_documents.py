from pathlib import Path

import pytest

from vectorstore.documents import DocumentError, discover, from_text, load


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_markdown_title_and_sections(tmp_path: Path) -> None:
    file = write(tmp_path / "a.md", "# Le titre\n\n## Première partie\n\nUne phrase.\n")
    doc = load(file, tmp_path)
    assert doc.id == "a.md"
    assert doc.title == "Le titre"
    assert [h.title for h in doc.headings] == ["Le titre", "Première partie"]
    assert doc.source == str(file.resolve())


def test_plain_text_headings_are_short_lines_standing_alone(tmp_path: Path) -> None:
    file = write(tmp_path / "notes.txt", "Aperçu\n\nUne phrase complète ici.\n\nSuite du texte\n\nEncore une phrase.")
    doc = load(file, tmp_path)
    assert [h.title for h in doc.headings] == ["Aperçu", "Suite du texte"]
    assert doc.title == "Aperçu"


def test_html_is_reduced_to_its_visible_text(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Page</title><style>p{}</style></head><body><h1>Titre</h1>"
        "<p>Premier paragraphe &amp; suite.</p><script>alert(1)</script><h2>Section</h2><p>Second.</p></body></html>"
    )
    doc = load(write(tmp_path / "p.html", html), tmp_path)
    assert doc.title == "Page"
    assert "alert" not in doc.text and "p{}" not in doc.text
    assert "Premier paragraphe & suite." in doc.text
    for heading in doc.headings:
        assert doc.text[heading.start : heading.end] == heading.title
    assert [h.title for h in doc.headings] == ["Titre", "Section"]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"  \n\n \t\n", "empty"),
        ("binary.txt", b"\x00\x01\x02binary\x00", "binary"),
        ("latin1.txt", "café crème".encode("latin-1"), "UTF-8"),
    ],
)
def test_unusable_files_are_refused_with_a_reason(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    with pytest.raises(DocumentError, match=reason):
        load(write(tmp_path / name, data), tmp_path)


def test_discover_reports_missing_paths_and_skips_hidden_and_foreign_files(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.txt", "A")
    write(tmp_path / "docs" / "sub" / "b.md", "B")
    write(tmp_path / "docs" / ".hidden" / "c.txt", "C")
    write(tmp_path / "docs" / "image.png", b"\x89PNG")
    found, failed = discover([tmp_path / "docs", tmp_path / "missing", tmp_path / "docs" / "image.png"])
    assert [f.relative_to(tmp_path / "docs").as_posix() for f, _ in found] == ["a.txt", "sub/b.md"]
    assert (failed[0][0].name, failed[0][1]) == ("missing", "no such file or folder")
    assert "unsupported" in failed[1][1]


def test_pdf_pages_become_sections(tmp_path: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    with (tmp_path / "blank.pdf").open("wb") as handle:
        writer.write(handle)
    with pytest.raises(DocumentError, match="empty"):
        load(tmp_path / "blank.pdf", tmp_path)
    with pytest.raises(DocumentError, match="PDF"):
        load(write(tmp_path / "broken.pdf", b"%PDF-1.4 not really"), tmp_path)


def test_from_text_rejects_empty_text() -> None:
    with pytest.raises(DocumentError):
        from_text("x.txt", "   ")
    assert from_text("x.md", "# T\n\nBody.", kind=".md").title == "T"


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF whose text layer holds the given lines."""
    stream = "BT /F1 12 Tf 20 180 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_pdf_text_is_extracted_with_its_page_as_section(tmp_path: Path) -> None:
    from vectorstore.chunking import chunk

    file = write(tmp_path / "report.pdf", minimal_pdf(["The minister arrives on Friday.", "He stays three days."]))
    doc = load(file, tmp_path)
    assert "The minister arrives on Friday." in doc.text
    passages = [p for p in chunk(doc) if p.kind == "text"]
    assert passages and all(p.section == "Page 1" for p in passages)
    assert all(doc.text[p.start : p.end] == p.text for p in passages)
