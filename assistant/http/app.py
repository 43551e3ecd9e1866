"""The HTTP API: the app factory, error handling, guards, and the health routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from assistant import __version__
from assistant.answering.generation import probe
from assistant.config import Settings
from assistant.http import answer_routes as routes_answers
from assistant.http import document_routes as routes_documents
from assistant.http import feedback_routes as routes_feedback
from assistant.http import openai_routes as routes_openai
from assistant.http.api_docs import POLICIES, add_docs
from assistant.http.browser_security import AllowedHosts, SameOriginWrites, SecurityHeaders, allowed_hosts
from assistant.http.guards import ApiError, BodyLimit, Guard, bearer
from assistant.http.schemas import ErrorResponse, Health, Readiness, error_responses, with_limits
from assistant.runtime import Runtime, build_runtime
from vectorstore.store import StoreFull, StoreReadOnly

log = logging.getLogger("assistant.http.app")

DESCRIPTION = """
Answers questions about your documents; every statement carries `[n]` markers that resolve
to citations: the exact passage, its document, section and character span.

Ways in: `POST /api/answer` (JSON), `POST /api/answer/stream` (Server-Sent Events),
`POST /v1/chat/completions` (OpenAI-compatible). When `ASSISTANT_API_KEYS` is set, `/api` and
`/v1` need `Authorization: Bearer <key>`; changing documents needs a key from
`ASSISTANT_ADMIN_KEYS`. Errors are `{"error": {"type": ..., "message": ...}}`.
"""


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error response in the one shape clients see."""
    return JSONResponse(status_code=status, content={"error": {"type": kind, "message": message}}, headers=headers)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The application; the store and chain are built at start-up, not at import."""
    settings = settings or Settings()
    guard = Guard(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if guard.open:
            log.warning("the API is open to anyone who can reach it: set ASSISTANT_API_KEYS to require keys")
        if runtime is None:
            app.state.runtime = await run_in_threadpool(build_runtime, settings)
        yield

    app = FastAPI(
        title="Document assistant",
        version=__version__,
        summary="Answers questions about your documents, every statement cited.",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by add_docs with local assets, or not at all.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    if runtime is not None:
        app.state.runtime = runtime

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.kind, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "invalid_json", "the body is not valid JSON")
        for problem in problems:
            if upload := routes_documents.upload_problem(problem):
                return error(upload.status, upload.kind, upload.message)
        first = problems[0] if problems else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        return error(422, "invalid_request", f"{where}: {message}" if where else message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if upload := routes_documents.form_error(exc):
            return error(upload.status, upload.kind, upload.message)
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            if request.headers.get("content-type", "").lower().startswith("multipart/"):
                return error(400, "invalid_upload", "the body is not valid multipart/form-data")
            return error(400, "invalid_json", "the body is not valid JSON (or not UTF-8)")
        kinds = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return error(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(StoreFull)
    async def _store_full(request: Request, exc: StoreFull) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return error(507, "storage_full", "the document store's disk is full; nothing was changed")

    @app.exception_handler(StoreReadOnly)
    async def _store_read_only(request: Request, exc: StoreReadOnly) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return error(503, "store_read_only", "the document store is read-only; nothing was changed")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal_error", "the server failed to answer; the details are in its log")

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """The process is alive."""
        return Health(status="ok", version=__version__)

    @app.get(
        "/readyz",
        response_model=Readiness,
        response_model_exclude_none=True,
        tags=["health"],
        responses=error_responses(401, 429, 503),
    )
    async def readyz(request: Request) -> Readiness:
        """The store answers and the embedder is loaded; 503 with the reason otherwise.

        Open to load balancers: without a key, on a server that needs one, only the status. With
        a reader key (or on an open server) also what is loaded: the kind of store, the embedding
        model, the counts and the language model's state."""
        rt: Runtime | None = getattr(request.app.state, "runtime", None)
        if rt is None:
            raise ApiError(503, "not_ready", "starting up")
        detailed = guard.open or bearer(request) is not None
        if detailed and not guard.open:
            # Checked (and rate-limited) as on /api: details must not become a way to guess keys.
            guard.reader(request)
        try:
            passages = await run_in_threadpool(rt.store.count)
            documents = len(await run_in_threadpool(rt.store.documents)) if detailed else None
        except Exception as exc:
            log.warning("not ready: %s", exc)
            raise ApiError(503, "not_ready", "the document store cannot be reached") from exc
        if not detailed:
            return Readiness(status="ready")
        llm = await run_in_threadpool(probe, rt.settings)
        return Readiness(
            status="ready",
            store="server" if rt.settings.chroma_url else "embedded",
            embedding_model=rt.store.embeddings.model_id,
            documents=documents,
            passages=passages,
            llm=llm,
        )

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(error_schema.pop("$defs", {}))
            components["ErrorResponse"] = error_schema
            with_limits(components, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    readers = [Depends(guard.reader)]
    app.include_router(routes_answers.router, dependencies=readers)
    app.include_router(routes_openai.router, dependencies=readers)
    app.include_router(routes_documents.reader, dependencies=readers)
    app.include_router(routes_documents.admin, dependencies=[Depends(guard.admin)])
    app.include_router(routes_feedback.reader, dependencies=readers)
    app.include_router(routes_feedback.admin, dependencies=[Depends(routes_feedback.admin_only(guard))])

    if settings.api_docs:
        add_docs(app)

    # The chat page, after the API routes so that they take precedence.
    app.mount("/", StaticFiles(directory=settings.web_dir, html=True, check_dir=False), name="web")

    app.add_middleware(
        BodyLimit, default=settings.max_body_bytes, per_path={"/api/documents": settings.max_upload_bytes}
    )
    app.add_middleware(SameOriginWrites, cors_origins=settings.cors_origin_list)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    # Added last, so run first: the host is checked before anything else.
    app.add_middleware(AllowedHosts, hosts=allowed_hosts(settings.allowed_host_list, settings.host))
    _with_security_headers(app)
    return app


def _with_security_headers(app: FastAPI) -> None:
    # Around Starlette's own error middleware too, so that a 500 carries the headers as well.
    build = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        return SecurityHeaders(build(), policies=POLICIES)

    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]
