"""The French lemmatizer's tables, compact and shared between processes.

spaCy's French pipeline holds its lemma tables (217,000 word forms with their lemma, and
280,000 more words in the per-part-of-speech exception and index tables) as Python
dictionaries and lists: about 140 MiB in every process, and a scan of a 66,000-word list
for every noun it lemmatizes. Here each table is a sorted array of its words' 64-bit hashes
beside their lemmas in one block of UTF-8, written once to the cache folder and
memory-mapped, so every process of a machine maps the same 10 MB and finds a word by binary
search. The lemmas are the same as spaCy's own (a test compares them).

A folder that cannot be written builds the same tables in memory, once per process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vectorstore.pattern_cache import cache_root

log = logging.getLogger("assistant.lemmas")

_FORMAT = 1
_SEPARATOR = "\x00"


@functools.cache
def _string_id() -> Callable[[str | int], int]:
    # Imported once, not at each of the half a million words hashed to build the tables.
    from spacy.strings import get_string_id

    return get_string_id


def _hash(word: str | int) -> int:
    return int(_string_id()(word))


class HashedWords:
    """A set of words, as their sorted hashes."""

    def __init__(self, keys: np.ndarray) -> None:
        self._keys = keys

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        return _find(self._keys, _hash(word)) >= 0

    def __len__(self) -> int:
        return len(self._keys)


class HashedLemmas:
    """Words (or their hashes) to lists of lemmas, as sorted hashes and one block of text."""

    def __init__(self, keys: np.ndarray, offsets: np.ndarray, text: np.ndarray) -> None:
        self._keys, self._offsets, self._text = keys, offsets, text

    def get(self, word: str | int, default: Any = None) -> Any:
        """The word's lemmas, or ``default``."""
        at = _find(self._keys, _hash(word))
        if at < 0:
            return default
        start, end = int(self._offsets[at]), int(self._offsets[at + 1])
        return bytes(self._text[start:end]).decode("utf-8").split(_SEPARATOR)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str | int) and _find(self._keys, _hash(word)) >= 0

    def __len__(self) -> int:
        return len(self._keys)


def _find(keys: np.ndarray, key: int) -> int:
    at = int(np.searchsorted(keys, np.uint64(key)))
    return at if at < len(keys) and int(keys[at]) == key else -1


def _word_arrays(words: Iterable[str | int]) -> dict[str, np.ndarray]:
    keys = np.unique(np.fromiter((_hash(w) for w in words), dtype=np.uint64))
    return {"keys": keys}


def _lemma_arrays(mapping: Mapping[Any, Any]) -> dict[str, np.ndarray]:
    words = list(mapping)
    hashes = np.fromiter((_hash(word) for word in words), dtype=np.uint64, count=len(words))
    # Sorted by hash in numpy: sorting 217,000 (hash, lemmas) pairs took most of a build.
    order = np.argsort(hashes, kind="stable")
    keys = hashes[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    joined = [_SEPARATOR.join(mapping[words[i]]) for i in order.tolist()]
    for i in np.flatnonzero(~first).tolist():
        # Two words with one hash: the smaller entry kept, as a dictionary keyed by hash
        # would keep one.
        start = i - 1
        while not first[start]:
            start -= 1
        joined[start] = min(joined[start], joined[i])
    encoded = [joined[i].encode("utf-8") for i in np.flatnonzero(first).tolist()]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
    return {
        "keys": keys[first],
        "offsets": offsets,
        "text": np.frombuffer(b"".join(encoded), dtype=np.uint8),
    }


def _arrays(tables: Mapping[str, Mapping[Any, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """Every part of the compact tables, by name (``lookup``, ``index-<pos>``, ``exc-<pos>``)."""
    parts = {"lookup": _lemma_arrays(tables["lemma_lookup"])}
    for pos, words in tables["lemma_index"].items():
        parts[f"index-{pos}"] = _word_arrays(words)
    for pos, exceptions in tables["lemma_exc"].items():
        parts[f"exc-{pos}"] = _lemma_arrays(exceptions)
    return parts


def _read(folder: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[int, Any]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format") != _FORMAT:
        raise ValueError("another format")
    parts = {
        part: {name: np.load(folder / f"{part}.{name}.npy", mmap_mode="r") for name in names}
        for part, names in manifest["parts"].items()
    }
    return parts, {int(pos): rules for pos, rules in manifest["rules"].items()}


def _write(folder: Path, parts: dict[str, dict[str, np.ndarray]], rules: Mapping[int, Any]) -> None:
    """Write the parts atomically (a folder renamed into place), or not at all."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=folder.parent, suffix=".part"))
        try:
            for part, arrays in parts.items():
                for name, array in arrays.items():
                    np.save(temporary / f"{part}.{name}.npy", array)
            manifest = {
                "format": _FORMAT,
                "parts": {part: list(arrays) for part, arrays in parts.items()},
                "rules": {str(pos): list(r) for pos, r in rules.items()},
            }
            (temporary / "manifest.json").write_text(json.dumps(manifest))
            with contextlib.suppress(OSError):  # another process got there first: theirs stands
                os.rename(temporary, folder)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    except OSError as exc:
        log.debug("lemma tables not kept in %s: %s", folder.parent, exc)


def compact_lookups(source: Path, folder: Path | None = None) -> Any:
    """The lemmatizer's tables of ``source`` (a spaCy ``lookups.bin``) as a spaCy ``Lookups``
    of compact tables, read from the cache folder or built and kept there."""
    import srsly
    from spacy.lookups import Lookups, Table

    data = source.read_bytes()
    where = (folder or cache_root() / "lemmas") / hashlib.sha256(data).hexdigest()[:32]
    try:
        parts, rules = _read(where)
    except (OSError, ValueError, KeyError):
        tables = srsly.msgpack_loads(data)
        parts, rules = _arrays(tables), tables["lemma_rules"]
        del tables
        _write(where, parts, rules)
        with contextlib.suppress(OSError, ValueError, KeyError):
            parts, rules = _read(where)  # mapped, so the built copy is freed and the pages shared
    del data
    lookups = Lookups()
    lookups.set_table("lemma_lookup", HashedLemmas(**parts["lookup"]))
    lookups.set_table("lemma_rules", Table("lemma_rules", rules))
    for kind, build in (("index", HashedWords), ("exc", HashedLemmas)):
        by_pos = {
            int(part.split("-", 1)[1]): build(**arrays) for part, arrays in parts.items() if part.startswith(f"{kind}-")
        }
        # Given its entries, a table sizes its Bloom filter to them (1M entries otherwise).
        lookups.set_table(f"lemma_{kind}", Table(f"lemma_{kind}", by_pos))
    return lookups
