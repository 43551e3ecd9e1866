"""Properties that must hold for any input (Hypothesis)."""

import zlib
from itertools import pairwise

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document

from assistant.answering.chain import take_statements
from assistant.answering.citations import MARKER, SupportCheck, resolve, split_statements
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


class HashEmbedder:
    """A stand-in embedding: a fixed random unit vector per text."""

    def passage_vector(self, text: str) -> np.ndarray:
        vector = np.random.default_rng(zlib.crc32(text.encode())).normal(size=8)
        return vector / np.linalg.norm(vector)

    query_vector = passage_vector


def passages(n: int) -> list[Document]:
    return [
        Document(
            page_content=f"p{i}",
            metadata={
                "document": "d",
                "title": "T",
                "start": 0,
                "end": 2,
                "vector": HashEmbedder().passage_vector(f"p{i}"),
            },
        )
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
def test_streamed_statements_are_the_statements_of_the_whole_reply(text: str, count: int, cuts: list[int]) -> None:
    """However the reply arrives in pieces, it is cut into the same statements, and none
    shown carries a marker outside the passages given."""
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    written, taken, statements, pending = "", 0, [], ""
    for a, b in pairwise(bounds):
        written += text[a:b]
        complete, pending = take_statements(written[taken:])
        taken = len(written) - len(pending)
        statements += complete
    statements += [pending.strip()] if written[taken:].strip() else []
    assert statements == split_statements(text)
    check = SupportCheck("Question ?", passages(count), HashEmbedder())
    for statement in statements:
        shown = check.check(statement).shown
        for group in MARKER.findall(shown or ""):
            assert all(1 <= int(n) <= count for n in group.split(","))
