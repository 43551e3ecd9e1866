"""Evaluating answer quality on a question set (JSON Lines).

Each line: ``question``, optional ``history``, ``answerable``; for answerable questions
``must`` (groups of alternatives, every group must appear in the answer) and ``support``
(text a citation must contain); optionally ``forbid`` (strings the answer must never hold),
and labels the report is broken down by: ``lang``, ``kind`` (what is asked), ``style``
(plain, paraphrase, follow-up...) and ``document`` (where the answer is). Matching ignores
case and accents.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.answering.chain import AnswerChain
from assistant.models import Message
from vectorstore.language import fold

LABELS = ("lang", "kind", "style", "document")


@dataclass
class Case:
    """One evaluated question."""

    id: str
    question: str
    answerable: bool
    found: bool
    facts: float | None
    cited_support: bool | None
    refused_correctly: bool | None
    forbidden: list[str]
    ms: float
    answer: str
    right_document: bool | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # An answerable question refused: whether the closest passages offered hold the support.
    related_support: bool | None = None


@dataclass
class Report:
    """Scores over a question set."""

    cases: list[Case] = field(default_factory=list)

    def _mean(self, values: list[float]) -> float:
        return statistics.fmean(values) if values else 1.0

    @property
    def facts(self) -> float:
        """Mean share of required facts found, over answerable questions."""
        return self._mean([c.facts for c in self.cases if c.facts is not None])

    @property
    def citation(self) -> float:
        """Share of answerable questions with a citation containing the support."""
        return self._mean([float(c.cited_support) for c in self.cases if c.cited_support is not None])

    @property
    def refusal(self) -> float:
        """Share of unanswerable questions answered with "not found"."""
        return self._mean([float(c.refused_correctly) for c in self.cases if c.refused_correctly is not None])

    @property
    def forbidden(self) -> int:
        """Number of answers holding a forbidden string."""
        return sum(1 for c in self.cases if c.forbidden)

    @property
    def right_document(self) -> float:
        """Share of answered questions with an expected document whose first citation comes from it."""
        return self._mean([float(c.right_document) for c in self.cases if c.right_document is not None])

    @property
    def related(self) -> float:
        """Share of answerable questions refused whose closest passages hold the support:
        how often a wrong refusal still points the reader to the answer."""
        return self._mean([float(c.related_support) for c in self.cases if c.related_support is not None])

    def by(self, label: str) -> dict[str, dict[str, Any]]:
        """The summary of each group of questions sharing a label (``lang``, ``kind``...)."""
        groups: dict[str, Report] = {}
        for case in self.cases:
            groups.setdefault(case.labels.get(label, "-"), Report()).cases.append(case)
        return {name: groups[name].summary() for name in sorted(groups)}

    def latency(self, quantile: float) -> float:
        """Latency quantile in milliseconds."""
        values = sorted(c.ms for c in self.cases)
        if not values:
            return 0.0
        return values[min(len(values) - 1, round(quantile * (len(values) - 1)))]

    def summary(self) -> dict[str, Any]:
        """The overall figures."""
        return {
            "questions": len(self.cases),
            "answerable": sum(1 for c in self.cases if c.answerable),
            "facts": round(self.facts, 3),
            "citation": round(self.citation, 3),
            "refusal": round(self.refusal, 3),
            "forbidden": self.forbidden,
            "right_document": round(self.right_document, 3),
            "related": round(self.related, 3),
            "p50_ms": round(self.latency(0.5), 1),
            "p95_ms": round(self.latency(0.95), 1),
        }


def load_cases(path: Path) -> list[dict[str, Any]]:
    """Read a question set, with a clear error naming the file and line of a malformed one."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        problem = _problem(item)
        if problem:
            raise ValueError(f"{path}:{number}: {problem}")
        item.setdefault("id", f"{path.stem}:{number}")
        items.append(item)
    return items


def _problem(item: Any) -> str | None:
    """What is wrong with one question of a set, if anything."""
    if not isinstance(item, dict):
        return "each line must be a JSON object"
    if not isinstance(item.get("question"), str) or not item["question"].strip():
        return "'question' must be a non-empty string"
    if not isinstance(item.get("answerable"), bool):
        return "'answerable' must be true or false"
    history = item.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
        for m in history
    ):
        return "'history' must be a list of {role: user|assistant, content: text}"
    must = item.get("must", [])
    if not isinstance(must, list) or not all(
        isinstance(g, list) and g and all(isinstance(a, str) for a in g) for g in must
    ):
        return "'must' must be a list of lists of strings"
    for key in ("support", "lang", "kind", "style", "document", "id"):
        if key in item and not isinstance(item[key], str):
            return f"'{key}' must be a string"
    if not isinstance(item.get("forbid", []), list):
        return "'forbid' must be a list of strings"
    return None


def evaluate(chain: AnswerChain, items: list[dict[str, Any]]) -> Report:
    """Ask every question and score the answers."""
    report = Report()
    for item in items:
        history = [Message(**m) for m in item.get("history", [])]
        started = time.perf_counter()
        answer = chain.answer(item["question"], history)
        ms = (time.perf_counter() - started) * 1000
        text = fold(answer.answer)
        answerable = bool(item["answerable"])
        facts = cited = refused = None
        if answerable:
            groups = item.get("must", [])
            found_groups = sum(1 for group in groups if any(fold(alt) in text for alt in group))
            facts = found_groups / len(groups) if groups else float(answer.found)
            support = fold(item.get("support", ""))
            cited = any(support in fold(c.text) for c in answer.citations) if support else answer.found
        else:
            refused = not answer.found
        forbidden = [s for s in item.get("forbid", []) if fold(s) in text]
        right = related = None
        if answerable and answer.found and item.get("document"):
            right = answer.citations[0].document == item["document"]
        if answerable and not answer.found and item.get("support"):
            related = any(fold(item["support"]) in fold(r.text) for r in answer.related)
        report.cases.append(
            Case(
                item["id"],
                item["question"],
                answerable,
                answer.found,
                facts,
                cited,
                refused,
                forbidden,
                ms,
                answer.answer,
                right,
                {key: str(item.get(key, "-")) for key in LABELS},
                related,
            )
        )
    return report
