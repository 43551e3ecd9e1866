"""Building the running parts (embedder, store, corpus, chain) from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from assistant.answering.chain import AnswerChain
from assistant.answering.decision import DecisionModel
from assistant.answering.generation import make_chat_model
from assistant.answering.index import Corpus
from assistant.config import Settings
from vectorstore.embeddings import E5Embeddings, vector_cache
from vectorstore.linguistics import PIPELINES
from vectorstore.pattern_cache import cache_root
from vectorstore.store import PassageStore

log = logging.getLogger("assistant")


@dataclass
class Runtime:
    """Everything a question needs, built once per process."""

    settings: Settings
    store: PassageStore
    corpus: Corpus
    chain: AnswerChain


def build_embeddings(settings: Settings) -> E5Embeddings:
    """The bundled model, reading passages it has embedded before from the settings' cache."""
    path = settings.embedding_cache_file or cache_root() / "vectors.sqlite3"
    return E5Embeddings(cache=vector_cache(path, settings.embedding_cache_entries))


def build_store(settings: Settings, embeddings: E5Embeddings | None = None) -> PassageStore:
    """Open (or create) the store the settings point at."""
    return PassageStore(
        embeddings or build_embeddings(settings),
        data_dir=settings.data_dir,
        chroma_url=settings.chroma_url,
        collection=settings.collection,
        min_free_bytes=settings.store_min_free_mb * 2**20,
    )


def build_corpus(settings: Settings, store: PassageStore) -> Corpus:
    """The index over the store, searching in memory or in the store by its size."""
    return Corpus(store, search_in_store_from=settings.search_in_store_from, folder=settings.data_dir)


def build_runtime(
    settings: Settings, store: PassageStore | None = None, decision: DecisionModel | None = None
) -> Runtime:
    """The store, the corpus over it and the answer chain (with its chat model, if any);
    the decision's weights are the configured ones unless ``decision`` is given."""
    chat_model = make_chat_model(settings)  # fails fast on a backend that cannot be used
    PIPELINES.load()  # and on a language pipeline that is not installed
    store = store or build_store(settings)
    corpus = build_corpus(settings, store)
    corpus.index()
    log.info("store %s: %d passages", store.location, store.count())
    if chat_model is not None:
        log.info("answers by %s (%s), extractive as the fallback", settings.llm, settings.llm_model or "default model")
    return Runtime(
        settings=settings, store=store, corpus=corpus, chain=AnswerChain(corpus, settings, chat_model, decision)
    )


# White space as JSON Schema's (ECMAScript's) \s sees it, so that "blank" means the same
# to the server and to the schema it publishes.
