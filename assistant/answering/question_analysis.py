"""What a question asks, read by the language pipeline: its asked concepts, the names it
gives, its answer type, and the words that only point at the document ("selon
l'article", "according to the text") and so ask for nothing.

Stems and stop words alone lost the asked concept: in "Où Lavrov a-t-il étudié ?" only
the name was left, and the opening sentence, which names him, covered the whole
question. Lemmas keep "étudier" (and "né", "élu" as "naître", "élire"), and the bridge
gives an English question's concepts their French translations, so coverage can say
whether a passage speaks of what is asked, whatever the question's language.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from assistant.answering.answer_types import _DAYS, _MONTHS, NAME, NOT_NAMES, asked_type
from vectorstore.bridge import translations
from vectorstore.language import detect_language, fold, stem
from vectorstore.linguistics import PIPELINES, Analysis, Token, is_content

# Nouns that point at the text itself; with one of them in the question, the verbs that
# say what a text does ("dit", "mentionne", "describe") point at it too.
META_NOUNS = frozenset(
    "article texte document passage auteur journaliste extrait source depeche reportage "
    "text author writer report story piece".split()
)
META_VERBS = frozenset(
    "dire mentionner indiquer preciser evoquer rapporter ecrire parler citer affirmer expliquer decrire "
    "say mention state report describe tell write indicate refer cite explain according".split()
)
META_STEMS = frozenset(stem(w, lang) for w in META_NOUNS | {"selon", "according"} for lang in ("fr", "en"))
# Words that say what kind of answer is wanted, not what it is about: "dans quelle ville"
# is answered by "à Pyongyang", which never says "ville".
TYPE_NOUNS = frozenset(
    "nom name raison reason cause date annee year heure time moment lieu place endroit ville city pays country "
    "capitale capital personne person gens people nombre number quantite quantity duree duration length "
    "chose thing facon maniere way type sorte kind genre combien".split()
)
# Verbs too light to be what is asked ("que fait-il", "what is it", "what is it like").
LIGHT_VERBS = frozenset("etre avoir faire pouvoir devoir aller be have do get can will like".split())


@dataclass(frozen=True)
class Concept:
    """One asked concept: its lemma, the keys a passage may match it by (its own, and
    those of its translations), and its weight (the predicate and its arguments count
    fully; a circumstance, "lors de la visite de X", half or less: the sentence that
    answers rarely repeats it)."""

    lemma: str
    keys: frozenset[str]
    bridged: frozenset[str]
    weight: float

    def match(self, lemmas: Collection[str], terms: Collection[str], similar: Collection[str] = ()) -> float:
        """1 when a passage's lemmas or terms hold the concept or a translation of it, half
        when they hold only a word close in meaning, 0 otherwise.

        Translations count fully although the bridge's pairs are right about three times
        in five: counted half, validation answers fell from 0.546 to 0.495."""
        keys = self.keys | self.bridged
        if not keys.isdisjoint(lemmas) or not keys.isdisjoint(terms):
            return 1.0
        return 0.5 if self.lemma in similar else 0.0


@dataclass(frozen=True)
class Reading:
    """A question as the pipeline reads it."""

    language: str
    concepts: tuple[Concept, ...]
    names: tuple[str, ...]
    answer_type: str | None
    meta: bool  # it points at the document ("selon l'article")
    about_document: bool  # it asks what the document is about
    # The question said word by word in the other language ("" when no word of it has a
    # translation): what a passage in that language is compared with beside the question.
    rendered: str = ""


def concept_keys(lemma: str, language: str) -> tuple[frozenset[str], frozenset[str]]:
    """What a lemma may be matched by: itself and its stems in both languages; and,
    apart, the bridge's translations of it with their stems."""
    translated = translations(lemma, language)
    own = frozenset({lemma, stem(lemma, "fr"), stem(lemma, "en")})
    bridged = frozenset(translated) | frozenset(stem(w, lang) for w in translated for lang in ("fr", "en"))
    return own, bridged - own


def passage_lemmas(lemmas: str) -> tuple[str, ...]:
    """A passage's stored lemmas, each once and interned (the same word in every passage
    is one string: a tuple of shared strings is a fifth of a set of copies)."""
    return tuple(sys.intern(w) for w in dict.fromkeys(lemmas.split()))


@lru_cache(maxsize=4096)
def read_question(text: str) -> Reading:
    """The question's asked concepts, names, answer type and meta words (one parse,
    cached: a follow-up or a repeated question is read once)."""
    language = detect_language(text)
    analysis = PIPELINES.analyse(text, language, parse=True)
    return _reading(text, language, analysis)


def _reading(text: str, language: str, analysis: Analysis) -> Reading:
    names = {_POSSESSIVE.sub("", fold(n)) for n in NAME.findall(text) if fold(n) not in NOT_NAMES}
    names |= {fold(part) for _, entity in analysis.entities for part in entity.split()}
    tokens = analysis.tokens
    lemmas = [t.lemma for t in tokens]
    meta = any(lemma in META_NOUNS for lemma in lemmas)
    answer_type = asked_type(text)
    skip = META_NOUNS | META_VERBS if meta else frozenset()
    skip |= TYPE_NOUNS | LIGHT_VERBS | _TYPE_VERBS.get(answer_type or "", frozenset())
    if "how long" in fold(text):
        skip |= {"long"}
    concepts: dict[str, Concept] = {}
    for n, token in enumerate(tokens):
        if not is_content(token) or token.pos == "PROPN" or token.entity or fold(token.text) in names:
            continue
        lemma = token.lemma
        if lemma in skip or lemma.isdigit() or _CLITIC.search(lemma):
            continue
        weight = _weight(tokens, n)
        if lemma not in concepts or concepts[lemma].weight < weight:
            concepts[lemma] = Concept(lemma, *concept_keys(lemma, language), weight)
    asks_concepts = any(t.lemma not in META_NOUNS | META_VERBS for t in tokens if is_content(t))
    about_document = meta and any(fold(t.text) in ("quoi", "what") for t in tokens) and not asks_concepts
    rendered = _rendering(tokens, language, concepts)
    return Reading(
        language, tuple(concepts.values()), tuple(sorted(names)), answer_type, meta, about_document, rendered
    )


# The question words of each language, said in the other.
_QUESTION_WORDS = {
    "en": {
        "who": "qui",
        "where": "où",
        "when": "quand",
        "why": "pourquoi",
        "how": "comment",
        "what": "quel",
        "which": "quel",
        "many": "combien",
        "much": "combien",
    },
    "fr": {
        "qui": "who",
        "ou": "where",
        "quand": "when",
        "pourquoi": "why",
        "comment": "how",
        "quel": "what",
        "quelle": "what",
        "quels": "what",
        "quelles": "what",
        "combien": "how many",
    },
}


def _rendering(tokens: tuple[Token, ...], language: str, concepts: dict[str, Concept]) -> str:
    """The question in the other language, as the bridge can say it: its question word,
    its names as written, and each asked concept by its first translation.

    Not a translation, but what the embedding model needs: an English question's vector is
    far from the French passage that answers it (the support was ranked first for 38 % of
    English validation questions over French text), and its words in French bring it
    closer."""
    words = _QUESTION_WORDS.get(language, {})
    out: list[str] = []
    translated = False
    for token in tokens:
        folded = fold(token.text)
        if folded in words:
            out.append(words[folded])
        elif token.lemma in concepts:
            translation = translations(token.lemma, language)
            translated = translated or bool(translation)
            out.append(translation[0] if translation else token.text)
        elif token.pos == "PROPN" or token.text[:1].isupper():
            out.append(token.text)
    return " ".join(out) if translated else ""


# The verb that only restates the answer type: "combien de temps dure la visite" asks a
# duration, not whether the answer says "dure".
_TYPE_VERBS = {
    "duration": frozenset({"durer", "dur", "last", "temps", "time"}),
    "when": frozenset({"jour", "day", "date"}),
    "year": frozenset({"jour", "day", "date"}),
}
_POSSESSIVE = re.compile(r"'s$")
# A verb and its clitic subject that the tokenizer left together ("est-elle", "a-t-il").
_CLITIC = re.compile(
    r"^(est|a|sont|ont|etait|sera|va|vont|peut|doit)-|-(t|il|ils|ell|elle|elles|on|je|tu|nous|vous|ce)$"
)
# Heads of a circumstance: what happened "lors de la visite" is not the visit.
_CIRCUMSTANCE = frozenset("lors pendant durant during while".split())
_DATES = f"{_DAYS}|{_MONTHS}"
# Words that place the question in time ("today", "demain"): a circumstance too.
_DEICTIC = frozenset(
    "today tomorrow yesterday now tonight currently aujourd'hui demain hier maintenant actuellement".split()
)


def _weight(tokens: tuple[Token, ...], n: int) -> float:
    """1 for the predicate and its direct arguments, halved for each level below, and
    halved again inside a circumstance ("lors de", "pendant", "during")."""
    depth, seen, i, context = 0, set(), n, False
    while tokens[i].dep != "ROOT" and tokens[i].head != i and i not in seen and tokens[i].pos:
        seen.add(i)
        i = tokens[i].head
        depth += 1
        context = context or fold(tokens[i].text) in _CIRCUMSTANCE
    context = context or any(t.head == n and t.dep == "case" and fold(t.text) in _CIRCUMSTANCE for t in tokens)
    context = context or fold(tokens[n].text) in _DEICTIC
    return (0.5 ** max(0, depth - 1)) * (0.5 if context else 1.0)


# Two French words whose vectors are this close mean nearly the same ("périple" and
# "voyage" 0.74, "pourparlers" and "discussions" 0.84; "étudier" and "visite" 0.27).
SIMILAR = 0.55


def similar_concepts(reading: Reading, passages: list[tuple[str, ...]]) -> list[frozenset[str]]:
    """For each passage, the asked concepts one of its lemmas is close to in meaning (by
    the French pipeline's word vectors; a French question only)."""
    if reading.language != "fr" or not reading.concepts:
        return [frozenset()] * len(passages)
    words = sorted(set().union(*passages)) if passages else []
    if not words:
        return [frozenset()] * len(passages)
    concepts = [c.lemma for c in reading.concepts]
    close = (PIPELINES.word_vectors(concepts) @ PIPELINES.word_vectors(words).T) >= SIMILAR
    column = {w: i for i, w in enumerate(words)}
    found = []
    for lemmas in passages:
        columns = [column[w] for w in lemmas]
        hit = close[:, columns].any(axis=1) if columns else np.zeros(len(concepts), dtype=bool)
        found.append(frozenset(c for c, h in zip(concepts, hit, strict=True) if h))
    return found


def coverage(
    reading: Reading, lemmas: Collection[str], terms: Collection[str] = (), similar: Collection[str] = ()
) -> float:
    """Weighted share of the asked concepts a passage (or a document) speaks of (see
    ``Concept.match``); 1.0 when the question asks no concept of its own."""
    total = sum(c.weight for c in reading.concepts)
    if not total:
        return 1.0
    return sum(c.weight * c.match(lemmas, terms, similar) for c in reading.concepts) / total
