from assistant.lexical import LexicalIndex
from vectorstore.chunking import chunk
from vectorstore.documents import from_text
from vectorstore.language import query_terms

TEXT = (
    "Les essais de missiles balistiques se poursuivent malgré les condamnations internationales. "
    "La coopération économique progresse dans les domaines de l'énergie et des transports. "
    "Le ministre arrive vendredi pour une visite officielle de trois jours dans la capitale."
)


def index() -> LexicalIndex:
    return LexicalIndex([p for p in chunk(from_text("d.txt", TEXT)) if p.kind == "text"])


def test_bm25_ranks_the_passage_sharing_rare_folded_stems_first() -> None:
    idx = index()
    hits = idx.search(query_terms("Quels essais de missile se poursuivent ?"), k=3)
    assert idx.passages[hits[0][0]].text.startswith("Les essais de missiles")
    hits = idx.search(query_terms("energie transport"), k=3)
    assert idx.passages[hits[0][0]].text.startswith("La coopération")
    assert idx.search(query_terms("météo pluie"), k=3) == []


def test_coverage_is_the_share_of_question_weight_found() -> None:
    idx = index()
    terms = query_terms("missiles balistiques")
    assert idx.coverage(terms, 0) == 1.0
    assert idx.coverage(terms, 1) == 0.0
    partial = idx.coverage(query_terms("missiles salaire"), 0)
    assert 0.0 < partial < 1.0
