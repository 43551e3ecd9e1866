"""The HTTP API, served by FastAPI: the app factory, request/response models, routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant import __version__
from assistant.config import Settings
from assistant.models import Answer, Message
from assistant.runtime import Runtime, build_runtime, validate_question

log = logging.getLogger("assistant.api")


class AnswerRequest(BaseModel):
    """A question, with the conversation so far for follow-ups."""

    question: str = Field(
        description="The question (1 to 2,000 characters).", examples=["Dans quelle ville se rend Sergueï Lavrov ?"]
    )
    history: list[Message] = Field(default_factory=list, description="Earlier turns, oldest first.")

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is empty")
        return value.strip()


class ErrorDetail(BaseModel):
    """What went wrong, for the client."""

    type: str
    message: str


class ErrorResponse(BaseModel):
    """Every error has this shape."""

    error: ErrorDetail


class Health(BaseModel):
    """Liveness."""

    status: str
    version: str


class ApiError(Exception):
    """An error to send to the client as it is."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def error(status: int, kind: str, message: str) -> JSONResponse:
    """An error response in the one shape clients see."""
    return JSONResponse(status_code=status, content={"error": {"type": kind, "message": message}})


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The application; the store and chain are built at start-up, not at import."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = runtime or build_runtime(settings)
        yield

    app = FastAPI(
        title="Document assistant",
        version=__version__,
        summary="Answers questions about your documents, every statement cited.",
        lifespan=lifespan,
        responses={422: {"model": ErrorResponse}, 500: {"model": ErrorResponse}},
    )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.kind, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        return error(422, "invalid_request", f"{where}: {message}" if where else message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        return error(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal_error", "the server failed to answer; the details are in its log")

    @app.post("/api/answer", response_model=Answer, response_model_exclude_none=True, tags=["answers"])
    def answer(request: AnswerRequest) -> Answer:
        """Answer a question from the documents, with numbered citations."""
        rt: Runtime = app.state.runtime
        try:
            validate_question(request.question, settings.max_question_chars)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", f"question: {exc}") from exc
        history = request.history[-settings.max_history_turns :] if settings.max_history_turns else []
        return rt.chain.answer(request.question, history)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """The process is alive."""
        return Health(status="ok", version=__version__)

    return app
