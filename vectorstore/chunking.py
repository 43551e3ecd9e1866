"""Structure-aware chunking: document -> section -> paragraph -> sentence-sized passages.

Every passage is an exact slice of its document: ``text[start:end] == passage.text``.
Passages tile the document: apart from blank space between them, every character of
the document belongs to exactly one passage, headings included (they are passages of
kind ``heading``, never cited on their own).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from itertools import pairwise

from vectorstore.documents import SourceDocument
from vectorstore.language import detect_language

# A citable unit is one sentence, or a short sentence joined to its neighbour, so a
# citation points at a sentence or two; an over-long sentence is cut at clause breaks.
MIN_PASSAGE_CHARS = 60
MAX_PASSAGE_CHARS = 600

_ABBREVIATIONS = {
    "m",
    "mm",
    "mme",
    "mmes",
    "mlle",
    "dr",
    "pr",
    "st",
    "ste",
    "mr",
    "mrs",
    "ms",
    "prof",
    "gen",
    "gén",
    "col",
    "lt",
    "sgt",
    "jr",
    "sr",
    "vs",
    "etc",
    "cf",
    "ex",
    "env",
    "art",
    "no",
    "n°",
    "vol",
    "p",
    "pp",
    "fig",
    "av",
    "apr",
    "j.-c",
    "e.g",
    "i.e",
    "u.s",
    "u.k",
    "inc",
    "ltd",
    "co",
    "corp",
    "jan",
    "feb",
    "fév",
    "mar",
    "aug",
    "sept",
    "oct",
    "nov",
    "dec",
    "déc",
}
# A sentence ends at . ! ? or … (optionally followed by closing quotes or brackets),
# before white space and a character that can open a sentence.
# Possessive quantifiers and the look-behind keep it linear: a run of dots or spaces is
# matched once, never retried from each of its characters.
_SENTENCE_END = re.compile(r"(?<![.!?…])[.!?…]++[»\"'”’)\]]*+(?=\s++(?:[«\"“‘(\[—–-]\s*+)?[A-ZÀ-ÖØ-Þ0-9])")
# Longer than any abbreviation: a dotted run beyond this is not one ("12.12.12...").
_LONGEST_ABBREVIATION = 12
# The word before a dot, up to the longest abbreviation and one character more (a longer
# run is no abbreviation); the window keeps each look back bounded.
_TOKEN_BEFORE = re.compile(r"[\w°.\-]+\Z")
_DOTTED = re.compile(r"(?:\w\.)+\w")
_LIST_ITEM = re.compile(r"\s*(?:[-*+•]|\d+[.)])\s")
_CLAUSE_BREAK = re.compile(r"(?<=[;:,—–])\s+")


@dataclass(frozen=True)
class Passage:
    """A citable slice of a document, with where it sits."""

    document_id: str
    title: str
    section: str | None
    start: int
    end: int
    text: str
    kind: str  # "text" or "heading"
    paragraph: int
    position: int
    language: str = "fr"
    # Filled at ingest by the language pipeline: the content words' lemmas (space-separated)
    # and the named entities ("LABEL:text" joined by "|").
    lemmas: str = ""
    entities: str = ""

    @property
    def id(self) -> str:
        """Derived from the document, the span and the text, so re-ingesting is idempotent."""
        key = f"{self.document_id}\x00{self.start}\x00{self.end}\x00{self.text}"
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def chunk(document: SourceDocument) -> list[Passage]:
    """Split a document into passages that tile it and carry their section."""
    text = document.text
    language = detect_language(text)
    headings = sorted(document.headings, key=lambda h: h.start)
    passages: list[Passage] = []
    section: str | None = None
    heading_index = 0
    paragraph = 0
    for block_start, block_end in _blocks(text):
        # A heading may share a block with the text under it (no blank line between).
        cursor = block_start
        while heading_index < len(headings) and headings[heading_index].start < block_end:
            heading = headings[heading_index]
            heading_index += 1
            if heading.start < cursor:
                continue
            line_end = text.find("\n", heading.start)
            line_end = block_end if line_end == -1 or line_end > block_end else line_end
            if heading.start > cursor:
                paragraph += 1
                passages.extend(
                    _text_passages(document, section, cursor, heading.start, paragraph, len(passages), language)
                )
            line_start = text.rfind("\n", cursor, heading.start) + 1 if heading.start > cursor else cursor
            line_start = max(line_start, cursor)
            section = heading.title
            span = _trim(text, line_start, line_end)
            if span:
                passages.append(
                    Passage(
                        document.id,
                        document.title,
                        section,
                        span[0],
                        span[1],
                        text[span[0] : span[1]],
                        "heading",
                        paragraph,
                        len(passages),
                        language,
                    )
                )
            cursor = line_end
        if cursor < block_end and text[cursor:block_end].strip():
            paragraph += 1
            passages.extend(_text_passages(document, section, cursor, block_end, paragraph, len(passages), language))
    return passages


def _blocks(text: str) -> list[tuple[int, int]]:
    """Paragraph spans: runs of text separated by blank lines."""
    blocks = []
    for m in re.finditer(r"\S(?:.|\n(?![ \t]*\n))*", text):
        blocks.append((m.start(), m.end()))
    return blocks


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _text_passages(
    document: SourceDocument, section: str | None, start: int, end: int, paragraph: int, position: int, language: str
) -> list[Passage]:
    spans = _merge_short(document.text, _split_long(document.text, sentence_spans(document.text, start, end)))
    return [
        Passage(
            document.id, document.title, section, s, e, document.text[s:e], "text", paragraph, position + i, language
        )
        for i, (s, e) in enumerate(spans)
    ]


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans within text[start:end], also breaking at line starts of lists."""
    spans: list[tuple[int, int]] = []
    for line_start, line_end in _lines(text, start, end):
        cursor = line_start
        for m in _SENTENCE_END.finditer(text, line_start, line_end):
            dot, stop = m.span()
            if _is_abbreviation(text, line_start, dot):
                continue
            # A sentence ends on its punctuation, never on a space: only its start needs
            # trimming. Inlined: a 10 MB upload of numbered lines ends 2.6 million of them.
            while text[cursor].isspace():
                cursor += 1
            spans.append((cursor, stop))
            cursor = stop
        if (span := _trim(text, cursor, line_end)) is not None:
            spans.append(span)
    return spans


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split a block at line breaks that start a list item or a new line of verse;
    a line wrapped inside a sentence stays joined.

    Each line is looked at once (no copy of the rest of the block per line break), so a
    block of a million short lines is split in linear time."""
    cuts = [start]
    newline = text.find("\n", start, end)
    while newline != -1:
        position = newline + 1
        last = newline - 1
        while last >= cuts[-1] and text[last].isspace():
            last -= 1
        ends_sentence = last >= cuts[-1] and text[last] in '.!?:;…»"'
        if ends_sentence or _LIST_ITEM.match(text, position, end):
            cuts.append(position)
        newline = text.find("\n", position, end)
    cuts.append(end)
    return [(a, b) for a, b in pairwise(cuts) if b > a]


def _is_abbreviation(text: str, line_start: int, dot: int) -> bool:
    """Whether the dot at ``dot`` ends an abbreviation or an initial, not a sentence.

    Looks back at most a few characters, so that a line of a million dots costs a
    million steps, not a million squared."""
    if text[dot] != ".":
        return False
    if dot - 2 >= line_start and text[dot - 1].isdigit() and text[dot - 2].isdigit():
        # "12.", "en 2023.": no abbreviation ends in two digits, nor does a dotted run
        # ("U.S."), which ends in a single character.
        return False
    word = _TOKEN_BEFORE.search(text, max(line_start, dot - _LONGEST_ABBREVIATION - 1), dot)
    if word is None or dot - word.start() > _LONGEST_ABBREVIATION:
        return False
    start = word.start()
    token = text[start:dot].lower()
    if len(token) == 1 and token.isalpha():
        # An initial ("J. Smith"), unless it is a unit after a number ("à 10 h.").
        before = start
        while before > line_start and text[before - 1].isspace():
            before -= 1
        return not (before > line_start and text[before - 1].isdigit())
    return token in _ABBREVIATIONS or bool(_DOTTED.fullmatch(token))


def _split_long(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in spans:
        while end - start > MAX_PASSAGE_CHARS:
            window = text[start : start + MAX_PASSAGE_CHARS]
            breaks = [m.start() for m in _CLAUSE_BREAK.finditer(window) if m.start() > MAX_PASSAGE_CHARS // 3]
            if not breaks:
                breaks = [m.start() for m in re.finditer(r"\s+", window) if m.start() > MAX_PASSAGE_CHARS // 3]
            cut = start + (breaks[-1] if breaks else MAX_PASSAGE_CHARS)
            piece = _trim(text, start, cut)
            if piece:
                out.append(piece)
            start = cut
            while start < end and text[start].isspace():
                start += 1
        if end > start:
            out.append((start, end))
    return out


def _merge_short(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Join a sentence shorter than MIN_PASSAGE_CHARS to its successor (or predecessor)."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and (merged[-1][1] - merged[-1][0] < MIN_PASSAGE_CHARS) and end - merged[-1][0] <= MAX_PASSAGE_CHARS:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    if len(merged) > 1 and merged[-1][1] - merged[-1][0] < MIN_PASSAGE_CHARS:
        last = merged.pop()
        if last[1] - merged[-1][0] <= MAX_PASSAGE_CHARS:
            merged[-1] = (merged[-1][0], last[1])
        else:
            merged.append(last)
    return merged
