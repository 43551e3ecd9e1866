"""Citation checking: every [n] marker in an answer must resolve to a passage it was given."""

from __future__ import annotations

import re

from langchain_core.documents import Document

from assistant.models import Citation

MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def resolve(text: str, passages: list[Document]) -> tuple[str, list[Citation]]:
    """Renumber markers to 1, 2, … in order of first use, drop those that point nowhere,
    and return the rewritten answer with one citation per number."""
    numbers: dict[int, int] = {}

    def rewrite(match: re.Match[str]) -> str:
        kept: list[int] = []
        for raw in match.group(1).split(","):
            given = int(raw)
            if 1 <= given <= len(passages):
                numbers.setdefault(given, len(numbers) + 1)
                if numbers[given] not in kept:
                    kept.append(numbers[given])
        return "".join(f"[{n}]" for n in kept)

    rewritten = MARKER.sub(rewrite, drop_invalid(text, len(passages)))
    rewritten = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", rewritten)).strip()
    citations = [citation(new, passages[given - 1]) for given, new in numbers.items()]
    return rewritten, citations


def drop_invalid(text: str, passages: int) -> str:
    """The text without markers pointing outside 1..``passages``, the valid ones untouched.

    Repeated until nothing changes: dropping "[7]" from "[1[7]]" leaves "[1]", a marker
    the reader would otherwise see."""

    def keep(match: re.Match[str]) -> str:
        numbers = [int(n) for n in match.group(1).split(",") if 1 <= int(n) <= passages]
        return "".join(f"[{n}]" for n in dict.fromkeys(numbers))

    while (dropped := MARKER.sub(keep, text)) != text:
        text = dropped
    return text


def citation(number: int, passage: Document) -> Citation:
    """A Citation for a retrieved passage."""
    meta = passage.metadata
    return Citation(
        id=number,
        document=meta["document"],
        title=meta["title"],
        section=meta.get("section"),
        text=passage.page_content,
        start=meta["start"],
        end=meta["end"],
        score=round(float(meta.get("dense", 0.0)), 4),
    )


class MarkerFilter:
    """Streams text through, dropping markers that point outside 1..``passages``.

    A trailing run of marker characters ("[", digits, commas, spaces, "]") is held back
    until the text moves on, since it may still become a marker, or join one when an
    invalid marker inside it is dropped; no reader ever sees a marker that points nowhere.
    """

    def __init__(self, passages: int) -> None:
        self.passages = passages
        self._held = ""

    def feed(self, chunk: str) -> str:
        """Text safe to show now."""
        text = self._held + chunk
        pending = _PENDING.search(text)
        cut = pending.start() if pending else len(text)
        self._held = text[cut:]
        return drop_invalid(text[:cut], self.passages)

    def finish(self) -> str:
        """Whatever was held back, once the text is complete."""
        rest, self._held = self._held, ""
        return drop_invalid(rest, self.passages)


# From the first "[" of a trailing run of marker characters to the end of the text.
_PENDING = re.compile(r"\[[\[\]\d\s,]*$")


def unsupported_statements(text: str) -> list[str]:
    """Sentences of an answer that carry no marker."""
    sentences = re.split(r"(?<=[.!?…])\s+", text.strip())
    return [s for s in sentences if s and not MARKER.search(s)]
