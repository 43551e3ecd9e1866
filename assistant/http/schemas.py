"""Request and response models of the HTTP API (the OpenAPI schema is generated from them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from assistant.config import Settings
from assistant.feedback.ratings import MAX_CITATIONS, MAX_COMMENT_CHARS
from assistant.http.input_checks import is_blank
from assistant.models import Citation, Message

QUESTION_EXAMPLE = "Dans quelle ville se rend Sergueï Lavrov ?"


class AnswerRequest(BaseModel):
    """A question, with the conversation so far for follow-ups."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"question": "How long will Lavrov stay in North Korea?"},
                {
                    "question": "Et combien de temps y reste-t-il ?",
                    "history": [
                        {"role": "user", "content": QUESTION_EXAMPLE},
                        {"role": "assistant", "content": "À Pyongyang [1]."},
                    ],
                    "debug": True,
                },
            ]
        }
    )

    question: str = Field(
        description="The question, at most ASSISTANT_MAX_QUESTION_CHARS characters (2,000 by default).",
        json_schema_extra={"pattern": r"\S"},
    )
    history: list[Message] = Field(
        default_factory=list,
        description="Earlier turns, oldest first (at most ASSISTANT_MAX_HISTORY_TURNS, 20 by default).",
    )
    # Strict booleans: `"debug": 1` is a mistake to name, not a True to guess.
    debug: StrictBool = Field(
        False,
        description="Also return what each stage of the chain did (`trace`). Needs an admin key when "
        "ASSISTANT_DEBUG_TRACES is admin (the default once keys are set): 403 otherwise.",
    )

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        if is_blank(value):
            raise ValueError("the question is empty")
        return value.strip() or value


class ErrorDetail(BaseModel):
    """What went wrong, for the client."""

    type: str = Field(examples=["invalid_request"])
    message: str = Field(examples=["question: the question is empty"])


class ErrorResponse(BaseModel):
    """Every error has this shape."""

    error: ErrorDetail


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"]
    version: str


class Readiness(BaseModel):
    """What the server is ready with; the details only for a caller who may read the API."""

    status: Literal["ready"]
    store: Literal["embedded", "server"] | None = Field(
        None, description="An embedded store (a data folder) or a Chroma server."
    )
    embedding_model: str | None = None
    documents: int | None = None
    passages: int | None = None
    llm: dict[str, Any] | None = Field(
        None,
        description="The answer backend; for a language model, whether its server answers (the "
        "extractive answerer stands in when it does not).",
    )


class DocumentSummary(BaseModel):
    """An ingested document."""

    id: str = Field(examples=["lavrov-visite-coree-du-nord.md"])
    title: str
    source: str = Field(
        description="Where it came from: its path under the folder it was ingested from, or upload:<file name>.",
        examples=["lavrov-visite-coree-du-nord.md"],
    )
    passages: int
    ingested_at: str
    lookalikes: list[str] = Field(
        default_factory=list,
        description="Other documents whose id reads the same (it differs only by case, spaces or look-alike "
        "characters such as fullwidth letters): make sure which one you mean.",
    )


class DocumentList(BaseModel):
    """The ingested documents."""

    documents: list[DocumentSummary]


class PassageSpan(BaseModel):
    """Where a passage sits in its document's text."""

    id: str
    start: int
    end: int
    section: str | None


class DocumentDetail(DocumentSummary):
    """A document with its full text and the spans of its passages, to show citations in context."""

    text: str
    spans: list[PassageSpan]


class UploadedDocument(BaseModel):
    """What happened to one uploaded file."""

    id: str
    status: Literal["added", "updated", "unchanged"]
    passages: int


class UploadResult(BaseModel):
    """The uploaded documents."""

    documents: list[UploadedDocument]


class Starters(BaseModel):
    """Questions to start a conversation with, each answerable from the documents."""

    questions: list[str]
    documents: int


class SourcesEvent(BaseModel):
    """First event of a stream: the passages the answer may cite."""

    citations: list[Citation]


class DeltaEvent(BaseModel):
    """A piece of the answer's text."""

    text: str


# OpenAI-compatible --------------------------------------------------------------


class ContentPart(BaseModel):
    """A part of a message's content (only text is understood)."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """A message in OpenAI's chat format."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="system and developer messages are accepted and not needed by the extractive backend"
    )
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text, whatever form its content takes."""
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; sampling parameters are accepted and ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": "document-assistant",
                    "messages": [{"role": "user", "content": "What does North Korea offer Russia?"}],
                }
            ]
        },
    )

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool = False


class ChoiceMessage(BaseModel):
    """The assistant's message."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    """The one choice returned."""

    index: int = 0
    message: ChoiceMessage
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    """Token counts (no language model runs in the extractive backend: zeros)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    """OpenAI's chat completion, with the answer's citations (and, for a refusal, the closest
    passages) alongside."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage = Field(default_factory=Usage)
    citations: list[Citation] = Field(description="What the answer's [n] markers point to.")
    related: list[Citation] = Field(
        default_factory=list,
        description="When found is false: the closest passages, offered to read (same shape as citations, "
        "never cited by the answer). Empty when found is true.",
    )
    found: bool = Field(description="False when the documents do not hold the answer.")
    fallback: bool | None = Field(None, description="True when the extractive answer stands in for the model.")


class ModelCard(BaseModel):
    """A model the server answers as."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "document-assistant"


class ModelList(BaseModel):
    """The models the server answers as."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


# Feedback -----------------------------------------------------------------------

CitationId = Annotated[int, Field(ge=1, le=1000)]


class FeedbackRequest(BaseModel):
    """A reader's rating of one answer, with what was asked, answered and cited."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "question": QUESTION_EXAMPLE,
                    "answer": "À Pyongyang [1].",
                    "citations": [1],
                    "found": True,
                    "rating": "up",
                },
                {
                    "question": "Quel est le salaire de Sergueï Lavrov ?",
                    "answer": "I could not find the answer to this question in the documents.",
                    "found": False,
                    "rating": "down",
                    "comment": "The second article gives it.",
                },
            ]
        }
    )

    question: str = Field(
        description="The question answered, at most ASSISTANT_MAX_QUESTION_CHARS characters.",
        json_schema_extra={"pattern": r"\S"},
    )
    history: list[Message] = Field(
        default_factory=list,
        description="The conversation before the question, as sent to /api/answer (at most "
        "ASSISTANT_MAX_HISTORY_TURNS messages).",
    )
    answer: str = Field(
        description="The answer rated, as it was shown (at most ASSISTANT_MAX_MESSAGE_CHARS characters). "
        "Kept as plain text.",
    )
    citations: list[Citation | CitationId] = Field(
        default_factory=list,
        max_length=MAX_CITATIONS,
        description="The answer's citations as the API returned them, or only their ids.",
    )
    found: StrictBool = Field(description="The answer's `found`.")
    rating: Literal["up", "down"]
    comment: str | None = Field(
        None,
        description=f"What the reader adds, up to {MAX_COMMENT_CHARS:,} characters. Kept as plain text.",
        json_schema_extra={"maxLength": MAX_COMMENT_CHARS},
    )


class FeedbackSaved(BaseModel):
    """The stored rating's number and time."""

    id: int
    created_at: str = Field(description="When it was stored (UTC, ISO 8601).")


class FeedbackItem(FeedbackRequest):
    """A stored rating."""

    model_config = ConfigDict(json_schema_extra={})

    id: int
    created_at: str = Field(description="When it was stored (UTC, ISO 8601).")


class FeedbackList(BaseModel):
    """Stored ratings, newest first."""

    feedback: list[FeedbackItem]
    total: int = Field(description="How many ratings are stored.")
    limit: int
    offset: int


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes a route can return (always JSON, streaming routes too)."""
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {code: {"description": "Error", "content": {"application/json": {"schema": schema}}} for code in codes}


def with_limits(schemas: dict[str, Any], settings: Settings) -> None:
    """Write the limits the server enforces, from its settings, into the OpenAPI schemas
    (a client validating against the schema then refuses what the server would)."""
    question = {"maxLength": settings.max_question_chars}
    history = {"maxItems": settings.max_history_turns}
    message = {"maxLength": settings.max_message_chars}
    wanted = {
        "AnswerRequest": {"question": question, "history": history},
        "FeedbackRequest": {"question": question, "history": history, "answer": message},
        "Message": {"content": message},
    }
    for name, fields in wanted.items():
        properties = schemas.get(name, {}).get("properties", {})
        for field, limits in fields.items():
            if field in properties:
                properties[field].update(limits)
