"""Prompts live as text files in prompts/; this loads and fills them, loudly."""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


class PromptError(ValueError):
    """A prompt is missing, or was rendered without one of its variables."""


class Prompt:
    """A prompt file: text with ``{variable}`` fields (``{{`` and ``}}`` for braces)."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.variables = {field for _, field, _, _ in string.Formatter().parse(text) if field}

    def render(self, **values: object) -> str:
        """The prompt with every variable filled; a missing or unknown one is an error."""
        missing = self.variables - values.keys()
        if missing:
            raise PromptError(f"prompt {self.name!r} needs {', '.join(sorted(missing))}")
        unknown = values.keys() - self.variables
        if unknown:
            raise PromptError(f"prompt {self.name!r} has no {', '.join(sorted(unknown))}")
        return self.text.format(**values)


@cache
def load_prompt(name: str, folder: Path = PROMPTS_DIR) -> Prompt:
    """The prompt in ``prompts/<name>.txt``."""
    path = folder / f"{name}.txt"
    try:
        return Prompt(name, path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromptError(f"no prompt {name!r} at {path}") from exc
