"""Citation checking: every [n] marker in an answer must resolve to a passage it was given,
and a generated statement is shown only when a passage it cites supports it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from langchain_core.documents import Document

from assistant.answering.answer_types import NAME, YEAR, Facts, date_words, numbers
from assistant.answering.decision import Embedder, focus_of
from assistant.models import MARKER, Citation
from vectorstore.language import content_words, detect_language, fold, stem


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


# A statement ends at . ! ? … (and closing quotes) before white space, unless a marker
# follows on the same line ("… trois jours. [1]" cites the sentence before it); and at every
# line break, unless the next line holds only markers (those cite the line before it). A
# line that opens with markers ("[3] Il pourrait…") is a statement of its own. In a stream
# the statement is complete once the next one has begun (a marker still being written at
# the end of the text has not begun it).
_MARKERS = r"\[\d+(?:\s*,\s*\d+)*\]"
STATEMENT_END = re.compile(
    rf"[.!?…][\"'»”’)]*(?:[ \t]*{_MARKERS})*[ \t]+(?=[^\s\[])"
    rf"|[ \t]*\n\s*(?=\S)(?!(?:{_MARKERS}[ \t]*)+(?:\n|$)|(?:{_MARKERS}[ \t]*)*\[[\d,\s]*$)"
)
# Forms of "to be", "to have", "to do", "to go" and "will": a statement that shares only
# these with the question ("Quel temps fera-t-il ?" / "La visite fera trois jours") does not
# speak of what is asked.
LIGHT_WORDS = frozenset(
    "fera feront fait font faire faisait sera seront serait est sont etait etaient ete etre aura auront "
    "aurait avait avoir eu ira iront va vont aller allait does do did done doing will would is are was "
    "were be been being has have had having goes going went make makes made".split()
)
# Within this much of the best cosine a cited passage still counts as the statement's own.
SUPPORT_MARGIN = 0.03
# The cited passage must be among the statement's closest passages.
SUPPORT_RANK = 2
# A statement whose words are nearly all the question's says nothing the question did not.
ECHO_SHARE = 0.8


def split_statements(text: str) -> list[str]:
    """The statements of an answer, each with its markers, in order."""
    parts, start = [], 0
    for match in STATEMENT_END.finditer(text):
        parts.append(text[start : match.end()].strip())
        start = match.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


@dataclass
class Verdict:
    """What the check made of one statement: the text to show (markers as kept), or why not."""

    statement: str
    shown: str | None
    reason: str = ""


class SupportCheck:
    """Whether each statement of a generated answer says something, and whether the
    passages it cites support it.

    A statement needs two words of its own beyond its markers, must not echo the question,
    and every figure (ordinals too), name, month and day of the week it states must be in a
    passage it cites. A cited passage supports it when it is among the statement's closest
    passages (by cosine, against the other passages given), and shares a word with it
    (unless the two are in different languages). A statement whose citations all fail is
    credited to its closest passage when that one passes the same test; otherwise it is
    left out.
    """

    def __init__(
        self, question: str, passages: list[Document], embedder: Embedder, *, must_address: bool = False
    ) -> None:
        self.passages = passages
        self.embedder = embedder
        self.question_words = {_stem_any(w) for w in content_words(question)}
        self._bare: np.ndarray | None = None
        self.terms = [{_stem_any(w) for w in content_words(p.page_content)} for p in passages]
        # Where the passages were judged not to answer, a statement must at least speak of
        # what is asked (the question without its names and years), not only of the
        # document's subject: "the visit lasts three days" does not answer the weather.
        # Words a third of the passages or more share ("diplomatie" in an article on
        # diplomacy) say what the documents are about; the others ("présent") what is
        # asked, and a statement must hold one of those when there are any.
        focus = _focus_words(question, passages) if must_address else set()
        rare = {w for w in focus if 3 * sum(w in terms for terms in self.terms) < len(passages)}
        self.focus_words = rare or focus
        self.figures = [numbers(p.page_content) | set(YEAR.findall(p.page_content)) for p in passages]
        self.names = [Facts.of_document([p.page_content]).names for p in passages]
        self.dates = [date_words(p.page_content) for p in passages]

    def check(self, statement: str) -> Verdict:
        """The statement as it may be shown, or the reason it may not."""
        cited = [n for n in _markers(statement) if 1 <= n <= len(self.passages)]
        plain = MARKER.sub(" ", statement)
        own = content_words(plain)
        if not cited:
            return Verdict(statement, None, "cites no passage")
        if len(own) < 2:
            return Verdict(statement, None, "says nothing beyond its markers")
        stems = {_stem_any(w) for w in own}
        if plain.rstrip().endswith("?") or len(stems & self.question_words) >= ECHO_SHARE * len(stems):
            return Verdict(statement, None, "repeats the question")
        similarity = self._similarity(" ".join(plain.split()))
        order = list(np.argsort(-similarity))
        if self.focus_words and not stems & self.focus_words:
            return Verdict(statement, None, "does not speak of what is asked")
        figures = numbers(plain) | set(YEAR.findall(plain))
        names = Facts.of_question(plain).names
        dates = date_words(plain)
        language = detect_language(plain)

        def supports(number: int) -> bool:
            index = number - 1
            close = order.index(index) < SUPPORT_RANK or similarity[index] >= similarity.max() - SUPPORT_MARGIN
            passage_language = self.passages[index].metadata.get("language", language)
            shared = bool(stems & self.terms[index]) or passage_language != language
            stated = figures <= self.figures[index] and names <= self.names[index] and dates <= self.dates[index]
            return close and shared and stated

        kept = [n for n in dict.fromkeys(cited) if supports(n)]
        if not kept and supports(order[0] + 1):
            kept = [order[0] + 1]
        if not kept:
            return Verdict(statement, None, "no passage it cites supports it")
        return Verdict(statement, _with_markers(statement, kept))

    def _similarity(self, statement: str) -> np.ndarray:
        """The statement's cosine to each passage, both embedded bare.

        Stored vectors are made with the document's title before the passage; against a
        statement, the title would weigh as much as what each passage says (a short
        passage and a title naming "trois jours" look alike to "the visit lasts three
        days"). The passages' bare vectors are computed here, once per passage (the
        embedder remembers them), only when a statement gets this far."""
        if self._bare is None:
            self._bare = np.stack([self.embedder.passage_vector(p.page_content) for p in self.passages])
        return self._bare @ self.embedder.passage_vector(statement)


def _focus_words(question: str, passages: list[Document]) -> set[str]:
    """The stems of what a question asks: its words beyond names and years, days, months
    and forms of "to be", "to have", "to do".

    Words the passages write as names ("Corée du Nord") are names in the question too,
    however it writes them ("nord-coréens"): they say what the question is about, not what
    it asks."""
    named = {fold(n) for p in passages for part in NAME.findall(p.page_content) for n in part.split("-")}
    focus = focus_of(question) or question
    return {_stem_any(w) for w in content_words(focus) if w not in LIGHT_WORDS and w not in named and not date_words(w)}


def _markers(text: str) -> list[int]:
    return [int(n) for group in MARKER.findall(text) for n in group.split(",")]


def _with_markers(statement: str, numbers: list[int]) -> str:
    """The statement with its markers replaced by ``numbers``, before its closing punctuation."""
    text = re.sub(r"[ \t]+([.,;:!?…])", r"\1", re.sub(r"[ \t]{2,}", " ", MARKER.sub("", statement))).strip()
    markers = "".join(f"[{n}]" for n in numbers)
    match = re.search(r"[.!?…]+[\"'»”’)]*$", text)
    if not match:
        return f"{text} {markers}"
    return f"{text[: match.start()].rstrip()} {markers}{match.group(0)}"


def _stem_any(word: str) -> str:
    return min((stem(word, lang) for lang in ("fr", "en")), key=len)
