"""The quality gate: answer quality on the locked test split and the shared dev set.

The test split is never fitted on (``assistant calibrate`` uses the calibration split and
reports the validation split). The thresholds are the figures measured when the decision
was last fitted, less a margin for the embedding engine's numeric noise: a change that
loses quality fails the build.
"""

import json
from pathlib import Path

import pytest

from assistant.answering.decision import WEIGHTS
from assistant.evaluation.scoring import evaluate, load_cases
from assistant.runtime import Runtime

HERE = Path(__file__).resolve().parent
EVAL = HERE / "eval"
DOCUMENTS = EVAL / "documents"
SEED = HERE.parent / "seeds" / "lavrov-visite-coree-du-nord.md"
SHARED_DEV = HERE.parent.parent / "shared" / "eval" / "dev.jsonl"
SPLITS = ("calibration", "validation", "test")
# Measured with the bundled weights on the 129-question test split (27 near-miss and
# paraphrase questions added to it): facts 0.600, citation 0.600, refusals 0.898, 1
# forbidden string; its questions about the seed or about no document, asked of the seed
# alone, facts 0.743, refusals 0.704; dev set (the seed alone) facts 0.889, refusals 0.75.
# Each gate is the figure less about one question (the dev set has 9 answerable
# questions, one being 0.11 of its figure).
FACTS_TEST, CITATION_TEST, REFUSAL_TEST, FORBIDDEN_TEST = 0.58, 0.58, 0.87, 2
FACTS_SEED_TEST, REFUSAL_SEED_TEST = 0.71, 0.67
FACTS_DEV, REFUSAL_DEV = 0.66, 0.7


def _text(document: str) -> str:
    return (SEED if document == SEED.name else DOCUMENTS / document).read_text(encoding="utf-8")


def test_the_bank_is_large_varied_and_its_supports_are_in_their_documents() -> None:
    items = [item for split in SPLITS for item in load_cases(EVAL / f"{split}.jsonl")]
    assert len(items) >= 400
    assert len({item["id"] for item in items}) == len(items)
    english = sum(item["lang"] == "en" for item in items) / len(items)
    assert 0.4 <= english <= 0.6
    assert sum(not item["answerable"] for item in items) / len(items) >= 0.3
    assert len(list(DOCUMENTS.glob("*.md"))) >= 6
    kinds = {"when", "who", "where", "quantity", "duration", "year", "why", "list", "yes_no", "what"}
    assert {item["kind"] for item in items} == kinds
    assert {item["style"] for item in items} == {"plain", "paraphrase", "follow_up", "typo", "cross_lingual"}
    for item in items:
        if item["answerable"]:
            assert item["support"] in _text(item["document"]), item["id"]
        if item["style"] == "follow_up":
            assert item.get("history"), item["id"]


def test_the_splits_are_disjoint_and_each_holds_every_document() -> None:
    ids = {split: {item["id"] for item in load_cases(EVAL / f"{split}.jsonl")} for split in SPLITS}
    assert not ids["calibration"] & ids["test"] and not ids["validation"] & ids["test"]
    assert not ids["calibration"] & ids["validation"]
    documents = {split: {item["document"] for item in load_cases(EVAL / f"{split}.jsonl")} for split in SPLITS}
    assert documents["test"] == documents["calibration"] == documents["validation"]


def test_the_bundled_weights_were_not_fitted_on_the_test_split() -> None:
    weights = json.loads(WEIGHTS.read_text(encoding="utf-8"))
    assert (
        weights["notes"]["calibration_questions"]
        < len(load_cases(EVAL / "calibration.jsonl")) + len(load_cases(EVAL / "seed_calibration.jsonl")) + 1
    )


def test_quality_on_the_locked_test_split(bank_runtime: Runtime) -> None:
    report = evaluate(bank_runtime.chain, load_cases(EVAL / "test.jsonl"))
    summary = report.summary()
    print(summary, report.by("lang"))
    assert report.facts >= FACTS_TEST, summary
    assert report.citation >= CITATION_TEST, summary
    assert report.refusal >= REFUSAL_TEST, summary
    assert report.forbidden <= FORBIDDEN_TEST, [c.id for c in report.cases if c.forbidden]


def test_quality_on_the_locked_test_split_asked_of_the_seed_alone(runtime: Runtime) -> None:
    """What `make run` serves: the seed article alone, asked the test split's questions
    that keep their meaning there (about the seed, or about no document)."""
    items = [i for i in load_cases(EVAL / "test.jsonl") if i.get("document") in (SEED.name, "none")]
    report = evaluate(runtime.chain, items)
    summary = report.summary()
    print(summary, report.by("lang"))
    assert report.facts >= FACTS_SEED_TEST, summary
    assert report.refusal >= REFUSAL_SEED_TEST, summary
    assert report.forbidden == 0, [c.id for c in report.cases if c.forbidden]


@pytest.mark.skipif(not SHARED_DEV.exists(), reason="../shared/eval/dev.jsonl is not beside the project")
def test_quality_on_the_shared_dev_set(runtime: Runtime) -> None:
    report = evaluate(runtime.chain, load_cases(SHARED_DEV))
    summary = report.summary()
    print(summary)
    assert report.facts >= FACTS_DEV, summary
    assert report.refusal >= REFUSAL_DEV, summary
    assert report.forbidden == 0, [c.id for c in report.cases if c.forbidden]
