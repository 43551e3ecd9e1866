"""Properties that must hold for any input (Hypothesis)."""

import re
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document

from assistant.citations import MARKER, MarkerFilter, resolve
from vectorstore.chunking import chunk
from vectorstore.documents import DocumentError, from_text

# Text made of the pieces that stress a chunker: headings, list items, abbreviations,
# sentence ends, blank lines, long runs, odd Unicode.
PIECES = st.sampled_from(
    ["Phrase.", "Une phrase, avec virgule !", "M. Dupont", "Dr. X?", "# Titre", "## Sous-titre", "- item", "1) un",
     "«Citation.»", "Fin…", "e.g. ceci", "x" * 650, "É", "\u00a0", "\t", "日本語。", "🙂", "[1]", "a.b.c."]
)  # fmt: skip
SEPARATORS = st.sampled_from(["", " ", "\n", "\n\n", "\n\n\n", "  \n"])
DOCUMENTS = st.lists(st.tuples(PIECES | st.text(max_size=40), SEPARATORS), min_size=1, max_size=60).map(
    lambda parts: "".join(a + b for a, b in parts)
)


@given(text=DOCUMENTS, kind=st.sampled_from([".txt", ".md"]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_passages_reproduce_their_text_and_cover_every_non_blank_character(text: str, kind: str) -> None:
    try:
        document = from_text("p", text, kind=kind)
    except DocumentError:
        assert not text.strip()
        return
    covered = [False] * len(document.text)
    for passage in chunk(document):
        assert document.text[passage.start : passage.end] == passage.text
        for i in range(passage.start, passage.end):
            assert not covered[i]
            covered[i] = True
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(document.text))


def passages(n: int) -> list[Document]:
    return [
        Document(page_content=f"p{i}", metadata={"document": "d", "title": "T", "start": 0, "end": 2})
        for i in range(1, n + 1)
    ]


MODEL_OUTPUT = st.lists(
    st.sampled_from(["[", "]", ",", " ", "1", "2", "7", "42", "[1]", "[2, 3]", "[0]", "[99]", "text", ".", "\n"])
    | st.text(max_size=10),
    max_size=40,
).map("".join)


@given(text=MODEL_OUTPUT, count=st.integers(min_value=0, max_value=5))
@settings(max_examples=500, deadline=None)
def test_resolved_answers_only_cite_returned_citations(text: str, count: int) -> None:
    answer, citations = resolve(text, passages(count))
    ids = {c.id for c in citations}
    assert ids == set(range(1, len(citations) + 1))
    for group in MARKER.findall(answer):
        assert {int(n) for n in group.split(",")} <= ids


@given(text=MODEL_OUTPUT, count=st.integers(min_value=0, max_value=5), cuts=st.lists(st.integers(0, 40), max_size=6))
@settings(max_examples=500, deadline=None)
def test_streamed_text_never_shows_a_marker_outside_the_passages(text: str, count: int, cuts: list[int]) -> None:
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    stream = MarkerFilter(count)
    shown = "".join(stream.feed(text[a:b]) for a, b in pairwise(bounds)) + stream.finish()
    whole = MarkerFilter(count)
    assert shown == whole.feed(text) + whole.finish()  # however the text is cut into pieces
    for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", shown):
        assert all(1 <= int(n) <= count for n in group.split(","))
