"""What a question asks for, and what a passage or its document states.

"Quand / when" wants a time expression, "qui / who" a person or a role, "où / where" a
place, "combien / how many" a quantity, "combien de temps / how long" a duration, "quelle
année / which year" a year, "combien coûte / how much does it cost" an amount of money,
"quel âge / how old" an age, "quelle couleur / what colour" a colour. And a year, figure
or name the question names must be one the document speaks of: a passage about the 2023
visit does not answer a question about the 2019 one, however close its wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from vectorstore.language import STOPWORDS, fold

_NUMBER_WORDS = {
    "un": 1,
    "une": 1,
    "one": 1,
    "deux": 2,
    "two": 2,
    "trois": 3,
    "three": 3,
    "quatre": 4,
    "four": 4,
    "cinq": 5,
    "five": 5,
    "six": 6,
    "sept": 7,
    "seven": 7,
    "huit": 8,
    "eight": 8,
    "neuf": 9,
    "nine": 9,
    "dix": 10,
    "ten": 10,
    "onze": 11,
    "eleven": 11,
    "douze": 12,
    "twelve": 12,
    "quinze": 15,
    "fifteen": 15,
    "vingt": 20,
    "twenty": 20,
    "trente": 30,
    "thirty": 30,
    "cent": 100,
    "hundred": 100,
    "mille": 1000,
    "thousand": 1000,
}
_VAGUE_NUMBERS = (
    "dizaine|dizaines|centaine|centaines|million|millions|milliard|milliards|plusieurs|quelques|"
    "nombreux|nombreuses|several|many|few|numerous|multiple|dozen|dozens|hundreds|thousands|billion|billions"
)
_NUMERAL = r"(\d+(?:[.,]\d+)?|" + "|".join(_NUMBER_WORDS) + ")"
_UNIT = (
    r"(jours?|journees?|semaines?|mois|heures?|minutes?|ans|annees?|nuits?|"
    r"days?|weeks?|months?|hours?|minutes?|years?|nights?)"
)
_MONTHS = (
    "janvier|fevrier|mars|avril|mai|juin|juillet|aout|septembre|octobre|novembre|decembre|"
    "january|february|march|april|may|june|july|august|september|october|november|december"
)
_DAYS = "lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_TIME_OF_DAY = (
    r"\b\d{1,2} ?(h|heures?)\b|\b\d{1,2}([:.]\d{2})? ?(a\.?m|p\.?m)\b|o'clock|"
    r"\b(matin|soir|soiree|midi|minuit|nuit|morning|evening|night|noon|midnight|afternoon|apres-midi|aube|dawn)\b"
)
_ROLES = (
    "ministre|president|presidente|dirigeant|dirigeante|chef|responsable|porte-parole|ambassadeur|"
    "ambassadrice|secretaire|directeur|directrice|maire|adjoint|adjointe|chercheur|chercheuse|architecte|"
    "vigneron|vigneronne|delegation|gouvernement|ministere|conservateur|conservatrice|biologiste|"
    "minister|president|leader|head|spokesman|spokeswoman|spokesperson|ambassador|secretary|director|mayor|"
    "researcher|scientist|architect|winemaker|delegation|government|ministry|official|officials|captain|"
    "professor|professeur|diplomate|diplomat|general|commandant|commander"
)
_PLACES = (
    "ville|capitale|pays|region|province|peninsule|port|cosmodrome|usine|quartier|site|frontiere|"
    "city|capital|country|region|province|peninsula|port|cosmodrome|factory|district|site|border|"
    "reef|recif|island|ile|coast|cote|bay|baie|village|commune|vallee|valley|station|palace|palais"
)

_VENUES = (
    "hotel|aeroport|airport|gare|station|rue|street|avenue|boulevard|square|batiment|building|salle|hall|"
    "stade|stadium|musee|museum|universite|university|ecole|school|hopital|hospital|estate|chateau|"
    "restaurant|residence|palais|palace|port|ile|island|village|town|quartier|district|lieu|endroit|site|"
    "ville|city|region|province|capitale|capital|pays|country"
)
_ORGANISATIONS = (
    "compagnie|airline|company|entreprise|societe|organisation|organization|agence|agency|cabinet|firm|"
    "journal|newspaper|chaine|channel|fondation|foundation|institut|institute|parti|party|banque|bank"
)
_CURRENCIES = (
    r"[€$£₽¥₩]|\b(euros?|dollars?|roubles?|rubles?|wons?|yuans?|francs?|dongs?|livres? sterling|pounds?|"
    r"usd|eur|rub)\b"
)
_COLOURS = (
    "rouge|bleu|bleue|vert|verte|noir|noire|blanc|blanche|jaune|gris|grise|orange|violet|violette|rose|marron|"
    "brun|brune|dore|doree|argent|argente|beige|bordeaux|red|blue|green|black|white|yellow|grey|gray|purple|"
    "pink|brown|gold|golden|silver"
)

# What each kind of question wants, tried in the order given when two start at one place.
_ASKS = [
    ("year", r"\b(en |de |in |of )?(quelle annee|(which|what) year)\b"),
    ("time", r"\b(a )?quel(le)? heure\b|\b(at )?what time\b"),
    ("age", r"\bquel age\b|\bhow old\b|\b(what|which) age\b"),
    (
        "money",
        r"\bcombien (d'argent|co[u]te|coutera|coutait|couterait|a coute|vaut|valait|d'euros|de dollars)\b|"
        r"\bhow much (money|did|does|do|will|would|is|was|are|were)\b.*\b(cost|costs|worth|pay|paid|spend|spent)\b|"
        r"\bhow much money\b|\b(quel|what|which) (est le |etait le |sera le |is the |was the |will be the )?"
        r"(cout|prix|price|cost|montant|amount|budget|valeur|value|salaire|salary|tarif|fee)\b",
    ),
    (
        "duration",
        r"\bcombien de (temps|jours|semaines|mois|heures|annees|nuits)\b|\bhow long\b|\bpendant combien\b|"
        r"\b(quelle|what) (est la |is the |was the )?(duree|length|duration)\b|"
        # "for how many days" asks how long; "for how many countries" how many.
        rf"\bfor how many {_UNIT}\b",
    ),
    (
        "when",
        r"\bquand\b|\bquel jour\b|\b(a )?quelle date\b|\bdepuis quand\b|\bwhen\b|"
        r"\b(on )?(which|what) (exact |precise )?(day|date)\b",
    ),
    (
        "quantity",
        r"\bcombien\b|\bhow (many|much)\b|\b(quel|what) (est le |is the )?(nombre|number|"
        r"pourcentage|percentage|proportion|rendement|yield)\b",
    ),
    ("colour", r"\b(de )?quelles? couleurs?\b|\b(what|which) colou?rs?\b"),
    (
        "who",
        r"\bqui\b|\bwho(m|se)?\b|\bcomment s'appell|\b(what is|what's|what was) (the )?(name|names)\b|"
        r"\b(quel|quelle|which|what) (ministre|dirigeant|dirigeante|responsable|chef|"
        r"president|minister|leader|official|person|personne|delegation|chercheur|researcher|architecte|architect|"
        rf"{_ORGANISATIONS})\b",
    ),
    (
        "where",
        r"\bubi\b|\bwhere\b|\b(dans |en |a )?(quel|quelle|quels|quelles) "
        rf"({_VENUES})s?\b|\b(in |to |at |from )?(which|what) ({_VENUES})s?\b",
    ),
]
# Question words as they are often mistyped, where the typo is no other word nor a name
# ("were" stays "were", "Wen" a name).
_QUESTION_WORD_FIXES = {
    "wich": "which",
    "whcih": "which",
    "wat": "what",
    "wht": "what",
    "whta": "what",
    "whn": "when",
    "hw": "how",
    "howmany": "how many",
    "qand": "quand",
    "combein": "combien",
    "combiem": "combien",
    "cobien": "combien",
    "qelle": "quelle",
    "quele": "quelle",
    "qel": "quel",
}
_QUESTION_WORD_TYPOS = re.compile(rf"\b({'|'.join(_QUESTION_WORD_FIXES)})\b")
_OU_WHERE = re.compile(r"^\s*(d')?ou (?=(va|vont|est|sont|se|s'|a|ont|ira|iront|etait|sera|habite|loge|dort|aura)\b)")
_ASKS_COMPILED = [(kind, re.compile(pattern)) for kind, pattern in _ASKS]

_STATES = {
    "year": re.compile(r"\b(1[89]\d\d|20\d\d)\b"),
    "time": re.compile(_TIME_OF_DAY),
    "duration": re.compile(
        rf"\b{_NUMERAL}[ -]{_UNIT}\b|\b(moins|plus|less|more) (de |than )?{_NUMERAL}\b|\b(une|a|an) "
        r"(semaine|journee|week|day|month|year|nuit|night)\b|\b(ans|annees|years|mois|months|semaines|weeks)\b"
    ),
    "when": re.compile(
        rf"\b({_MONTHS}|{_DAYS})\b|\b(1[89]\d\d|20\d\d)\b|\b(hier|demain|aujourd'hui|yesterday|tomorrow|today|"
        r"tonight|cette semaine|this week|next week|la semaine prochaine|prochainement|bientot|soon)\b|"
        rf"\b(le|du|au|on|from|until|jusqu'au) \d{{1,2}}(er)?\b|{_TIME_OF_DAY}"
    ),
    "quantity": re.compile(rf"\d|\b({'|'.join(_NUMBER_WORDS)}|{_VAGUE_NUMBERS})\b"),
    "age": re.compile(r"\b\d{1,3} ?(ans|years?[ -]old)\b|\bage[ds]? (de )?\d|\b(aged|age of) \d"),
    "money": re.compile(_CURRENCIES),
    "colour": re.compile(rf"\b({_COLOURS})s?\b"),
    "who": re.compile(rf"\b({_ROLES})s?\b"),
    # A place noun, or a place given by a preposition of place ("dans la cave", "at the
    # reception house"): place nouns are an open class.
    "where": re.compile(
        rf"\b({_PLACES}|{_VENUES})s?\b|\b(dans|sous|derriere|devant|pres de|aupres de|chez) "
        r"(le|la|les|l'|un|une|son|sa|ses|leur|leurs)\b|"
        r"\b(in|at|inside|under|near|behind) (the|a|an|his|her|its|their)\b"
    ),
}
# Capitalised words not at the start of a sentence: names of people and places.
NAME = re.compile(r"(?<=[\w,;:()«»\"'’] )[A-ZÀ-Ý][\w’'-]*[\w]")
YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_DIGITS = re.compile(r"\b\d+(?:[.,]\d+)?\b")
# Question words that open a question with a capital, and titles: never names.
NOT_NAMES = (
    STOPWORDS
    | frozenset(
        "quel quelle quels quelles qui quand combien comment pourquoi est-ce selon what which who when where why how "
        "does did is are was were will would could should can may m mme mr mrs ms dr".split()
    )
    | frozenset(f"{_MONTHS}|{_DAYS}".split("|"))
)
_SOUNDS = (
    ("sh", "ch"),
    ("ou", "u"),
    ("w", "u"),
    ("k", "c"),
    ("y", "i"),
    ("ph", "f"),
    ("ee", "e"),
    ("oo", "u"),
    ("th", "t"),
    ("d", "t"),
)


def asked_type(question: str) -> str | None:
    """The kind of answer a question wants: year, time, age, money, duration, when,
    quantity, colour, who, where; None for the rest (why, what, yes/no...)."""
    # Folding makes "où" (where) and "ou" (or) one word: mark the first before it, and
    # an unaccented "ou" that opens a question before a verb ("ou va-t-il ?").
    text = fold(re.sub(r"(?i)\b(d')?où\b", " ubi ", question))
    text = re.sub(_OU_WHERE, " ubi ", text)
    text = _QUESTION_WORD_TYPOS.sub(lambda m: _QUESTION_WORD_FIXES[m.group(0)], text)
    found: list[tuple[int, int, str]] = []
    for order, (kind, pattern) in enumerate(_ASKS_COMPILED):
        match = pattern.search(text)
        if match:
            found.append((match.start(), order, kind))
    if not found:
        return None
    return min(found)[2]


def states_type(kind: str, text: str) -> bool:
    """Whether a passage states something of that kind (a name for "who"/"where" too)."""
    folded = fold(text)
    if _STATES[kind].search(folded):
        return True
    if kind in ("who", "where"):
        return any(fold(name) not in NOT_NAMES for name in NAME.findall(text))
    return False


@lru_cache(maxsize=100_000)
def _skeleton(word: str) -> str:
    """A name's spelling-independent key: "Shoigu" and "Choïgou", "Korea" and "Corée" meet."""
    key = re.sub(r"'s$", "", fold(word).replace("’", "'")).split("'")[-1]
    key = re.sub(r"[^a-z]", "", key)
    for written, sound in _SOUNDS:
        key = key.replace(written, sound)
    return key[:4]


_ORDINAL = re.compile(r"\b(\d+)(?:er|re|e|eme|ieme|st|nd|rd|th)\b")
_ORDINAL_WORDS = {
    "premier": 1,
    "premiere": 1,
    "first": 1,
    "deuxieme": 2,
    "second": 2,
    "seconde": 2,
    "troisieme": 3,
    "third": 3,
    "quatrieme": 4,
    "fourth": 4,
    "cinquieme": 5,
    "fifth": 5,
    "sixieme": 6,
    "sixth": 6,
    "septieme": 7,
    "seventh": 7,
    "huitieme": 8,
    "eighth": 8,
    "neuvieme": 9,
    "ninth": 9,
    "dixieme": 10,
    "tenth": 10,
}
_DATE_WORDS = re.compile(rf"\b({_MONTHS}|{_DAYS})\b")


def numbers(text: str) -> frozenset[str]:
    """Figures a text states (not years), as digits: "12", "trois", "1er" and "deuxième" too."""
    folded = fold(text)
    found = {d.replace(",", ".") for d in _DIGITS.findall(folded) if not YEAR.fullmatch(d)}
    found |= set(_ORDINAL.findall(folded))
    found |= {str(_ORDINAL_WORDS[w]) for w in re.findall(r"[a-z]+", folded) if w in _ORDINAL_WORDS}
    found |= {
        str(_NUMBER_WORDS[w])
        for w in re.findall(r"[a-z]+", folded)
        if w in _NUMBER_WORDS and w not in ("un", "une", "one")
    }
    return frozenset(found)


def date_words(text: str) -> frozenset[str]:
    """The months and days of the week a text names, accents folded ("août" -> "aout")."""
    return frozenset(m.group(0) for m in _DATE_WORDS.finditer(fold(text)))


@dataclass(frozen=True)
class Facts:
    """What a text names: years, figures and names (as spelling-independent keys)."""

    years: frozenset[str]
    numbers: frozenset[str]
    names: frozenset[str]

    @classmethod
    def of_question(cls, text: str) -> Facts:
        """The years, figures and names a question gives."""
        names = {_skeleton(n) for n in NAME.findall(text) if fold(n) not in NOT_NAMES}
        return cls(frozenset(YEAR.findall(text)), numbers(text), frozenset(n for n in names if len(n) >= 3))

    @classmethod
    def of_document(cls, texts: list[str]) -> Facts:
        """Everything a document's passages name (every word is a possible name, so that
        a name written in lower case, or a translation, still matches)."""
        joined = "\n".join(texts)
        years = frozenset(YEAR.findall(joined))
        keys = {_skeleton(w) for w in re.findall(r"[\w’'-]+", joined)}
        return cls(years, numbers(joined), frozenset(k for k in keys if len(k) >= 3))

    def conflicts(self, document: Facts) -> tuple[float, float, float]:
        """(year conflict, figure conflict, share of names missing) of a question against
        a document: a year or figure the question gives that the document never states."""
        year = float(bool(self.years - document.years))
        figure = float(bool(document.numbers and self.numbers - document.numbers))
        missing = len(self.names - document.names) / len(self.names) if self.names else 0.0
        return year, figure, missing
