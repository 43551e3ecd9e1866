import re
import threading

import numpy as np
import pytest

from assistant.answering.decision import focus_of, local_coverage
from assistant.answering.selection import NOT_FOUND
from assistant.models import Message
from assistant.runtime import Runtime
from vectorstore.language import fold


def test_answer_markers_resolve_to_exact_passages(runtime: Runtime) -> None:
    answer = runtime.chain.answer("Quels mécanismes alternatifs de paiement pourraient être utilisés ?")
    assert answer.found and answer.citations
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    assert markers == {c.id for c in answer.citations} == set(range(1, len(answer.citations) + 1))
    for citation in answer.citations:
        text = runtime.store.document_text(citation.document)
        assert text is not None and text[citation.start : citation.end] == citation.text
        assert citation.title.startswith("Sergueï Lavrov")
    assert "cryptomonnaies" in fold(answer.answer)


def test_every_sentence_of_an_answer_carries_a_marker(runtime: Runtime) -> None:
    answer = runtime.chain.answer(
        "Quel rôle la Russie pourrait-elle jouer dans les discussions sur la dénucléarisation ?"
    )
    assert answer.found
    for part in re.split(r"(?<=[.!?…])\s+", answer.answer):
        assert re.search(r"\[\d+\][.!?…»”)]*$", part), part


def test_unanswerable_question_is_refused_in_its_language(runtime: Runtime) -> None:
    fr = runtime.chain.answer("Quel est le salaire de Sergueï Lavrov ?")
    assert not fr.found and fr.citations == [] and fr.answer == NOT_FOUND["fr"]
    en = runtime.chain.answer("Write a Python function that reverses a string.")
    assert not en.found and en.answer == NOT_FOUND["en"]


def test_follow_up_uses_the_conversation(runtime: Runtime) -> None:
    history = [
        Message(role="user", content="Quelles retombées la visite pourrait-elle avoir à court terme ?"),
        Message(role="assistant", content="Une intensification des échanges bilatéraux [1]."),
    ]
    answer = runtime.chain.answer("Et à long terme ?", history, debug=True)
    assert answer.trace is not None
    # Whether it answers is the decision's to say (the evaluation measures that); what it
    # cites, or offers first as the closest passage, is the sentence on the long run.
    shown = answer.citations if answer.found else answer.related[:1]
    assert any("multipolaire" in fold(c.text) for c in shown)
    assert [s.stage for s in answer.trace] == [
        "condense_question",
        "retrieve",
        "select_passages",
        "answer",
        "check_citations",
    ]
    assert "court terme" in answer.trace[0].detail["query"]


def test_trace_is_only_returned_when_asked(runtime: Runtime) -> None:
    assert runtime.chain.answer("Qui est Sergueï Lavrov ?").trace is None


def test_brackets_in_quoted_documents_are_not_taken_for_citations(isolated_runtime: Runtime) -> None:
    from vectorstore.documents import from_text
    from vectorstore.ingest import ingest_document

    text = "# Énergie\n\nLa centrale hydroélectrique de Rason produit quarante mégawatts [2] depuis sa rénovation.\n"
    ingest_document(isolated_runtime.store, from_text("rason.md", text, kind=".md"))
    isolated_runtime.corpus.invalidate()
    answer = isolated_runtime.chain.answer("Combien de mégawatts produit la centrale hydroélectrique de Rason ?")
    assert answer.found and len(answer.citations) == 1
    assert "mégawatts (2) depuis sa rénovation [1]." in answer.answer
    assert answer.citations[0].text.endswith("mégawatts [2] depuis sa rénovation.")


def test_words_in_every_candidate_weigh_little_in_coverage() -> None:
    question = [frozenset({"lavrov"}), frozenset({"salair"})]
    candidates = [frozenset({"lavrov", "visit"}), frozenset({"lavrov"}), frozenset({"lavrov", "salair"})]
    coverage = local_coverage(question, candidates)
    # The name every candidate shares says little; the word only one holds says a lot.
    assert coverage[0] == coverage[1] < 0.3
    assert coverage[2] == 1.0
    assert local_coverage([], candidates).tolist() == [0.0, 0.0, 0.0]


def test_the_chain_streams_typed_events_whose_deltas_make_the_answer(runtime: Runtime) -> None:
    from assistant.answering.chain import Delta, Done, Sources

    question = "Quels mécanismes alternatifs de paiement pourraient être utilisés ?"
    events = list(runtime.chain.stream(question))
    assert isinstance(events[0], Sources) and isinstance(events[-1], Done)
    assert all(isinstance(e, Delta) for e in events[1:-1])
    done = events[-1].answer
    assert "".join(e.text for e in events[1:-1]) == done.answer
    assert done == runtime.chain.answer(question)
    cited = {c.text for c in done.citations}
    assert cited <= {c.text for c in events[0].citations}


def test_the_passes_after_the_query_run_while_its_searches_do_and_change_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    embeddings = runtime.corpus.store.embeddings
    made: list[tuple[str, str]] = []
    real = embeddings._run

    def recording(texts: list[str], **kwargs: object) -> np.ndarray:
        made.extend((text, threading.current_thread().name) for text in texts)
        return real(texts, **kwargs)

    monkeypatch.setattr(embeddings, "_run", recording)
    history = [
        Message(role="user", content="Qui Sergueï Lavrov a-t-il rencontré à Pyongyang ? zqh"),
        Message(role="assistant", content="Il a rencontré Choe Son Hui."),
    ]
    question = "Et combien de jours durait cette visite de Lavrov en Corée du Nord ? zqf"
    focus = focus_of(question)
    assert focus is not None and runtime.chain.decision.quick is None
    ahead = runtime.chain.answer(question, history)
    # The follow-up's own words and its focus: each embedded once, beside the searches.
    threads = {text: name for text, name in made}
    assert [text for text, _ in made].count(focus) == 1
    assert threads[focus].startswith("embedding-ahead")
    assert threads[question].startswith("embedding-ahead")
    # Made in the request's thread instead, the same vectors give the same answer.
    made.clear()
    embeddings._cache.clear()
    monkeypatch.setattr(embeddings, "embed_ahead", lambda: None)
    after = runtime.chain.answer(question, history)
    assert not any(name.startswith("embedding-ahead") for _, name in made) and focus in dict(made)
    assert after.answer == ahead.answer and after.citations == ahead.citations
