"""Documents: list, read (with passage spans), upload, delete."""

from __future__ import annotations

import logging
import re
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from assistant.api_models import (
    DocumentDetail,
    DocumentList,
    DocumentSummary,
    PassageSpan,
    UploadedDocument,
    UploadResult,
    error_responses,
)
from assistant.guards import ApiError
from assistant.serving import runtime, settings
from vectorstore.documents import SUPPORTED_SUFFIXES, DocumentError, SourceDocument, parse
from vectorstore.ingest import citable_passages, ingest_document
from vectorstore.store import DocumentRecord

log = logging.getLogger("assistant.api")
reader = APIRouter(prefix="/api/documents", tags=["documents"])
admin = APIRouter(prefix="/api/documents", tags=["documents"])
_STATUS_OF = {"unsupported": 415, "too_large": 413, "empty": 422, "unreadable": 422}


def summary(record: DocumentRecord) -> DocumentSummary:
    """The API view of a stored document."""
    return DocumentSummary(
        id=record.id, title=record.title, source=record.source, passages=record.passages, ingested_at=record.ingested_at
    )


@reader.get("", response_model=DocumentList, responses=error_responses(401, 429, 503))
async def list_documents(request: Request) -> DocumentList:
    """Every ingested document."""
    records = await run_in_threadpool(runtime(request).store.documents)
    return DocumentList(documents=[summary(r) for _, r in sorted(records.items())])


@reader.get("/{document_id:path}", response_model=DocumentDetail, responses=error_responses(401, 404, 429, 503))
async def get_document(document_id: str, request: Request) -> DocumentDetail:
    """A document's full text and the spans of its passages (citations point into it)."""
    store = runtime(request).store

    def read() -> DocumentDetail | None:
        record = store.documents().get(document_id)
        text = store.document_text(document_id) if record else None
        if record is None or text is None:
            return None
        spans = [
            PassageSpan(id=p.id, start=p.start, end=p.end, section=p.section) for p in store.passages_of(document_id)
        ]
        return DocumentDetail(**summary(record).model_dump(), text=text, spans=spans)

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
    any is stored: one bad file and nothing changes."""
    limit = settings(request).max_upload_bytes
    documents: list[SourceDocument] = []
    passages = 0
    for upload in files:
        name = _safe_name(upload.filename or "")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, "too_large", f"{name}: over {limit} bytes")
        try:
            document = await run_in_threadpool(parse, data, doc_id=name, source=f"upload:{name}", name=name)
            # Refuses a file with nothing to cite, before anything is stored.
            passages += len(citable_passages(document))
            documents.append(document)
        except DocumentError as exc:
            raise ApiError(_STATUS_OF.get(exc.kind, 422), exc.kind, f"{name}: {exc}") from exc
    if len({d.id for d in documents}) != len(documents):
        raise ApiError(422, "invalid_request", "files: two files have the same name")
    rt = runtime(request)

    def store_all() -> list[UploadedDocument]:
        rt.store.ensure_room(passages)  # all or nothing on a disk without room for them
        results = []
        for document in documents:
            status, count = ingest_document(rt.store, document)
            results.append(UploadedDocument(id=document.id, status=status, passages=count))
        rt.corpus.invalidate()
        return results

    results = await run_in_threadpool(store_all)
    log.info("uploaded %s", ", ".join(f"{r.id} ({r.status})" for r in results))
    return UploadResult(documents=results)


@admin.delete("/{document_id:path}", status_code=204, responses=error_responses(401, 403, 404, 429, 503, 507))
async def delete_document(document_id: str, request: Request) -> Response:
    """Remove a document and its passages; the next question no longer sees it."""
    rt = runtime(request)

    def delete() -> bool:
        if document_id not in rt.store.documents():
            return False
        rt.store.delete_document(document_id)
        rt.corpus.invalidate()
        return True

    if not await run_in_threadpool(delete):
        raise ApiError(404, "not_found", f"no document {document_id!r}")
    log.info("deleted document %s", document_id)
    return Response(status_code=204)


def _safe_name(filename: str) -> str:
    """The file's own name, without folders, in characters safe in a URL path."""
    name = PurePath(filename.replace("\\", "/")).name
    name = re.sub(r"[^\w.\- ]+", "_", name).strip(" .")
    if not name or PurePath(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ApiError(
            415,
            "unsupported",
            f"{filename or 'file'}: unsupported file type (expected {', '.join(SUPPORTED_SUFFIXES)})",
        )
    return name
