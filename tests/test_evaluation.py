"""The quality gate: answer quality on the question sets must stay above the thresholds."""

from pathlib import Path

from assistant.evaluation import evaluate, load_cases
from assistant.runtime import Runtime

HERE = Path(__file__).resolve().parent
SETS = sorted((HERE / "eval").glob("*.jsonl"))
SHARED_DEV = HERE.parent.parent / "shared" / "eval" / "dev.jsonl"


def test_question_sets_are_well_formed_and_supports_are_in_the_seed() -> None:
    seed = (HERE.parent / "seeds" / "lavrov-visite-coree-du-nord.md").read_text(encoding="utf-8")
    items = [item for path in SETS for item in load_cases(path)]
    assert len(items) >= 30
    assert {i["lang"] for i in items} == {"fr", "en"}
    assert any(i.get("history") for i in items) and any(not i["answerable"] for i in items)
    for item in items:
        if item["answerable"]:
            assert item["support"] in seed, item["id"]


def test_quality_is_above_thresholds(runtime: Runtime) -> None:
    paths = [*SETS, SHARED_DEV] if SHARED_DEV.exists() else SETS
    report = evaluate(runtime.chain, [item for path in paths for item in load_cases(path)])
    summary = report.summary()
    print(summary)
    assert report.facts >= 0.90, summary
    assert report.citation >= 0.90, summary
    assert report.refusal >= 0.80, summary
    assert report.forbidden == 0, [c.id for c in report.cases if c.forbidden]
