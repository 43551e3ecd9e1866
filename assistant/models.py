"""The data that flows through the chain and out of the API."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# A citation marker in an answer: "[2]", or "[1, 3]" for several passages.
MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


class Message(BaseModel):
    """One turn of the conversation so far."""

    role: Literal["user", "assistant"]
    content: str = Field(
        min_length=1,
        description="The message's text (up to 8,000 characters: ASSISTANT_MAX_MESSAGE_CHARS).",
        json_schema_extra={"pattern": r"\S"},
    )


class Citation(BaseModel):
    """A passage an answer's ``[id]`` marker points to."""

    # Strict numbers: a client sending `"end": true` back with feedback made a mistake.
    id: int = Field(strict=True, description="The number used in the answer's [n] markers, from 1.")
    document: str = Field(description="Id of the document the passage comes from.")
    title: str = Field(description="Title of that document.")
    section: str | None = Field(description="Heading of the section holding the passage.")
    text: str = Field(description="The exact passage: document_text[start:end].")
    start: int = Field(strict=True, description="Character offset of the passage in the document text.")
    end: int = Field(strict=True, description="Character offset just past the passage.")
    score: float = Field(strict=True, description="Relevance of the passage to the question (cosine, 0..1).")


class TraceStep(BaseModel):
    """What one stage of the chain did."""

    stage: str
    detail: dict[str, Any]


_EXAMPLE_TEXT = (
    "Le ministre des Affaires étrangères de la Fédération de Russie, Sergueï Lavrov, s’apprête "
    "à effectuer une visite officielle de trois jours en République populaire démocratique de "
    "Corée (Corée du Nord), à compter de ce vendredi."
)
_EXAMPLE_PASSAGE = {
    "id": 1,
    "document": "lavrov-visite-coree-du-nord.md",
    "title": "Sergueï Lavrov attendu à Pyongyang pour trois jours de dialogue stratégique",
    "section": "Aperçu de la Visite",
    "text": _EXAMPLE_TEXT,
    "start": 103,
    "end": 330,
    "score": 0.8871,
}
_FOUND_EXAMPLE = {
    "answer": _EXAMPLE_TEXT[:-1] + " [1].",
    "found": True,
    "citations": [_EXAMPLE_PASSAGE],
    "related": [],
}
_NOT_FOUND_EXAMPLE = {
    "answer": "I could not find the answer to this question in the documents.",
    "found": False,
    "citations": [],
    "related": [{**_EXAMPLE_PASSAGE, "score": 0.8412}],
}


class Answer(BaseModel):
    """An answer whose every [n] marker resolves to a citation."""

    model_config = ConfigDict(json_schema_extra={"examples": [_FOUND_EXAMPLE, _NOT_FOUND_EXAMPLE]})

    answer: str
    found: bool
    citations: list[Citation]
    related: list[Citation] = Field(
        default_factory=list,
        description=(
            "When found is false: the closest passages, offered to read (same shape as citations, "
            "never cited by the answer). Empty when found is true."
        ),
    )
    fallback: bool | None = Field(
        None, description="With a language model: true when the extractive answer stands in for it."
    )
    unsupported: list[str] | None = Field(
        None,
        description=(
            "With a language model and `debug`: statements of its reply left out of the answer (no passage "
            "they cite supports them, or they say nothing beyond their markers). Never sent without `debug`."
        ),
    )
    trace: list[TraceStep] | None = None
