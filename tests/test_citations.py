from langchain_core.documents import Document

from assistant.answering.citations import resolve


def passage(n: int) -> Document:
    return Document(
        page_content=f"passage {n}",
        metadata={"document": "d", "title": "T", "section": None, "start": n * 10, "end": n * 10 + 9, "dense": 0.9},
    )


def test_markers_are_renumbered_in_order_of_use_and_invalid_ones_dropped() -> None:
    passages = [passage(1), passage(2), passage(3)]
    text, citations = resolve("B [3]. A [1][3]. Nowhere [7]. Both [2, 9].", passages)
    assert text == "B [1]. A [2][1]. Nowhere. Both [3]."
    assert [(c.id, c.text) for c in citations] == [(1, "passage 3"), (2, "passage 1"), (3, "passage 2")]


def test_every_marker_left_resolves_to_a_citation() -> None:
    text, citations = resolve("Rien [0] ni [4].", [passage(1)])
    assert text == "Rien ni." and citations == []


def test_dropping_a_marker_never_forms_another() -> None:
    assert resolve("[1[1]]", []) == ("", [])
    text, citations = resolve("x [1[7]].", [passage(1)])
    assert text == "x [1]." and [c.text for c in citations] == ["passage 1"]
