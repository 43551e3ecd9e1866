from vectorstore.language import content_words, detect_language, document_terms, fold, query_terms


def test_fold_removes_accents_case_and_typographic_apostrophes() -> None:
    assert fold("Échiquier l’Occident Œuvre") == "echiquier l'occident oeuvre"


def test_content_words_drop_stop_words_in_both_languages() -> None:
    assert content_words("Quel est le salaire de Sergueï Lavrov ?") == ["salaire", "sergue", "lavrov"] or content_words(
        "Quel est le salaire de Sergueï Lavrov ?"
    ) == ["salaire", "serguei", "lavrov"]
    assert content_words("What does North Korea offer?") == ["north", "korea", "offer"]


def test_stems_match_across_inflections_and_accents() -> None:
    passage = set(document_terms("Les délégations explorent des mécanismes économiques", "fr"))
    for word in ("délégation", "mecanisme", "économique"):
        assert query_terms(word)[0] & passage, word


def test_detect_language() -> None:
    assert detect_language("Dans quelle ville se rend le ministre ?") == "fr"
    assert detect_language("Which city is the minister travelling to?") == "en"
    assert detect_language("And in the medium term?") == "en"
    assert detect_language("Et à long terme ?") == "fr"
