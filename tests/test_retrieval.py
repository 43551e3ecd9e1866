from assistant.models import Message
from assistant.retrieval import condense, is_follow_up
from assistant.runtime import Runtime
from vectorstore.language import fold


def top_texts(runtime: Runtime, query: str, n: int = 3) -> list[str]:
    return [fold(d.page_content) for d in runtime.chain.retriever.invoke(query)[:n]]


def test_english_question_finds_the_french_passage(runtime: Runtime) -> None:
    texts = top_texts(runtime, "Which countries hold joint military exercises in the region?")
    assert any("manoeuvres militaires conjointes" in t for t in texts)


def test_lexical_side_finds_exact_terms(runtime: Runtime) -> None:
    texts = top_texts(runtime, "cryptomonnaies troc")
    assert "cryptomonnaies" in texts[0]


def test_candidates_carry_dense_lexical_and_fused_scores(runtime: Runtime) -> None:
    docs = runtime.chain.retriever.invoke("missiles balistiques")
    assert docs and all({"dense", "lexical", "fused", "start", "end"} <= set(d.metadata) for d in docs)
    assert docs == sorted(docs, key=lambda d: -d.metadata["fused"])
    assert 0.0 < docs[0].metadata["dense"] <= 1.0


def test_follow_ups_are_recognised() -> None:
    assert is_follow_up("Et combien de temps y reste-t-il ?")
    assert is_follow_up("And in the medium term?")
    assert is_follow_up("What topics will it cover?")
    assert not is_follow_up("Quel est le rôle de la Russie dans la dénucléarisation ?")


def test_condense_joins_a_follow_up_to_the_previous_exchange() -> None:
    history = [
        Message(role="user", content="Dans quelle ville se rend Sergueï Lavrov ?"),
        Message(role="assistant", content="À Pyongyang [1]."),
    ]
    assert condense("Et combien de temps y reste-t-il ?", history) == (
        "Dans quelle ville se rend Sergueï Lavrov ? À Pyongyang. Et combien de temps y reste-t-il ?"
    )
    standalone = "Quelles technologies duales sont mentionnées dans l'article ?"
    assert condense(standalone, history) == standalone
    assert condense("Et après ?", []) == "Et après ?"
