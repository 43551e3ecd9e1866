from assistant.answering.lexical import LexicalIndex
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


def test_rarer_terms_weigh_more() -> None:
    idx = index()
    assert idx.idf("absent") > idx.idf("missil") > 0


def test_a_word_counts_once_through_its_best_stem() -> None:
    idx = index()
    alone = [idx.search([frozenset({term})], k=1)[0][1] for term in ("missil", "balist")]
    as_one_word = idx.search([frozenset({"missil", "balist"})], k=1)[0][1]
    as_two_words = idx.search([frozenset({"missil"}), frozenset({"balist"})], k=1)[0][1]
    assert as_one_word == max(alone)
    assert as_two_words == sum(alone)
