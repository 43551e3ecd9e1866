"""The fitted decision: answer types, conflicting details, the logistic models, and the
model-pass budget, with a scripted embedder that records what it is asked."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document

from assistant.answering.answer_types import Facts, asked_type, states_type
from assistant.answering.chain import AnswerChain
from assistant.answering.decision import (
    DECIDE_FEATURES,
    QUICK_DECIDE_FEATURES,
    RANK_FEATURES,
    WEIGHTS,
    Candidates,
    DecisionModel,
    Logistic,
    Question,
    already_said,
    focus_of,
    quoted,
)
from assistant.answering.selection import select_passages
from assistant.evaluation.calibration import Example, _Stage, quote_margin, unsure_band
from assistant.runtime import Runtime
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
        ("wich hotel does he stay at?", "where"),
        ("hw many people came?", "quantity"),
        ("combein de jours reste-t-il ?", "duration"),
        ("For how many days does he stay?", "duration"),
        ("For how many countries is the visit important?", "quantity"),
        ("Were they there?", None),
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
    copy = DecisionModel(bundled.ranker, bundled.decider, 0.42, quick=bundled.quick)
    copy.save(tmp_path / "w.json")
    again = DecisionModel.load(tmp_path / "w.json")
    assert again.threshold == 0.42
    assert np.allclose(again.ranker.weights, bundled.ranker.weights, atol=1e-6)
    assert again.quick is not None and bundled.quick is not None
    assert again.quick.unsure == bundled.quick.unsure
    assert np.allclose(again.quick.decider.weights, bundled.quick.decider.weights, atol=1e-6)
    DecisionModel(bundled.ranker, bundled.decider).save(tmp_path / "plain.json")
    assert DecisionModel.load(tmp_path / "plain.json").quick is None


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
    question = Question("How long was the visit in 2023?", "How long was the visit in 2023?", [old, new])
    bundled = DecisionModel.load()
    for model in (bundled, replace(bundled, quick=None)):
        embedder = ScriptedEmbedder()
        selection = select_passages(question, embedder, model, max_citations=3)
        # The focus at most: one pass beyond the query's; always, without a quick stage.
        focus = ["How long was the visit in ?"]
        assert embedder.asked == focus if model.quick is None else embedder.asked in ([], focus)
        assert all(p.metadata["document"] == "new.md" for p in selection.passages)
        assert selection.scores[[s["document"] for s in selection.scores].index("old.md")]["conflict"]


def _quick(model: DecisionModel, unsure: tuple[float, float]) -> DecisionModel:
    assert model.quick is not None
    return replace(model, quick=replace(model.quick, unsure=unsure))


def test_the_focus_pass_is_made_only_where_the_quick_decision_is_unsure() -> None:
    passages = [
        _candidate("The 2023 visit lasted three days.", "new.md", 0.90, np.eye(4)[0], Facts.of_document(["2023"])),
        _candidate("Talks covered trade and energy.", "new.md", 0.85, np.eye(4)[1], Facts.of_document(["2023"])),
    ]
    question = Question("How long did Shoigu stay in 2023?", "How long did Shoigu stay in 2023?", passages)
    bundled = DecisionModel.load()
    quick_probability = None
    for unsure, focus_asked in (((0.0, 1.0), True), ((0.5, 0.5), False)):
        embedder = ScriptedEmbedder()
        selection = select_passages(question, embedder, _quick(bundled, unsure), max_citations=3)
        assert embedder.asked == (["How long did stay in ?"] if focus_asked else [])
        assert ("quick stage" in selection.reason) is not focus_asked
        assert set(selection.features) == set(QUICK_DECIDE_FEATURES if not focus_asked else DECIDE_FEATURES)
        if not focus_asked:
            quick_probability = selection.relevance
    assert quick_probability is not None
    # Just outside the band on either side the quick decision stands; inside, the focus is measured.
    for unsure, focus_asked in (
        ((quick_probability + 0.01, 1.0), False),
        ((0.0, quick_probability - 0.01), False),
        ((quick_probability - 0.01, quick_probability + 0.01), True),
    ):
        embedder = ScriptedEmbedder()
        select_passages(question, embedder, _quick(bundled, unsure), max_citations=3)
        assert bool(embedder.asked) is focus_asked


def test_a_question_without_a_focus_of_its_own_is_decided_by_the_full_model() -> None:
    passages = [_candidate("The visit lasted three days.", "a.md", 0.9, np.eye(4)[0], Facts.of_document(["x"]))]
    embedder = ScriptedEmbedder()
    selection = select_passages(
        Question("How long is the visit?", "How long is the visit?", passages),
        embedder,
        _quick(DecisionModel.load(), (0.5, 0.5)),
        max_citations=3,
    )
    assert embedder.asked == [] and "quick stage" not in selection.reason
    assert set(selection.features) == set(DECIDE_FEATURES)


def test_the_unsure_band_decides_the_most_questions_quickly_without_losing_a_right_one() -> None:
    # Six questions: the full stage gets every one right; the quick one is wrong only on
    # the answerable question it is least sure of (probability 0.45, a refusal).
    answerable = np.array([True, True, True, False, False, False])
    labels = np.ones(6)
    unused = Logistic(("a",), np.zeros(1), np.ones(1), np.zeros(1), 0.0)
    full = _Stage(unused, unused, 0.5, np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3]), labels)
    quick = replace(full, probabilities=np.array([0.95, 0.7, 0.45, 0.05, 0.1, 0.3]))
    low, high = unsure_band(full, quick, np.ones(6, dtype=bool), answerable)
    assert low <= 0.45 <= high  # the question it gets wrong is left to the full stage
    assert low > 0.1 or high < 0.7  # and the band is not the whole range
    assert unsure_band(full, quick, np.zeros(6, dtype=bool), answerable) == (0.0, 1.0)  # nothing to spare


def test_a_year_no_document_covers_is_refused_with_the_closest_passages(bank_runtime: Runtime) -> None:
    answer = bank_runtime.chain.answer("Combien de jours a duré la visite de Choïgou à Pyongyang en 2019 ?")
    assert not answer.found and answer.citations == []
    assert "trois" not in answer.answer and "three" not in answer.answer


def test_the_right_article_answers_among_conflicting_ones(bank_runtime: Runtime) -> None:
    answer = bank_runtime.chain.answer("Combien de jours dure la visite de Lavrov au Vietnam ?")
    assert answer.found
    assert answer.citations[0].document == "lavrov-hanoi-2024.md"
    assert "deux jours" in answer.answer


def test_quick_decisions_are_off_unless_set_and_then_decide_some_questions_without_the_focus(
    runtime: Runtime,
) -> None:
    assert runtime.chain.decision.quick is None
    settings = runtime.settings.model_copy(update={"quick_decisions": True})
    quick = AnswerChain(runtime.corpus, settings)
    assert quick.decision.quick is not None
    questions = [
        "Combien de jours dure la visite de Lavrov en Corée du Nord ?",
        "What will Lavrov and his North Korean counterpart discuss in Pyongyang?",
        "Quel est le salaire de Sergueï Lavrov ?",
        "Which round of the strategic dialogue is held in Pyongyang?",
        "Quand Lavrov arrive-t-il à Pyongyang ?",
        "Who will Lavrov meet in Pyongyang?",
    ]
    reasons = []
    for question in questions:
        trace = quick.answer(question, debug=True).trace or []
        reasons.append(next(step.detail["reason"] for step in trace if step.stage == "select_passages"))
        default = runtime.chain.answer(question, debug=True).trace or []
        assert "quick stage" not in next(s.detail["reason"] for s in default if s.stage == "select_passages")
    assert any("quick stage" in reason for reason in reasons)


def test_an_answer_quotes_only_its_own_document_within_the_margin_and_the_limit() -> None:
    logits = np.array([3.0, 2.5, 2.0, 1.0, -4.0])
    documents = ["a", "b", "a", "a", "a"]
    eligible = [0, 1, 2, 3, 4]
    assert quoted(eligible, logits, documents, 1.5, 3) == [0, 2]  # 1 is another article
    assert quoted(eligible, logits, documents, 6.0, 3) == [0, 2, 3]  # the limit
    assert quoted(eligible, logits, documents, 10.0, 5) == [0, 2, 3, 4]
    assert quoted([1, 3], logits, documents, 10.0, 3) == [1]  # the best eligible leads
    assert quoted([], logits, documents, 1.0, 3) == []


def _example(answerable: bool, logits: list[float], support: int | None) -> Example:
    docs = [Document(page_content=f"s{i}", metadata={"document": "a"}) for i in range(len(logits))]
    matrix = np.zeros((len(logits), len(RANK_FEATURES)))
    matrix[:, 0] = logits
    holds = np.array([i == support for i in range(len(logits))])
    found = Candidates(np.zeros(len(logits)), matrix, np.zeros(len(logits), dtype=bool), None)
    return Example({"answerable": answerable}, Question("q", "q", docs), found, holds)


def test_the_quote_margin_is_the_narrowest_that_quotes_the_support_as_often_as_the_widest() -> None:
    ranker = Logistic(
        RANK_FEATURES, np.zeros(len(RANK_FEATURES)), np.ones(len(RANK_FEATURES)), np.eye(len(RANK_FEATURES))[0], 0.0
    )
    examples = [
        _example(True, [5.0, 4.2, 0.0], 0),  # the best holds it
        _example(True, [5.0, 2.5, 0.0], 1),  # 2.5 below the best
        _example(True, [5.0, 4.0, -20.0], 2),  # too far for any margin short of the last
        _example(False, [5.0, 4.0, 3.0], None),
    ]
    refused = np.array([0.9, 0.9, 0.1, 0.9])  # the third is refused: its support never counts
    stage = _Stage(ranker, ranker, 0.5, refused, np.zeros(4))
    assert quote_margin(examples, stage, limit=3) == 3.0
    stage = _Stage(ranker, ranker, 0.5, np.full(4, 0.9), np.zeros(4))
    assert quote_margin(examples, stage, limit=3) == 100.0
    assert quote_margin(examples, stage, limit=1) == 0.5  # one sentence: the margin changes nothing
