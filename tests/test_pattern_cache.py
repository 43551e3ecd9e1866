"""Large regular expressions compiled once per machine: the same patterns, read back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vectorstore import pattern_cache
from vectorstore.pattern_cache import cached_patterns

LETTERS = "a-zà-öø-ÿĀ-ſ"
# Shaped like spaCy's French token exceptions: many alternatives over a large letter class.
WORDS = ("porte", "saut", "arc", "entre", "grand", "zig", "yo") * 60
PATTERN = "(?iu)" + "|".join(f"(?:^{w}{i}[-‐][{LETTERS}]+$)" for i, w in enumerate(WORDS)) + "|(?P<name>^[0-9]+$)"
SAMPLES = ["porte0-avions", "SAUT1-de", "zig5-zag", "zig5zag", "1234", "arc2-é", "", "porte0-"]


def matches(pattern: re.Pattern[str]) -> list[object]:
    return [(m.group(0), m.lastgroup) if (m := pattern.match(s)) else None for s in SAMPLES]


def compiled(folder: Path) -> re.Pattern[str]:
    re.purge()  # past the module's own cache, which would hide the compile
    with cached_patterns(folder):
        return re.compile(PATTERN)


def test_a_large_pattern_read_back_is_the_pattern_re_compiles(tmp_path: Path, monkeypatch) -> None:
    assert len(PATTERN) >= pattern_cache.MIN_LENGTH
    expected = re.compile(PATTERN)
    first = compiled(tmp_path)
    assert len(list(tmp_path.glob("*.marshal"))) == 1
    # The second time nothing is parsed: the compiled form comes from the file.
    parsed: list[str] = []
    parse = re._parser.parse
    monkeypatch.setattr(re._parser, "parse", lambda p, *a: parsed.append(p) or parse(p, *a))
    second = compiled(tmp_path)
    monkeypatch.undo()
    assert parsed == []
    for pattern in (first, second):
        assert (pattern.pattern, pattern.flags, pattern.groups, pattern.groupindex) == (
            expected.pattern,
            expected.flags,
            expected.groups,
            expected.groupindex,
        )
        assert matches(pattern) == matches(expected)
    assert matches(expected)[0] == ("porte0-avions", None) and matches(expected)[4] == ("1234", "name")


def test_a_corrupt_or_foreign_file_is_compiled_anew(tmp_path: Path) -> None:
    compiled(tmp_path)
    (entry,) = tmp_path.glob("*.marshal")
    for damage in (b"", b"\x00not marshal", entry.read_bytes()[:-40]):
        entry.write_bytes(damage)
        assert matches(compiled(tmp_path)) == matches(re.compile(PATTERN))


def test_a_folder_that_cannot_be_written_only_costs_time(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert matches(compiled(blocker / "patterns")) == matches(re.compile(PATTERN))
    assert blocker.read_text() == "not a folder"


def test_small_patterns_and_errors_are_left_to_re(tmp_path: Path) -> None:
    original = re._compiler.compile
    re.purge()
    with cached_patterns(tmp_path):
        assert re.compile("a+b").match("aab")
        with pytest.raises(re.error):
            re.compile("(" + "x" * pattern_cache.MIN_LENGTH)
    assert re._compiler.compile is original
    assert not list(tmp_path.iterdir())


def test_the_cache_folder_follows_the_setting(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path))
    assert pattern_cache.cache_folder() == tmp_path / "patterns"
    monkeypatch.delenv("ASSISTANT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pattern_cache.cache_folder() == tmp_path / "xdg" / "assistant" / "patterns"
