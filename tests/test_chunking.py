import random
import re
from pathlib import Path

import pytest

from vectorstore.chunking import MAX_PASSAGE_CHARS, chunk, sentence_spans
from vectorstore.documents import from_text, load

SEED = Path(__file__).resolve().parent.parent / "seeds" / "lavrov-visite-coree-du-nord.md"


def assert_tiles(text: str, passages: list) -> None:
    """Spans reproduce their text, do not overlap, and cover every non-blank character."""
    covered = [False] * len(text)
    for p in passages:
        assert text[p.start : p.end] == p.text
        assert p.text == p.text.strip() and p.text
        for i in range(p.start, p.end):
            assert not covered[i], "passages overlap"
            covered[i] = True
    for i, ch in enumerate(text):
        assert covered[i] or ch.isspace(), f"character {i} {ch!r} is in no passage"


def test_seed_passages_are_exact_sentences_with_their_section() -> None:
    doc = load(SEED, SEED.parent)
    passages = chunk(doc)
    assert_tiles(doc.text, passages)
    text = [p for p in passages if p.kind == "text"]
    assert len(text) >= 20
    assert all(len(p.text) <= MAX_PASSAGE_CHARS for p in text)
    by_start = {p.text[:40]: p for p in text}
    assert by_start["Au cœur de cette visite figure la tenue "].section == "Dialogue Stratégique au Sommet"
    # "M. Lavrov" does not end a sentence.
    assert any(p.text.startswith("La visite de M. Lavrov intervient") and p.text.endswith("alliés.") for p in text)
    assert {p.language for p in passages} == {"fr"}


def test_short_sentences_join_a_neighbour_and_long_ones_are_cut() -> None:
    long_sentence = "Une clause assez longue, " * 40 + "fin."
    doc = from_text(
        "t.txt", f"Oui. Non. {long_sentence}\n\nUn autre paragraphe ici, bien plus long que le minimum requis."
    )
    passages = [p for p in chunk(doc) if p.kind == "text"]
    assert_tiles(doc.text, passages)
    assert passages[0].text.startswith("Oui. Non.")
    assert all(len(p.text) <= MAX_PASSAGE_CHARS for p in passages)
    assert len({p.paragraph for p in passages}) == 2


def test_sentence_ends_respect_abbreviations_and_list_items() -> None:
    text = "Le Dr. Martin arrive à 10 h. Il repart ensuite.\n- premier point\n- second point"
    spans = [text[s:e] for s, e in sentence_spans(text, 0, len(text))]
    assert spans == ["Le Dr. Martin arrive à 10 h.", "Il repart ensuite.", "- premier point", "- second point"]


def test_ids_are_stable_and_change_with_content() -> None:
    head = "Une première phrase, assez longue pour former un passage à elle seule. "
    first = chunk(from_text("d.txt", head + "Une seconde phrase, elle aussi assez longue pour rester seule."))
    again = chunk(from_text("d.txt", head + "Une seconde phrase, elle aussi assez longue pour rester seule."))
    other = chunk(from_text("d.txt", head + "Une autre fin, différente, et tout aussi longue que la précédente."))
    assert len(first) == 2
    assert [p.id for p in first] == [p.id for p in again]
    assert first[0].id == other[0].id and first[-1].id != other[-1].id


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_are_tiled_exactly(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [
        "Phrase.",
        "Une phrase plus longue, avec une virgule !",
        "M. Dupont?",
        "# Titre",
        "## Sous-titre",
        "- item",
        "1) point",
        "  ",
        "\n",
        "\n\n",
        "\t",
        "«Citation.»",
        "Fin…",
        "x" * 700,
        "e.g. ceci",
        "É",
    ]
    text = "".join(rng.choice(pieces) + rng.choice([" ", "\n", "\n\n", ""]) for _ in range(rng.randint(1, 60)))
    if not text.strip():
        text += "Texte."
    for kind in (".txt", ".md"):
        doc = from_text("r", text, kind=kind)
        assert_tiles(doc.text, chunk(doc))


def test_markdown_heading_without_blank_line_still_opens_a_section() -> None:
    doc = from_text("m.md", "# Titre\nTexte juste sous le titre, sans ligne vide.\n## Deux\nAutre texte.", kind=".md")
    passages = chunk(doc)
    assert_tiles(doc.text, passages)
    sections = {p.text: p.section for p in passages if p.kind == "text"}
    assert sections == {"Texte juste sous le titre, sans ligne vide.": "Titre", "Autre texte.": "Deux"}
    assert re.match(r"#", next(p.text for p in passages if p.kind == "heading"))
