"""The fitted decision: answer types, conflicting details, the logistic models, and the
model-pass budget, with a scripted embedder that records what it is asked."""

from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document

from assistant.answer_types import Facts, asked_type, states_type
from assistant.decision import WEIGHTS, DecisionModel, Logistic, Question, already_said, focus_of
from assistant.runtime import Runtime
from assistant.selection import select_passages
from vectorstore.language import document_terms


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Combien de jours dure la visite ?", "duration"),
        ("How long does Lavrov's visit last?", "duration"),
        ("Quand commence la visite ?", "when"),
        ("Which day does the visit start?", "when"),
        ("En quelle année Shoigu est-il allé à Pyongyang ?", "year"),
        ("À quelle heure arrive-t-il ?", "time"),
        ("Qui a annoncé la visite ?", "who"),
        ("Où se rend Lavrov ?", "where"),
        ("Dans quelle ville se tient le sommet ?", "where"),
        ("How many officials travel with her?", "quantity"),
        ("a quel heure arrive-t-il ?", "time"),
        ("wat year is the visit", "year"),
        ("On what exact date does it begin?", "when"),
        ("Quel âge a le ministre ?", "age"),
        ("How old is he?", "age"),
        ("Combien coûtera le chantier ?", "money"),
        ("How much did the limousine cost?", "money"),
        ("Quel est le salaire du ministre ?", "money"),
        ("De quelle couleur est la limousine ?", "colour"),
        ("Comment s'appelle l'interprète ?", "who"),
        ("Which airline flies the delegation?", "who"),
        ("Which hotel is the delegation staying at?", "where"),
        ("Et dans quel hôtel dormira-t-il ?", "where"),
        ("ou va-t-il ensuite ?", "where"),
        ("Dans quels domaines vont-ils coopérer ?", None),
        ("Quelle place la Russie veut-elle tenir ?", None),
        ("Avec l'Iran ou la Chine ?", None),
        ("Pourquoi maintenant ?", None),
    ],
)
def test_what_a_question_asks_for(question: str, kind: str | None) -> None:
    assert asked_type(question) == kind


def test_what_a_passage_states() -> None:
    sentence = "Sergueï Lavrov effectue une visite de trois jours à Pyongyang, à compter de ce vendredi."
    assert states_type("duration", sentence) and states_type("when", sentence) and states_type("where", sentence)
    assert not states_type("year", sentence) and not states_type("time", sentence)
    assert states_type("time", "L’avion a atterri vers 3 h du matin.")
    assert states_type("money", "Le coût total s’élève à 14,8 millions d’euros.")
    assert states_type("money", "The expedition cost 1.9 million US dollars.")
    assert not states_type("money", "La médiathèque a coûté cher, selon la Ville.")
    assert states_type("age", "Le ministre, âgé de 74 ans, est arrivé vendredi.")
    assert not states_type("age", "Le ministre est arrivé vendredi.")
    assert states_type("colour", "Une limousine noire l’attendait.") and not states_type("colour", "Une limousine.")


def test_names_meet_across_languages_and_months_are_not_names() -> None:
    document = Facts.of_document(["Le dirigeant de la Corée du Nord s’est rendu en Bourgogne en août."])
    _, _, missing = Facts.of_question("Did North Korea's leader visit Burgundy in August?").conflicts(document)
    assert missing == 0.0
    _, _, missing = Facts.of_question("Did Vietnam's leader visit Burgundy?").conflicts(document)
    assert missing > 0.0


def test_an_earlier_answer_counts_as_said_by_its_words() -> None:
    sentences = [
        "À court terme, on pourrait assister à une intensification des échanges bilatéraux.",
        "À long terme, la visite serait un signal en faveur d’un monde multipolaire.",
    ]
    passages = [frozenset(document_terms(s, "fr")) for s in sentences]
    said = already_said(["Une intensification des échanges bilatéraux [1]."], passages)
    assert said[0] == 1.0 and said[1] == 0.0
    assert not already_said(["Je ne trouve pas [2]."], passages).any()


def test_a_year_or_figure_the_document_never_states_is_a_conflict() -> None:
    document = Facts.of_document(["Sergei Shoigu made a three-day visit to Pyongyang in July 2023."])
    assert Facts.of_question("Combien de jours a duré la visite de Choïgou en 2023 ?").conflicts(document) == (
        0.0,
        0.0,
        0.0,
    )
    year, _, _ = Facts.of_question("How long was Shoigu's visit in 2019?").conflicts(document)
    assert year == 1.0
    _, figure, _ = Facts.of_question("Was the visit 5 days long?").conflicts(document)
    assert figure == 1.0
    _, _, missing = Facts.of_question("How long did Kim Jong Un stay with Putin?").conflicts(document)
    assert missing > 0.5


def test_the_focus_drops_names_and_years() -> None:
    assert focus_of("Combien de jours dure la visite de Lavrov à Pyongyang en 2024 ?") == (
        "Combien de jours dure la visite de à en ?"
    )
    assert focus_of("Lavrov ?") is None
    assert focus_of("Quel temps fait-il ?") is None


def test_logistic_regression_finds_the_separating_direction_and_survives_a_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] - 2 * x[:, 2] + 0.3 * rng.normal(size=400) > 0).astype(float)
    model = Logistic.fit(("a", "b", "c"), x, y)
    assert model.weights[0] > 1 and model.weights[2] < -2 and abs(model.weights[1]) < 0.5
    bundled = DecisionModel.load()
    copy = DecisionModel(bundled.ranker, bundled.decider, 0.42)
    copy.save(tmp_path / "w.json")
    again = DecisionModel.load(tmp_path / "w.json")
    assert again.threshold == 0.42
    assert np.allclose(again.ranker.weights, bundled.ranker.weights, atol=1e-6)


def test_weights_fitted_on_other_features_are_refused_by_name(tmp_path: Path) -> None:
    text = WEIGHTS.read_text(encoding="utf-8").replace('"dense_gap"', '"something_else"', 1)
    (tmp_path / "w.json").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="fitted on features"):
        DecisionModel.load(tmp_path / "w.json")


class ScriptedEmbedder:
    """Returns fixed unit vectors and records every text it is asked to embed."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def query_vector(self, text: str) -> np.ndarray:
        self.asked.append(text)
        vector = np.zeros(4)
        vector[0] = 1.0
        return vector

    def passage_vector(self, text: str) -> np.ndarray:
        self.asked.append(text)
        return np.eye(4)[1]


def _candidate(text: str, document: str, dense: float, vector: np.ndarray, facts: Facts) -> Document:
    return Document(
        page_content=text,
        metadata={
            "id": f"{document}:{text[:10]}",
            "document": document,
            "start": 0,
            "dense": dense,
            "lexical": 1.0,
            "vector": vector,
            "terms": frozenset(),
            "document_terms": frozenset(),
            "facts": facts,
            "language": "en",
        },
    )


def test_one_model_pass_at_most_and_no_answer_from_a_contradicted_year() -> None:
    old = _candidate("The 2019 visit lasted two days.", "old.md", 0.95, np.eye(4)[0], Facts.of_document(["2019 two"]))
    new = _candidate("The 2023 visit lasted three days.", "new.md", 0.80, np.eye(4)[2], Facts.of_document(["2023"]))
    embedder = ScriptedEmbedder()
    question = Question("How long was the visit in 2023?", "How long was the visit in 2023?", [old, new])
    selection = select_passages(question, embedder, DecisionModel.load(), max_citations=3)
    assert embedder.asked == ["How long was the visit in ?"]  # the focus: one pass beyond the query's
    assert all(p.metadata["document"] == "new.md" for p in selection.passages)
    assert selection.scores[[s["document"] for s in selection.scores].index("old.md")]["conflict"]


def test_a_year_no_document_covers_is_refused_with_the_closest_passages(bank_runtime: Runtime) -> None:
    answer = bank_runtime.chain.answer("Combien de jours a duré la visite de Choïgou à Pyongyang en 2019 ?")
    assert not answer.found and answer.citations == []
    assert "trois" not in answer.answer and "three" not in answer.answer


def test_the_right_article_answers_among_conflicting_ones(bank_runtime: Runtime) -> None:
    answer = bank_runtime.chain.answer("Combien de jours dure la visite de Lavrov au Vietnam ?")
    assert answer.found
    assert answer.citations[0].document == "lavrov-hanoi-2024.md"
    assert "deux jours" in answer.answer
