"""Starter questions for an empty conversation: the page's suggestions (web/starters.json),
offered only when the chain can answer them from the documents now stored, so a starter
never leads to "not found" and suggestions about another corpus disappear by themselves."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from assistant.runtime import Runtime

log = logging.getLogger("assistant.http.app")
_lock = threading.Lock()
_cache: dict[tuple[int, str, str, str], list[str]] = {}


def candidates(path: Path, language: str) -> list[str]:
    """The suggestions in a starters file for one language (none if it is missing or malformed)."""
    try:
        suggestions = json.loads(path.read_text(encoding="utf-8")).get(language, [])
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("no starter questions from %s: %s", path, exc)
        return []
    return [q for q in suggestions if isinstance(q, str) and q.strip()]


def starter_questions(runtime: Runtime, path: Path, language: str, limit: int = 4) -> list[str]:
    """Up to ``limit`` suggestions the chain answers from the current documents."""
    key = (id(runtime), str(path), language, runtime.corpus.version())
    with _lock:
        if key in _cache:
            return _cache[key]
    questions = [q for q in candidates(path, language) if runtime.chain.answer(q).found][:limit]
    with _lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = questions
    return questions
