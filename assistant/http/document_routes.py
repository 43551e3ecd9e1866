"""Documents: list, read (with passage spans), upload, delete."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from assistant.config import Settings
from assistant.http.context import runtime, settings
from assistant.http.guards import ApiError
from assistant.http.schemas import (
    DocumentDetail,
    DocumentList,
    DocumentSummary,
    PassageSpan,
    UploadedDocument,
    UploadResult,
    error_responses,
)
from vectorstore.chunking import Passage
from vectorstore.documents import (
    SUPPORTED_SUFFIXES,
    DocumentError,
    SourceDocument,
    lookalike_key,
    normalise_id,
    parse,
)
from vectorstore.embeddings import account as embedding_account
from vectorstore.ingest import citable_passages, ingest_document
from vectorstore.store import DocumentRecord

log = logging.getLogger("assistant.http.app")
reader = APIRouter(prefix="/api/documents", tags=["documents"])
admin = APIRouter(prefix="/api/documents", tags=["documents"])
_STATUS_OF = {"unsupported": 415, "too_large": 413, "empty": 422, "unreadable": 422}
# Most file systems stop at 255; a longer name is not a file's real name.
MAX_NAME_CHARS = 255


def summary(record: DocumentRecord, lookalikes: list[str] | None = None) -> DocumentSummary:
    """The API view of a stored document; ``lookalikes`` are the other ids that read the same."""
    return DocumentSummary(
        id=record.id,
        title=record.title,
        source=shown_source(record),
        passages=record.passages,
        ingested_at=record.ingested_at,
        lookalikes=lookalikes or [],
    )


def shown_source(record: DocumentRecord) -> str:
    """Where a document came from, without the server's folders: its path under the folder it
    was ingested from, ``upload:<name>`` for an upload, or else the file's name."""
    source, root = record.source, record.root.rstrip("/\\")
    if root and source.startswith(root) and source[len(root) : len(root) + 1] in ("/", "\\"):
        return source[len(root) + 1 :].replace("\\", "/")
    if "/" in source or "\\" in source:
        return PurePath(source.replace("\\", "/")).name
    return source


def lookalikes(ids: Iterable[str]) -> dict[str, list[str]]:
    """For each id that reads like others (same `lookalike_key`), those other ids."""
    groups: dict[str, list[str]] = {}
    for doc_id in sorted(ids):
        groups.setdefault(lookalike_key(doc_id), []).append(doc_id)
    return {
        doc_id: [other for other in group if other != doc_id]
        for group in groups.values()
        if len(group) > 1
        for doc_id in group
    }


def stored_id(document_id: str, records: Mapping[str, DocumentRecord]) -> str | None:
    """The id a request names: as given when a document has it (ids stored before they were
    normalised stay reachable), else normalised as ids are stored; None when neither is stored."""
    if document_id in records:
        return document_id
    normalised = normalise_id(document_id)
    return normalised if normalised in records else None


@reader.get("", response_model=DocumentList, responses=error_responses(401, 429, 503))
async def list_documents(request: Request) -> DocumentList:
    """Every ingested document."""
    records = await run_in_threadpool(runtime(request).store.documents)
    alike = lookalikes(records)
    return DocumentList(documents=[summary(r, alike.get(i)) for i, r in sorted(records.items())])


@reader.get("/{document_id:path}", response_model=DocumentDetail, responses=error_responses(401, 404, 429, 503))
async def get_document(document_id: str, request: Request) -> DocumentDetail:
    """A document's full text and the spans of its passages (citations point into it)."""
    store = runtime(request).store

    def read() -> DocumentDetail | None:
        records = store.documents()
        doc_id = stored_id(document_id, records)
        text = store.document_text(doc_id) if doc_id else None
        if doc_id is None or text is None:
            return None
        spans = [PassageSpan(id=p.id, start=p.start, end=p.end, section=p.section) for p in store.passages_of(doc_id)]
        return DocumentDetail(
            **summary(records[doc_id], lookalikes(records).get(doc_id)).model_dump(), text=text, spans=spans
        )

    detail = await run_in_threadpool(read)
    if detail is None:
        raise ApiError(404, "not_found", f"no document {document_id!r}")
    return detail


@admin.post(
    "",
    response_model=UploadResult,
    status_code=201,
    responses=error_responses(400, 401, 403, 413, 415, 422, 429, 503, 507),
)
async def upload_documents(
    request: Request, files: Annotated[list[UploadFile], File(description="One or more documents.")]
) -> UploadResult:
    """Add or replace documents (.txt, .md, .html, .pdf). Every file is checked before
    any is stored: one bad file, or an upload over its budget, and nothing changes."""
    config = settings(request)
    limit = config.max_upload_bytes
    if len(files) > config.max_upload_files:
        raise ApiError(
            413,
            "too_many_files",
            f"files: {len(files)} files; the most in one upload is {config.max_upload_files}"
            " (ASSISTANT_MAX_UPLOAD_FILES)",
        )
    received: list[tuple[str, bytes]] = []
    for upload in files:
        name = _safe_name(upload.filename or "")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, "too_large", f"{name}: over {limit} bytes")
        received.append((name, data))
    if len({name for name, _ in received}) != len(received):
        raise ApiError(422, "invalid_request", "files: two files have the same name")
    # Parsing and cutting into passages take time in proportion to the text: never on
    # the event loop, where they would hold every other request.
    planned = await run_in_threadpool(_plan, received, config)
    rt = runtime(request)

    def store_all() -> list[UploadedDocument]:
        with embedding_account():
            rt.store.ensure_room(sum(len(p) for _, p in planned))  # all or nothing on a full disk
            records = rt.store.documents()
            results = []
            for document, passages in planned:
                status, count = ingest_document(rt.store, document, passages=passages, records=records)
                results.append(UploadedDocument(id=document.id, status=status, passages=count))
            rt.corpus.invalidate()
            return results

    results = await run_in_threadpool(store_all)
    log.info("uploaded %s", ", ".join(f"{r.id} ({r.status})" for r in results))
    return UploadResult(documents=results)


def _plan(received: list[tuple[str, bytes]], config: Settings) -> list[tuple[SourceDocument, list[Passage]]]:
    """Parse every file and cut it into passages, within the upload's budgets; raises
    the error to send back before anything is stored."""
    planned = []
    total = 0
    for name, data in received:
        try:
            document = parse(data, doc_id=name, source=f"upload:{name}", name=name)
            passages = citable_passages(document)  # refuses a file with nothing to cite
        except DocumentError as exc:
            raise ApiError(_STATUS_OF.get(exc.kind, 422), exc.kind, f"{name}: {exc}") from exc
        if len(passages) > config.max_document_passages:
            raise ApiError(
                413,
                "too_large",
                f"{name}: {len(passages)} passages; the most for one document is {config.max_document_passages}"
                " (ASSISTANT_MAX_DOCUMENT_PASSAGES)",
            )
        total += len(passages)
        if total > config.max_upload_passages:
            raise ApiError(
                413,
                "too_large",
                f"{name}: the upload reaches more than {config.max_upload_passages} passages, the most for one upload"
                " (ASSISTANT_MAX_UPLOAD_PASSAGES)",
            )
        planned.append((document, passages))
    return planned


@admin.delete("/{document_id:path}", status_code=204, responses=error_responses(401, 403, 404, 429, 503, 507))
async def delete_document(document_id: str, request: Request) -> Response:
    """Remove a document and its passages; the next question no longer sees it."""
    rt = runtime(request)

    def delete() -> str | None:
        doc_id = stored_id(document_id, rt.store.documents())
        if doc_id is None:
            return None
        rt.store.delete_document(doc_id)
        rt.corpus.invalidate()
        return doc_id

    deleted = await run_in_threadpool(delete)
    if deleted is None:
        raise ApiError(404, "not_found", f"no document {document_id!r}")
    log.info("deleted document %s", deleted)
    return Response(status_code=204)


def _safe_name(filename: str) -> str:
    """The file's own name, without folders, normalised as document ids are (a fullwidth or
    ligature look-alike names the same document), in characters safe in a URL path."""
    # Normalised first: NFKC turns a fullwidth solidus into a folder separator.
    name = PurePath(normalise_id(filename).replace("\\", "/")).name
    name = re.sub(r"[^\w.\- ]+", "_", name).strip(" .")
    if not name or PurePath(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ApiError(
            415,
            "unsupported",
            f"{_shortened(filename) or 'file'}: unsupported file type (expected {', '.join(SUPPORTED_SUFFIXES)})",
        )
    if len(name) > MAX_NAME_CHARS:
        raise ApiError(
            422,
            "invalid_upload",
            f"{_shortened(name)}: the file name is {len(name)} characters long; the limit is {MAX_NAME_CHARS}",
        )
    return name


def _shortened(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def form_error(exc: HTTPException) -> ApiError | None:
    """What to tell the client when an upload's body could not be read as a form (``exc`` is
    what reading it raised); None when ``exc`` did not come from reading a form."""
    problem = exc.__context__
    if not isinstance(problem, MultiPartException):
        return None
    # Starlette says what went wrong only in its message; one not known here is still an invalid_upload.
    detail = problem.message
    limit = re.search(r"\d+", detail)
    number = f" {limit.group()}" if limit else ""
    if detail.startswith("Too many files"):
        return ApiError(413, "too_many_files", "too many files in one upload; send them in several uploads")
    if detail.startswith("Too many fields"):
        return ApiError(413, "too_many_files", f"an upload holds at most{number} form fields")
    if detail.startswith(("Part exceeded", "Field exceeded")):
        return ApiError(413, "too_large", f"a form field that is not a file is over{number} KB")
    if detail.startswith("Missing boundary"):
        return ApiError(400, "invalid_upload", "the body is not multipart/form-data: its Content-Type has no boundary")
    if "header size" in str(problem.__cause__).lower():
        return ApiError(
            400,
            "invalid_upload",
            f"a part's headers are too long (a file name is at most {MAX_NAME_CHARS} characters)",
        )
    return ApiError(400, "invalid_upload", "the body is not valid multipart/form-data")


def upload_problem(problem: Mapping[str, Any]) -> ApiError | None:
    """The error for a validation problem of an upload's ``files`` (a text field sent where a
    file was expected); None for any other problem."""
    loc = tuple(problem.get("loc", ()))
    if loc[:2] != ("body", "files") or not isinstance(problem.get("input"), str):
        return None
    where = ".".join(str(part) for part in loc[1:])
    return ApiError(422, "invalid_upload", f"{where}: a text field, not a file; send each document as a file")
