"""Generated answers from a real model server beside the extractive ones, on the same questions.

    .venv/bin/python bench/bench_llm.py [--data .eval/seed] [--limit 30] [--json out.json] [--strict]

Builds llama.cpp's server and fetches a small instruct model once (bench/llm_server.py,
into .cache/llm), starts the server on loopback, then asks each question twice, through the
chain as the stream routes drive it (prepare, the text as it is shown, the checked answer):
once with the extractive backend, once with ``ASSISTANT_LLM=openai`` pointed at the server.
Other ``ASSISTANT_*`` settings (``ASSISTANT_LLM_TIMEOUT_S``...) are taken from the environment.

The questions are those about the seed article and those no document answers, from the dev
set (../shared/eval/dev.jsonl, when present) and tests/eval/validation.jsonl, asked of the
seed alone. ``--limit`` keeps an evenly spread subset: the 0.5B model needs 5-20 s an answer.

Printed for each mode: facts, citation, refusal (as `assistant eval` scores them), forbidden
strings, the share of answers where the extractive one stood in (fallback), answers made only
of markers (or of the question's own words), model-written answers holding a sentence without
a marker (uncited), answers for which the chain left statements of the model's reply out
(left_out: ``unsupported`` is not empty), answers whose streamed text showed a statement the
final answer does not hold (shown_not_kept), the time to the first shown text and in all.
``--strict`` exits 1 when the generated answers are worse than the extractive ones (facts,
citation or refusal lower, or any marker-only, uncited or shown-then-dropped answer).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llm_server
from common import ROOT, quantile

# Imported after common (for the path) and before anything loads numpy: `assistant` pins BLAS.
from assistant.answering.chain import AnswerChain, Delta, Done
from assistant.config import Settings
from assistant.evaluation.scoring import Report, evaluate, load_cases
from assistant.models import Answer, Message
from assistant.runtime import build_runtime
from vectorstore.language import fold

SEED_DOCUMENT = "lavrov-visite-coree-du-nord.md"
QUESTION_FILES = [ROOT.parent / "shared" / "eval" / "dev.jsonl", ROOT / "tests" / "eval" / "validation.jsonl"]
MARKER = re.compile(r"\[\d+\]")
WORD = re.compile(r"\w+")
SENTENCE_END = re.compile(r"(?<=[a-zà-ÿ0-9\]][.!?])\s+")
# Words that point at a source without saying anything ("Voir [1].").
POINTERS = {"voir", "see", "cf", "source", "sources", "passage", "passages", "document", "reference"}


@dataclass
class Run:
    """How one answer was delivered."""

    first_s: float
    total_s: float
    shown: str
    fallback: bool | None
    marker_only: bool
    uncited: bool
    left_out: bool
    shown_not_kept: bool


class StreamedChain:
    """Asks the chain as the stream routes do (its events), timing the first text a reader
    would see (a delta, or the final answer when nothing was streamed)."""

    def __init__(self, chain: AnswerChain) -> None:
        self.chain = chain
        self.runs: list[Run] = []

    def answer(self, question: str, history: list[Message] | None = None) -> Answer:
        """The checked answer; how it came is appended to ``runs``."""
        started = time.perf_counter()
        first: float | None = None
        shown = []
        answer: Answer | None = None
        for event in self.chain.stream(question, history, debug=True):
            if isinstance(event, Delta):
                if first is None and event.text.strip():
                    first = time.perf_counter() - started
                shown.append(event.text)
            elif isinstance(event, Done):
                answer = event.answer
        total = time.perf_counter() - started
        if answer is None:
            raise RuntimeError(f"the chain's stream ended without its answer: {question!r}")
        text = "".join(shown)
        self.runs.append(
            Run(
                first_s=total if first is None else first,
                total_s=total,
                shown=text,
                fallback=answer.fallback,
                marker_only=is_marker_only(question, answer),
                uncited=answer.found and answer.fallback is False and bool(uncited_statements(answer.answer)),
                left_out=bool(answer.unsupported),
                shown_not_kept=bool(dropped_statements(text, answer.answer)),
            )
        )
        return answer


def is_marker_only(question: str, answer: Answer) -> bool:
    """A found answer that says nothing beyond its markers and the question's own words."""
    if not answer.found:
        return False
    said = set(WORD.findall(fold(MARKER.sub(" ", answer.answer))))
    return not (said - set(WORD.findall(fold(question))) - POINTERS)


def statements(text: str) -> list[str]:
    """The sentences of a text; split only after a lower-case word or a marker ("M. Lavrov" stays whole)."""
    return [part for part in SENTENCE_END.split(text) if WORD.search(MARKER.sub(" ", part))]


def uncited_statements(text: str) -> list[str]:
    """The sentences of an answer that carry no marker."""
    return [s for s in statements(text) if not MARKER.search(s)]


def dropped_statements(shown: str, final: str) -> list[str]:
    """The statements of the streamed text that the final answer does not hold (markers aside)."""
    kept = _plain(final)
    return [s for s in statements(shown) if _plain(s) not in kept]


def _plain(text: str) -> str:
    return " ".join(fold(MARKER.sub(" ", text)).split())


def questions(limit: int) -> list[dict[str, Any]]:
    """The questions about the seed article or about no document, ``limit`` of them spread evenly."""
    items = [
        item
        for path in QUESTION_FILES
        if path.exists()
        for item in load_cases(path)
        if item.get("document", SEED_DOCUMENT) in (SEED_DOCUMENT, "none")
    ]
    if 0 < limit < len(items):
        items = [items[i * len(items) // limit] for i in range(limit)]
    return items


def figures(report: Report, runs: list[Run], seconds: float) -> dict[str, Any]:
    """The summary of one mode."""
    firsts = [r.first_s for r in runs]
    totals = [r.total_s for r in runs]
    fallbacks = [r.fallback for r in runs if r.fallback is not None]
    summary = report.summary()
    return {
        "questions": summary["questions"],
        "answerable": summary["answerable"],
        "facts": summary["facts"],
        "citation": summary["citation"],
        "refusal": summary["refusal"],
        "forbidden": summary["forbidden"],
        "fallback": round(sum(fallbacks) / len(fallbacks), 3) if fallbacks else None,
        "marker_only": sum(r.marker_only for r in runs),
        "uncited": sum(r.uncited for r in runs),
        "left_out": sum(r.left_out for r in runs),
        "shown_not_kept": sum(r.shown_not_kept for r in runs),
        "first_text_p50_s": round(quantile(firsts, 0.5), 2),
        "first_text_p95_s": round(quantile(firsts, 0.95), 2),
        "total_p50_s": round(quantile(totals, 0.5), 2),
        "total_p95_s": round(quantile(totals, 0.95), 2),
        "seconds": round(seconds, 1),
    }


def run_mode(chain: AnswerChain, items: list[dict[str, Any]], label: str) -> tuple[Report, StreamedChain, float]:
    print(f"{label}: {len(items)} questions...", flush=True)
    streamed = StreamedChain(chain)
    started = time.perf_counter()
    report = evaluate(streamed, items)  # type: ignore[arg-type]
    return report, streamed, time.perf_counter() - started


def server_timings(log: Path) -> dict[str, Any]:
    """Tokens and speeds from llama.cpp's own per-request timings in the server's log."""
    text = log.read_text(errors="replace") if log.exists() else ""
    prompt = [(float(ms), int(n)) for ms, n in re.findall(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", text)]
    generated = [
        (float(ms), int(n)) for ms, n in re.findall(r"_print:\s+eval time =\s*([\d.]+) ms /\s*(\d+) runs", text)
    ]
    reused = [int(n) for n in re.findall(r"(\d+) prefix-match hit", text)]
    out: dict[str, Any] = {"requests": len(prompt)}
    if prompt:
        out["prompt_tokens_reused_per_request"] = round(sum(reused) / len(prompt))
        out["prompt_tokens_computed_per_request"] = round(sum(n for _, n in prompt) / len(prompt))
        out["prompt_tokens_per_s"] = _rate(prompt)
    if generated:
        out["generated_tokens_per_request"] = round(sum(n for _, n in generated) / len(generated))
        out["generated_tokens_per_s"] = _rate(generated)
    return out


def _timings(pattern: str, text: str) -> list[tuple[float, int]]:
    return [(float(ms), int(n)) for ms, n in re.findall(pattern, text)]


def _rate(timings: list[tuple[float, int]]) -> float | None:
    ms = sum(m for m, _ in timings)
    return round(sum(n for _, n in timings) / ms * 1000, 1) if ms else None


def warm_up(url: str) -> None:
    """One completion of a long prompt, so that the server's first-request costs (pages of the
    model read from disk, buffers sized) are not charged to the first question."""
    prompt = (ROOT / "seeds" / f"{SEED_DOCUMENT}").read_text(encoding="utf-8")[:3000]
    body = {"model": llm_server.MODEL_ALIAS, "messages": [{"role": "user", "content": prompt}], "max_tokens": 1}
    httpx.post(f"{url}/chat/completions", json=body, timeout=300).raise_for_status()


def print_cases(items: list[dict[str, Any]], extractive: Report, generated: Report, runs: list[Run]) -> None:
    print(f"\n{'id':18} {'ans':>3} | {'extractive':^17} | {'generated':^31} | answer (generated)")
    print(
        f"{'':18} {'':>3} | {'found':>5} {'facts':>5} {'ok':>5} | {'found':>5} {'facts':>5} {'ok':>5} {'fb':>3} "
        f"{'1st s':>5} {'tot s':>5} |"
    )
    for item, xc, gc, run in zip(items, extractive.cases, generated.cases, runs, strict=True):
        flags = "".join(f for f, on in (("M", run.marker_only), ("U", run.uncited), ("S", run.shown_not_kept)) if on)
        print(
            f"{item['id'][:18]:18} {'yes' if xc.answerable else 'no':>3} | {xc.found!s:>5} {_num(xc.facts):>5} "
            f"{_ok(xc):>5} | {gc.found!s:>5} {_num(gc.facts):>5} {_ok(gc):>5} {'yes' if run.fallback else '':>3} "
            f"{run.first_s:5.1f} {run.total_s:5.1f} | {flags:3} {' '.join(gc.answer.split())[:70]}"
        )
    print("ok: citation holds the support (answerable) or refused (not answerable); fb: extractive fallback")
    print("flags: M marker-only, U a statement without a marker, S streamed a statement the answer dropped")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _ok(case: Any) -> str:
    good = case.cited_support if case.answerable else case.refused_correctly
    return "" if good is None else ("yes" if good else "no")


def print_summary(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    print(f"\n{'':28} " + " ".join(f"{n:>12}" for n in names))
    for key in next(iter(results.values())):
        values = [results[n][key] for n in names]
        print(f"{key:28} " + " ".join(f"{'-' if v is None else v!s:>12}" for v in values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".eval" / "seed", help="store holding the seed alone")
    parser.add_argument("--limit", type=int, default=0, help="ask at most this many questions (0 = all)")
    parser.add_argument("--json", type=Path, help="also write the figures and every answer here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when generated answers are worse")
    args = parser.parse_args()
    # Stopped from outside, still stop the model server (the `with` block below must unwind).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    try:
        llm_server.prepare()
    except llm_server.SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    items = questions(args.limit)
    if not items:
        print("error: no questions found", file=sys.stderr)
        return 2
    extractive = build_runtime(Settings(data_dir=args.data, llm="extractive"))
    if extractive.store.count() == 0:
        print(f"error: the store in {args.data} is empty; run `assistant ingest` into it first", file=sys.stderr)
        return 1

    modes = {"extractive": run_mode(extractive.chain, items, "extractive")}
    log = llm_server.CACHE / "server.log"
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        with llm_server.running(log) as url:
            print(f"model server: {llm_server.MODEL_ALIAS} at {url}, up in {time.perf_counter() - started:.1f} s")
            warm_up(url)
            log.write_bytes(b"")  # the figures below are the questions' alone
            settings = Settings(data_dir=args.data, llm="openai", llm_url=url, llm_model=llm_server.MODEL_ALIAS)
            generated = build_runtime(settings, store=extractive.store)
            modes["generated"] = run_mode(
                generated.chain, items, f"generated (llm_timeout_s={settings.llm_timeout_s:g})"
            )
    except llm_server.SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print_cases(items, modes["extractive"][0], modes["generated"][0], modes["generated"][1].runs)
    results = {name: figures(report, streamed.runs, s) for name, (report, streamed, s) in modes.items()}
    print_summary(results)
    timings = server_timings(log)
    print(f"\nmodel server ({llm_server.MODEL_NAME}, {llm_server.MODEL_BYTES / 2**20:.0f} MiB): " + json.dumps(timings))
    if args.json:
        cases = {
            name: [{**case.__dict__, **asdict(run)} for case, run in zip(report.cases, streamed.runs, strict=True)]
            for name, (report, streamed, _) in modes.items()
        }
        args.json.write_text(
            json.dumps({"figures": results, "server": timings, "cases": cases}, ensure_ascii=False, indent=2)
        )
    x, g = results["extractive"], results["generated"]
    worse = [k for k in ("facts", "citation", "refusal") if g[k] < x[k]]
    worse += [k for k in ("marker_only", "uncited", "shown_not_kept") if g[k]]
    if worse:
        print(f"\ngenerated answers worse than extractive ones on: {', '.join(worse)}")
    return 1 if args.strict and worse else 0


if __name__ == "__main__":
    sys.exit(main())
