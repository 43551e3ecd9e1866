"""Compiled regular expressions kept on disk between processes.

Loading spaCy's French pipeline compiles a few very large regular expressions (the
tokenizer's exceptions: some 400 alternatives over every Unicode letter), which took about
4 of the 10 seconds every process spent before its first question. Python keeps compiled
patterns only for the life of a process, so the compiled form of large patterns is kept in
a cache folder and read back by the next process: what ``re`` compiles them to is a list of
integers, and the same interpreter turns that list into the same pattern.

Anything unexpected (another interpreter, an unreadable or corrupt file, a folder that
cannot be written) falls back to compiling as usual.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import marshal
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("assistant.patterns")

# Only patterns this long are worth a file: the small ones compile in microseconds.
MIN_LENGTH = 2_000
_FORMAT = 1


def cache_root() -> Path:
    """The folder of what processes keep between runs: ``ASSISTANT_CACHE_DIR``, or the user's
    cache folder."""
    configured = os.environ.get("ASSISTANT_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assistant"


def cache_folder() -> Path:
    """Where compiled patterns are kept."""
    return cache_root() / "patterns"


def _key(pattern: str | bytes, flags: int) -> str:
    text = pattern if isinstance(pattern, str) else pattern.decode("latin-1")
    identity = f"{_FORMAT}|{sys.version}|{flags}|{type(pattern).__name__}|{text}"
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@contextlib.contextmanager
def cached_patterns(folder: Path | None = None) -> Iterator[None]:
    """Within the block, large patterns are compiled once per machine, not once per process."""
    try:
        import _sre  # type: ignore[import-not-found]
        from re import _compiler, _parser  # type: ignore[attr-defined]
    except ImportError:  # another interpreter's re
        yield
        return
    original = _compiler.compile
    where = folder or cache_folder()

    def compile_cached(p: Any, flags: int = 0) -> Any:
        if not isinstance(p, str | bytes) or len(p) < MIN_LENGTH:
            return original(p, flags)
        path = where / f"{_key(p, flags)}.marshal"
        with contextlib.suppress(Exception):
            final_flags, code, groups, groupindex, indexgroup = marshal.loads(path.read_bytes())
            return _sre.compile(p, final_flags, code, groups, groupindex, indexgroup)
        try:
            parsed = _parser.parse(p, flags)
            # The opcodes are int subclasses, which marshal does not take.
            code = [int(op) for op in _compiler._code(parsed, flags)]
            groupindex = dict(parsed.state.groupdict)
            indexgroup = [None] * parsed.state.groups
            for name, index in groupindex.items():
                indexgroup[index] = name
            entry = (flags | parsed.state.flags, code, parsed.state.groups - 1, groupindex, tuple(indexgroup))
            compiled = _sre.compile(p, *entry)
        except Exception:  # a pattern re itself rejects raises its own error here
            return original(p, flags)
        _write(path, marshal.dumps(entry))
        return compiled

    _compiler.compile = compile_cached
    try:
        yield
    finally:
        _compiler.compile = original


def _write(path: Path, data: bytes) -> None:
    """Write atomically, or not at all (a read-only home is only slower)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    except OSError as exc:
        log.debug("compiled patterns not kept in %s: %s", path.parent, exc)
