"""Settings, read from ``ASSISTANT_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Time left in a request's budget after the model's, for retrieval and the extractive fallback.
BUDGET_MARGIN_S = 3.0


class Settings(BaseSettings):
    """Every knob of the assistant, with defaults that work offline on a laptop."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", env_file=".env", env_ignore_empty=True, extra="ignore")

    data_dir: Path = Field(Path("data"), description="Folder of the embedded Chroma store.")
    chroma_url: str | None = Field(None, description="Chroma server URL (http://host:port); unset = embedded.")
    collection: str = Field("assistant", description="Collection name prefix (3+ characters).")
    store_min_free_mb: int = Field(
        64, ge=0, description="Free disk space (MiB) an embedded store keeps; writes that would go below are refused."
    )
    embedding_cache_entries: int = Field(
        100_000,
        ge=0,
        description=(
            "Passage vectors kept on disk, so that a text embedded once (reindex, a rerun, another store of the "
            "machine) is read back, not embedded again; past it the least recently used go first; 0 = off."
        ),
    )
    embedding_cache_file: Path | None = Field(
        None,
        description="SQLite file of those vectors; unset = vectors.sqlite3 in the cache folder (ASSISTANT_CACHE_DIR).",
    )
    seeds_dir: Path = Field(Path("seeds"), description="What `assistant ingest` ingests by default.")
    web_dir: Path = Field(
        Path(__file__).resolve().parent.parent / "web", description="Folder of the chat page served at /."
    )

    host: str = Field("127.0.0.1", description="Address `assistant serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `assistant serve` listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error."
    )

    max_question_chars: int = Field(2000, ge=1, description="Longest accepted question.")
    max_history_turns: int = Field(20, ge=0, description="Most history messages used for follow-ups.")
    candidates: int = Field(40, ge=1, le=200, description="Passages fetched by each retriever before fusion.")
    search_in_store_from: int = Field(
        200_000,
        ge=1,
        description="From this many passages, search runs in Chroma's HNSW index and a lexical index on disk.",
    )
    max_citations: int = Field(3, ge=1, le=10, description="Most sentences quoted in an extractive answer.")
    decision_weights: Path | None = Field(
        None, description="Weights of the fitted answer decision (`assistant calibrate`); unset = the bundled ones."
    )
    quick_decisions: bool = Field(
        False,
        description="Decide the questions the quick stage is sure of without the focus's model pass "
        "(new questions about 30 % faster; a few more unanswerable ones answered).",
    )

    llm: Literal["extractive", "ollama", "openai"] = Field(
        "extractive", description="Answer backend: extractive, ollama or openai."
    )
    llm_model: str | None = Field(None, description="Model name for ollama or openai (llama3.2, gpt-4o-mini).")
    llm_url: str | None = Field(None, description="Base URL of the model server (OpenAI-compatible or Ollama).")
    llm_api_key: str | None = Field(None, description="API key of the model server, if it needs one.")
    llm_timeout_s: float = Field(20.0, gt=0, description="Time budget of a generated answer; past it, extractive.")
    llm_condense_timeout_s: float = Field(
        5.0, gt=0, description="Time budget of the model's rewrite of a follow-up; past it, the built-in one."
    )
    llm_max_tokens: int = Field(300, ge=16, le=4096, description="Most tokens the model may generate for one answer.")
    llm_passages: int = Field(6, ge=1, le=20, description="Passages given to the model.")
    llm_decides: bool = Field(
        True,
        description="When the model says the passages do not answer where the extractive decision "
        "says they do, refuse (true) or give the extractive answer (false: for a model whose "
        "refusals of answerable questions you find more often wrong than right).",
    )
    model_name: str = Field("document-assistant", description="Model id announced by the OpenAI-compatible API.")
    api_keys: str = Field("", description="Comma-separated keys; when set, /api and /v1 need one.")
    admin_keys: str = Field("", description="Comma-separated keys allowed to upload and delete documents.")
    cors_origins: str = Field("", description="Comma-separated origins allowed by CORS (none by default).")
    max_message_chars: int = Field(8000, ge=1, description="Longest history message.")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="Largest JSON request body.")
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest document upload (whole request).")
    max_upload_files: int = Field(100, ge=1, le=1000, description="Most files in one upload.")
    max_document_passages: int = Field(
        3000, ge=1, description="Most passages an uploaded document may have (after repeated sentences are dropped)."
    )
    max_upload_passages: int = Field(5000, ge=1, description="Most passages one upload may add, all files together.")
    rate_limit_per_minute: int = Field(
        120, ge=0, description="Requests per minute per client (key or address); 0 = off."
    )
    request_timeout_s: float = Field(30.0, gt=0, description="Time budget of one answer, in seconds.")

    allowed_hosts: str = Field(
        "localhost,127.0.0.1,::1",
        description=(
            "Comma-separated host names the server answers to, besides the address a request arrived on; "
            "* = any. Others get 400 (this stops DNS rebinding)."
        ),
    )
    api_docs: bool = Field(
        True, description="Serve the API documentation pages /docs and /redoc; /openapi.json is served either way."
    )

    debug_traces: str | None = Field(
        None,
        description=(
            "Who may ask for `debug` traces: open (anyone who may read) or admin (admin keys only); "
            "unset = admin when keys are set, open otherwise."
        ),
    )

    forwarded_allow_ips: str = Field(
        "",
        description=(
            "Comma-separated addresses or networks (10.0.0.0/8) of the proxies whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed; none by default."
        ),
    )
    max_header_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest request line and headers, together; larger ones get 431."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's line and headers before it is disconnected."
    )
    read_timeout_s: float = Field(
        30.0, gt=0, description="Longest pause, in seconds, within a request body; past it, 408 and disconnection."
    )
    keep_alive_s: int = Field(5, ge=1, description="Seconds an idle connection is kept open after a response.")
    max_connections: int = Field(
        256,
        ge=1,
        description=(
            "Connections served at once per worker; a request past it gets 503, "
            "and connections past twice as many are closed as they open."
        ),
    )
    feedback_db: Path | None = Field(
        None,
        description=(
            "SQLite file of the readers' ratings of answers (POST /api/feedback); unset = feedback.sqlite3 in "
            "ASSISTANT_DATA_DIR. On a local disk: the processes of one machine can share it, not several machines."
        ),
    )

    @property
    def api_key_set(self) -> frozenset[str]:
        """Keys that may call the API (admin keys included)."""
        return _split(self.api_keys) | _split(self.admin_keys)

    @property
    def admin_key_set(self) -> frozenset[str]:
        """Keys that may change the documents."""
        return _split(self.admin_keys)

    @property
    def cors_origin_list(self) -> list[str]:
        """Origins allowed by CORS."""
        return sorted(_split(self.cors_origins))

    @property
    def allowed_host_list(self) -> list[str]:
        """Host names the server answers to (the listening address is added when the app is built)."""
        return sorted(_split(self.allowed_hosts))

    @property
    def traces_need_admin_key(self) -> bool:
        """True when only admin keys may ask for debug traces."""
        return (self.debug_traces or ("admin" if self.api_key_set else "open")) == "admin"

    @model_validator(mode="after")
    def _budgets_nest(self) -> Settings:
        # A generated answer may take a rewrite of the follow-up, then the answer itself;
        # both, and retrieval, must fit in the request's budget, or a slow model gives the
        # user a timeout instead of the extractive answer it falls back to.
        if self.llm != "extractive":
            needed = self.llm_condense_timeout_s + self.llm_timeout_s + BUDGET_MARGIN_S
            if self.request_timeout_s < needed:
                raise ValueError(
                    f"ASSISTANT_REQUEST_TIMEOUT_S ({self.request_timeout_s:g} s) must be at least "
                    f"ASSISTANT_LLM_CONDENSE_TIMEOUT_S + ASSISTANT_LLM_TIMEOUT_S + {BUDGET_MARGIN_S:g} s "
                    f"({needed:g} s), so that a slow model still leaves time for the extractive answer"
                )
        return self

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        if len(value) < 3 or not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError("ASSISTANT_COLLECTION needs 3+ letters, digits, '-' or '_'")
        return value

    @field_validator("llm", mode="before")
    @classmethod
    def _llm(cls, value: object) -> object:
        if value not in ("extractive", "ollama", "openai"):
            raise ValueError("ASSISTANT_LLM must be extractive, ollama or openai")
        return value

    @field_validator("chroma_url")
    @classmethod
    def _chroma_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = urlparse(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("ASSISTANT_CHROMA_URL must look like http://host:port")
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        if not isinstance(value, str) or value.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("ASSISTANT_LOG_LEVEL must be debug, info, warning or error")
        return value.lower()

    @field_validator("debug_traces")
    @classmethod
    def _debug_traces(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip().lower() not in ("open", "admin"):
            raise ValueError("ASSISTANT_DEBUG_TRACES must be open or admin")
        return value.strip().lower()

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _forwarded_allow_ips(cls, value: str) -> str:
        proxies = [part.strip() for part in value.split(",") if part.strip()]
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"ASSISTANT_FORWARDED_ALLOW_IPS holds {proxy!r}, neither an address nor a network (10.0.0.0/8)"
                ) from None
        return ",".join(proxies)


def _split(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
