from pathlib import Path

import pytest

from tests.conftest import run_cli, seeded_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {"ASSISTANT_DATA_DIR": str(tmp_path_factory.mktemp("cli-data"))}
    result = run_cli("ingest", env=env)
    assert result.returncode == 0, result.stderr
    assert "1 added" in result.stdout and "seconds:" in result.stdout
    return env


def test_ask_prints_the_answer_and_numbered_sources(data: dict[str, str]) -> None:
    result = run_cli("ask", "Quel risque comporterait une coopération militaire plus étroite ?", env=data)
    assert result.returncode == 0, result.stderr
    assert "[1]" in result.stdout and "Sources:" in result.stdout
    assert "Perspectives et Enjeux à Long Terme" in result.stdout
    assert "lavrov-visite-coree-du-nord.md" in result.stdout


def test_the_command_started_afresh_answers_without_the_libraries_chatter(data: dict[str, str]) -> None:
    """The console script itself, in an interpreter of its own (the other tests' runs are
    forked from one that has loaded the command): what it says is the command's own."""
    import os
    import subprocess

    from tests.conftest import BIN, ROOT

    question = "Quels pays mènent des manœuvres militaires conjointes ?"
    result = subprocess.run(
        [str(BIN / "assistant"), "ask", question],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **data},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "[1]" in result.stdout and "Sources:" in result.stdout
    libraries = [line for line in result.stderr.splitlines() if " assistant" not in line and line.strip()]
    assert libraries == [], libraries


def test_ask_json_output(data: dict[str, str]) -> None:
    import json

    result = run_cli("ask", "--json", "Which countries hold joint military exercises?", env=data)
    body = json.loads(result.stdout)
    assert body["found"] and body["citations"][0]["id"] == 1


@pytest.mark.parametrize("question", ["", "   ", "x" * 2001])
def test_bad_questions_exit_non_zero_with_a_message(data: dict[str, str], question: str) -> None:
    result = run_cli("ask", question, env=data)
    assert result.returncode == 2
    assert "error: the question" in result.stderr


def test_ingest_reports_failures_by_name_and_keeps_the_rest(data: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("Un document valide, avec une phrase assez longue pour compter.", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00\x00garbage")
    result = run_cli("ingest", str(tmp_path), str(tmp_path / "missing.md"), env=data)
    assert result.returncode == 1
    assert "bad.txt" in result.stderr and "missing.md" in result.stderr
    assert "1 added" in result.stdout and "2 failed" in result.stdout
    again = run_cli("ask", "Avec quels pays des interactions trilatérales sont-elles envisagées ?", env=data)
    assert "Chine" in again.stdout


def test_unwritable_data_dir_is_named_in_the_message(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("ingest", env={"ASSISTANT_DATA_DIR": str(blocker / "data")})
    assert result.returncode == 1
    assert str(blocker / "data") in result.stderr and "Traceback" not in result.stderr


def test_invalid_setting_names_the_variable() -> None:
    result = run_cli("ask", "Qui ?", env={"ASSISTANT_COLLECTION": "x"})
    assert result.returncode == 2 and "ASSISTANT_COLLECTION" in result.stderr


def test_eval_exits_non_zero_below_thresholds(data: dict[str, str], tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "Quel est le salaire de Sergueï Lavrov ?", "answerable": true, "must": [["roubles"]], '
        '"support": "salaire"}\n',
        encoding="utf-8",
    )
    result = run_cli("eval", str(questions), "--min-facts", "0.5", env=data)
    assert result.returncode == 1 and "below threshold: facts" in result.stderr


def test_eval_keeps_only_the_questions_about_the_documents_named(data: dict[str, str], tmp_path: Path) -> None:
    import json

    questions = tmp_path / "q.jsonl"
    lines = [
        {"question": "Combien de jours dure la visite ?", "answerable": True, "document": "seed.md"},
        {"question": "Quel temps fera-t-il demain ?", "answerable": False, "document": "none"},
        {"question": "Qui dirige la médiathèque ?", "answerable": True, "document": "lyon.md"},
    ]
    questions.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    result = run_cli("eval", str(questions), "--json", "--document", "seed.md", "--document", "none", env=data)
    assert result.returncode == 0, result.stderr
    assert [c["question"] for c in json.loads(result.stdout)["cases"]] == [lines[0]["question"], lines[1]["question"]]
    missing = run_cli("eval", str(questions), "--document", "other.md", env=data)
    assert missing.returncode == 2 and "no question is labelled with the document other.md" in missing.stderr


GOOD_LINE = '{"question": "Combien de jours dure la visite ?", "answerable": true}'


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        ('{"question": "Combien de jours dure la visite ?", "answerable": true', "not JSON"),
        ('{"question": "Combien de jours dure la visite ?"}', "'answerable'"),
        ('{"question": "Combien de jours dure la visite ?", "answerable": "yes"}', "'answerable'"),
        ('{"question": "Et ensuite ?", "answerable": true, "history": "Qui ?"}', "'history'"),
    ],
    ids=["not JSON", "no answerable", "answerable yes", "history not a list"],
)
@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_malformed_question_file_names_file_and_line(
    tmp_path: Path, command: str, bad_line: str, fragment: str
) -> None:
    # Line 3 is bad; line 2 is blank (skipped, but still counted).
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f"{GOOD_LINE}\n\n{bad_line}\n{GOOD_LINE}\n", encoding="utf-8")
    ok = tmp_path / "ok.jsonl"
    ok.write_text(f"{GOOD_LINE}\n", encoding="utf-8")
    out = tmp_path / "weights.json"
    extra = ["--validate", str(ok), "--out", str(out)] if command == "calibrate" else []
    # A store folder of its own, never opened: the files are checked first.
    env = {"ASSISTANT_DATA_DIR": str(tmp_path / "data")}
    result = run_cli(command, str(bad), *extra, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "bad.jsonl:3: " in result.stderr and fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "data").exists()


def test_calibrate_names_a_malformed_validation_file(tmp_path: Path) -> None:
    ok = tmp_path / "ok.jsonl"
    ok.write_text(f"{GOOD_LINE}\n", encoding="utf-8")
    held = tmp_path / "held.jsonl"
    held.write_text(f'{GOOD_LINE}\n{{"question": "Qui ?", "answerable": "no"}}\n', encoding="utf-8")
    out = tmp_path / "weights.json"
    env = {"ASSISTANT_DATA_DIR": str(tmp_path / "data")}
    result = run_cli("calibrate", str(ok), "--validate", str(held), "--out", str(out), env=env, timeout=60)
    assert result.returncode == 2 and "held.jsonl:2: " in result.stderr
    assert not out.exists()


def test_ingest_of_a_large_corpus_brings_its_lexical_index_up_to_date(tmp_path: Path) -> None:
    import sqlite3

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "rason.md").write_text(
        "# Port de Rason\n\nLe port de Rason accueille des cargos russes chaque semaine.\n", encoding="utf-8"
    )
    env = {"ASSISTANT_DATA_DIR": str(seeded_data(tmp_path / "data")), "ASSISTANT_SEARCH_IN_STORE_FROM": "1"}
    result = run_cli("ingest", str(folder), env=env)
    assert result.returncode == 0, result.stderr
    (lexicon,) = (tmp_path / "data").glob("*.lexicon.sqlite3")
    assert str(lexicon) in result.stdout
    stored = int(result.stdout.split(" in store")[0].rsplit(" ", 1)[1])
    with sqlite3.connect(lexicon) as db:
        assert db.execute("SELECT count(*) FROM passages").fetchone()[0] == stored
        assert db.execute("SELECT count(*) FROM documents").fetchone()[0] == 2
    asked = run_cli("ask", "Quels navires le port de Rason accueille-t-il ?", env=env)
    assert asked.returncode == 0 and "cargos" in asked.stdout
