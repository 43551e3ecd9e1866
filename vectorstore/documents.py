"""Loading documents from disk: decoding, structure (title, headings) and identity."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024


class DocumentError(ValueError):
    """A file that cannot be ingested; the message says why, for the user.

    ``kind`` sorts the reasons: "unsupported" (not a text format we read), "empty",
    "too_large" or "unreadable".
    """

    def __init__(self, message: str, kind: str = "unreadable") -> None:
        super().__init__(message)
        self.kind = kind


# A title or heading is a label: every passage stores its document's title and section, and
# embeds the title before its sentence, so one 1 MB "heading" would be copied into each.
MAX_LABEL_CHARS = 200


def label(text: str) -> str:
    """``text`` cut to MAX_LABEL_CHARS at a word boundary, with "…" when cut."""
    if len(text) <= MAX_LABEL_CHARS:
        return text
    cut = text[: MAX_LABEL_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip() + "…"


@dataclass(frozen=True)
class Heading:
    """A heading line of a document: its span in the text and its plain title."""

    start: int
    end: int
    title: str
    level: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", label(self.title))


@dataclass(frozen=True)
class SourceDocument:
    """A document ready for chunking: the exact text every span refers to."""

    id: str
    title: str
    text: str
    source: str
    headings: tuple[Heading, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", label(self.title))

    @property
    def content_hash(self) -> str:
        """Hash of everything that shapes the stored passages."""
        digest = hashlib.sha256()
        for part in (self.id, self.title, self.text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x00")
        return digest.hexdigest()[:32]


def discover(paths: list[Path]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Expand files and folders into (file, root) pairs, plus (path, reason) failures.

    The root is the folder a file was found under (its id is relative to it), or the
    file's own folder when the file was named directly.
    """
    found: list[tuple[Path, Path]] = []
    failed: list[tuple[Path, str]] = []
    for path in paths:
        if not path.exists():
            failed.append((path, "no such file or folder"))
        elif path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                relative_parts = file.relative_to(path).parts
                if any(part.startswith(".") for part in relative_parts):
                    continue
                if file.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.append((file, path))
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
            failed.append((path, f"unsupported file type (expected {', '.join(SUPPORTED_SUFFIXES)})"))
        else:
            found.append((path, path.parent))
    return found, failed


def document_id(file: Path, root: Path) -> str:
    """A stable, readable id: the file's path under the folder it was ingested from, normalised
    (`normalise_id`)."""
    return normalise_id(file.relative_to(root).as_posix())


def normalise_id(doc_id: str) -> str:
    """A document id in the one form it is stored under: NFKC (so that a fullwidth `ｌ`, a
    ligature or a decomposed accent is the plain character) and without surrounding spaces."""
    return unicodedata.normalize("NFKC", doc_id).strip()


def lookalike_key(doc_id: str) -> str:
    """What an id reads as: two ids with the same key differ only by case, compatibility
    characters or surrounding spaces."""
    return unicodedata.normalize("NFKC", normalise_id(doc_id).casefold())


def load(file: Path, root: Path) -> SourceDocument:
    """Read one file into a SourceDocument, or raise DocumentError saying why not."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read: {exc.strerror or exc}") from exc
    return parse(data, doc_id=document_id(file, root), source=str(file.resolve()), name=file.name)


def parse(data: bytes, *, doc_id: str, source: str, name: str) -> SourceDocument:
    """Turn a file's bytes into a SourceDocument; the name's suffix says the format."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"too large ({len(data)} bytes, limit {MAX_DOCUMENT_BYTES})", "too_large")
    file = Path(name)
    suffix = file.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"unsupported file type (expected {', '.join(SUPPORTED_SUFFIXES)})", "unsupported")
    if suffix == ".pdf":
        text, headings = _pdf_text(data)
    else:
        raw = _decode(data)
        if suffix in (".html", ".htm"):
            text, headings, html_title = _html_text(raw)
        else:
            text = _normalise_newlines(raw)
            headings = _markdown_headings(text) if suffix in (".md", ".markdown") else _plain_headings(text)
            html_title = None
    if not text.strip():
        raise DocumentError("empty document (no text)", "empty")
    title = _title(text, headings, html_title if suffix in (".html", ".htm") else None, file)
    return SourceDocument(id=doc_id, title=title, text=text, source=source, headings=tuple(headings))


def from_text(
    doc_id: str, text: str, *, title: str | None = None, source: str = "", kind: str = ".txt"
) -> SourceDocument:
    """Build a SourceDocument from text already in memory (uploads, tests)."""
    text = _normalise_newlines(text)
    if not text.strip():
        raise DocumentError("empty document (no text)", "empty")
    headings = _markdown_headings(text) if kind in (".md", ".markdown") else _plain_headings(text)
    return SourceDocument(
        id=doc_id,
        title=title or _title(text, headings, None, Path(doc_id)),
        text=text,
        source=source or doc_id,
        headings=tuple(headings),
    )


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentError("binary file (contains NUL bytes)", "unsupported")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not valid UTF-8 text (byte {exc.start})", "unsupported") from exc
    control = sum(1 for ch in text[:8192] if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f")
    if control > 8:
        raise DocumentError("binary file (control characters)", "unsupported")
    return text


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


_MD_HEADING = re.compile(r"(#{1,6})[ \t]+(\S.*)")


def _markdown_headings(text: str) -> list[Heading]:
    headings = []
    in_fence = False
    offset = 0
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (m := _MD_HEADING.fullmatch(line)):
            # Closing hashes are stripped after matching: a pattern that excludes them
            # retries the rest of the line from every character.
            title = m.group(2).rstrip(" \t#").strip() or m.group(2).strip()
            headings.append(Heading(offset, offset + len(line), title, len(m.group(1))))
        offset += len(line) + 1
    return headings


def _plain_headings(text: str) -> list[Heading]:
    """Headings of plain text: a short line standing alone, without closing punctuation."""
    headings = []
    for m in re.finditer(r"(?:^|\n\n)([^\n]+)(?=\n\n|\n?$)", text):
        line = m.group(1)
        stripped = line.strip()
        if (
            0 < len(stripped) <= 100
            and stripped[-1] not in ".!?:;,…»\"')"
            and (stripped[0].isupper() or stripped[0].isdigit())
            and len(stripped.split()) <= 12
        ):
            start = m.start(1) + (len(line) - len(line.lstrip()))
            headings.append(Heading(start, start + len(stripped), stripped, 2))
    return headings


def _title(text: str, headings: list[Heading], explicit: str | None, file: Path) -> str:
    if explicit:
        return explicit
    first_line = text.lstrip().split("\n", 1)[0].strip()
    level_one = [h for h in headings if h.level == 1]
    if level_one:
        return level_one[0].title
    if headings and text.lstrip().startswith(first_line) and headings[0].title == first_line:
        return headings[0].title
    name = file.stem.replace("_", " ").replace("-", " ").strip()
    return name[:1].upper() + name[1:] if name else file.name


class _HtmlText(HTMLParser):
    """Visible text of an HTML page, one block per paragraph, headings remembered."""

    BLOCKS: ClassVar[set[str]] = {
        "p",
        "div",
        "section",
        "article",
        "li",
        "br",
        "tr",
        "table",
        "ul",
        "ol",
        "blockquote",
        "pre",
    }
    HEADINGS: ClassVar[dict[str, int]] = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
    SKIP: ClassVar[set[str]] = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.headings: list[tuple[int, int, str, int]] = []
        self.title: str | None = None
        self._skip = 0
        self._in_title = False
        self._heading: tuple[int, int] | None = None

    def _length(self) -> int:
        return sum(len(p) for p in self.parts)

    def _break(self) -> None:
        text = "".join(self.parts)
        stripped = text.rstrip(" \t")
        self.parts = [stripped]
        if stripped and not stripped.endswith("\n\n"):
            self.parts.append("\n\n" if not stripped.endswith("\n") else "\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.HEADINGS:
            self._break()
            self._heading = (self._length(), self.HEADINGS[tag])
        elif tag in self.BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.HEADINGS and self._heading:
            start, level = self._heading
            text = "".join(self.parts)[start:]
            if text.strip():
                lead = len(text) - len(text.lstrip())
                self.headings.append((start + lead, start + len(text.rstrip()), text.strip(), level))
            self._heading = None
            self._break()
        elif tag in self.BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data
            return
        if self._skip:
            return
        collapsed = re.sub(r"\s+", " ", data)
        if self._length() == 0 or "".join(self.parts[-1:]).endswith("\n"):
            collapsed = collapsed.lstrip()
        self.parts.append(collapsed)


def _html_text(raw: str) -> tuple[str, list[Heading], str | None]:
    parser = _HtmlText()
    parser.feed(raw)
    parser.close()
    text = "".join(parser.parts).strip("\n ")
    lead = len("".join(parser.parts)) - len("".join(parser.parts).lstrip("\n "))
    headings = [
        Heading(s - lead, e - lead, t, lvl)
        for s, e, t, lvl in parser.headings
        if s - lead >= 0 and text[s - lead : e - lead] == t
    ]
    title = parser.title.strip() if parser.title and parser.title.strip() else None
    return text, headings, title


def _pdf_text(data: bytes) -> tuple[str, list[Heading]]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, PyPdfError
    except ImportError as exc:  # pragma: no cover - pypdf is a declared dependency
        raise DocumentError("PDF support needs the pypdf package") from exc
    import io

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PyPdfError, DependencyError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise DocumentError(f"unreadable PDF ({exc})") from exc
    text_parts: list[str] = []
    headings: list[Heading] = []
    offset = 0
    for number, page in enumerate(pages, start=1):
        if not page:
            continue
        label = f"Page {number}"
        block = f"{label}\n\n{page}\n\n"
        headings.append(Heading(offset, offset + len(label), label, 2))
        text_parts.append(block)
        offset += len(block)
    return _normalise_newlines("".join(text_parts).rstrip("\n")), headings
