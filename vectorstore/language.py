"""Text analysis shared by ingestion and retrieval: folding, tokens, stems, language."""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

import snowballstemmer


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FR_STOP = _wordset(
    """
    a au aux avec ce ces cet cette d dans de des du elle elles en est et etre eux il ils je la le les
    leur leurs lui l m ma mais me meme mes moi mon n ne nos notre nous on ou par pas pour qu que qui s
    sa se ses son sur t ta te tes toi ton tu un une vos votre vous y c j ete etait sont ont avait avoir
    fait faire plus moins tres aussi ainsi comme sans sous entre vers chez quel quelle quels quelles
    quoi dont lequel laquelle lesquels comment pourquoi quand combien ou est-ce cela ceci ca celui celle
    ceux celles tout tous toute toutes autre autres si alors donc car puis selon va vont peut pourrait
    pourraient sera seront serait etre selon y a-t-il t-il t-elle
    """
)
_EN_STOP = _wordset(
    """
    a an the of to in on for with by and or is are was were be been being what which who whom whose how
    when where why does do did doing will would could should can may might must shall this that these
    those it its they them their his her he she we you i me my our your from at as about into than then
    also not no yes there here if so such any some all each other more most very just over under again
    further once both only same own too out up down off has have had having let lets according
    """
)
STOPWORDS = _FR_STOP | _EN_STOP
_TOKEN = re.compile(r"[a-z0-9]+")
_FR_MARKERS = _wordset(
    """
    le la les des du une est et dans pour que qui sur avec au aux ce cette
    """
)
_EN_MARKERS = _wordset(
    """
    the of and is are to in for with that this what which how does on by
    """
)
_STEM_LOCK = threading.Lock()
_STEMMERS = {"fr": snowballstemmer.stemmer("french"), "en": snowballstemmer.stemmer("english")}


def fold(text: str) -> str:
    """Lower-case, without accents, with typographic apostrophes made plain."""
    text = text.replace("’", "'").replace("ʼ", "'").replace("œ", "oe").replace("Œ", "oe").replace("æ", "ae")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def words(text: str) -> list[str]:
    """Folded word tokens, stop words kept."""
    return _TOKEN.findall(fold(text))


def content_words(text: str) -> list[str]:
    """Folded word tokens without stop words or single letters."""
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 1]


@lru_cache(maxsize=200_000)
def stem(word: str, language: str) -> str:
    """Snowball stem of a folded word in the given language ("fr" or "en")."""
    stemmer = _STEMMERS.get(language)
    if stemmer is None:
        return word
    # A Snowball stemmer keeps its state in the object: one thread at a time.
    with _STEM_LOCK:
        return stemmer.stemWord(word)


def document_terms(text: str, language: str) -> list[str]:
    """Index terms of a passage: content words stemmed in the document's language."""
    return [stem(w, language) for w in content_words(text)]


def query_terms(text: str) -> list[frozenset[str]]:
    """Terms of a question: for each content word, its stems in every language we index,
    since the question and the passages may be in different languages."""
    return [frozenset(stem(w, lang) for lang in _STEMMERS) for w in content_words(text)]


def detect_language(text: str) -> str:
    """ "fr" or "en", from the share of each language's most common words (default "fr")."""
    tokens = words(text[:20_000])
    fr = sum(1 for t in tokens if t in _FR_MARKERS)
    en = sum(1 for t in tokens if t in _EN_MARKERS)
    if en > fr:
        return "en"
    if fr > en:
        return "fr"
    return "en" if re.search(r"\b(what|which|who|how|why|when|where)\b", text, re.IGNORECASE) else "fr"
