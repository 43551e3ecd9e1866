"""The ``assistant`` command: ingest, ask, serve, eval, calibrate, feedback."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from assistant.answering.decision import WEIGHTS, DecisionModel
from assistant.answering.generation import BackendError
from assistant.config import Settings, load_settings
from assistant.evaluation.calibration import fit, gather
from assistant.evaluation.scoring import Report, evaluate, load_cases
from assistant.feedback.ratings import FeedbackError, database_path, export_cases
from assistant.http.input_checks import validate_question
from assistant.models import Citation, Message
from assistant.runtime import build_corpus, build_runtime, build_store
from vectorstore.embeddings import MODEL_ID
from vectorstore.ingest import ingest_paths
from vectorstore.language import detect_language
from vectorstore.linguistics import PipelineUnavailable
from vectorstore.store import StoreError, drop_collections

log = logging.getLogger("assistant")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that say too much at INFO; pypdf warns about every font it cannot fully decode,
# and the text is extracted anyway; spaCy tells of setting up its English pipeline, twice
# (through its own handler and the root's).
QUIET_LOGGERS = {"chromadb": "WARNING", "httpx": "WARNING", "httpcore": "WARNING", "pypdf": "ERROR", "spacy": "WARNING"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``assistant`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(data_dir=args.data_dir, chroma_url=args.chroma_url, collection=args.collection)
    except ValidationError as exc:
        for problem in exc.errors():
            name = "ASSISTANT_" + "_".join(str(p) for p in problem["loc"]).upper()
            print(f"error: {name}: {problem['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    try:
        return int(args.run(args, settings))
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PipelineUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="Ask your documents, get answers you can verify.")
    parser.add_argument("--data-dir", type=Path, help="store folder (default: $ASSISTANT_DATA_DIR or ./data)")
    parser.add_argument("--chroma-url", help="use a Chroma server instead (default: $ASSISTANT_CHROMA_URL)")
    parser.add_argument("--collection", help="collection name prefix (default: $ASSISTANT_COLLECTION or assistant)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="add or update documents (.txt, .md, .html, .pdf)")
    ingest.add_argument("paths", nargs="*", type=Path, help="files or folders (default: seeds/)")
    ingest.set_defaults(run=_ingest)

    reindex = commands.add_parser("reindex", help="rebuild the store from scratch (corrupt or foreign collections)")
    reindex.add_argument("paths", nargs="*", type=Path, help="files or folders to ingest again (default: seeds/)")
    reindex.add_argument("--yes", action="store_true", help="confirm: the store's collections are deleted first")
    reindex.set_defaults(run=_reindex)

    ask = commands.add_parser("ask", help="answer one question, with its sources")
    ask.add_argument("question")
    ask.add_argument("--history", type=Path, help="JSON file of earlier turns [{role, content}, ...]")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.add_argument("--debug", action="store_true", help="include what each stage did")
    ask.set_defaults(run=_ask)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="address to listen on (default: $ASSISTANT_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: $ASSISTANT_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (more than 1 needs a Chroma server)")
    serve.set_defaults(run=_serve)

    ev = commands.add_parser("eval", help="score answers on question sets (JSON Lines)")
    ev.add_argument("files", nargs="+", type=Path)
    ev.add_argument("--min-facts", type=float, default=0.0, help="fail below this share of facts found")
    ev.add_argument("--min-citation", type=float, default=0.0, help="fail below this share of supported citations")
    ev.add_argument("--min-refusal", type=float, default=0.0, help="fail below this share of correct refusals")
    ev.add_argument("--max-forbidden", type=int, default=0, help="fail above this many forbidden strings")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.add_argument("--by", nargs="*", default=["lang", "kind", "style"], help="labels to break the figures down by")
    ev.add_argument(
        "--document",
        action="append",
        default=[],
        metavar="NAME",
        help="only the questions labelled with this document ('none': about no document); repeatable",
    )
    ev.set_defaults(run=_eval)

    cal = commands.add_parser("calibrate", help="fit the answer decision on question sets (JSON Lines)")
    cal.add_argument("files", nargs="+", type=Path, help="the calibration questions")
    cal.add_argument("--validate", nargs="*", type=Path, default=[], help="questions to report figures on")
    cal.add_argument(
        "--also",
        nargs=2,
        action="append",
        default=[],
        metavar=("DATA_DIR", "FILE"),
        help="also fit on FILE's questions asked of the embedded store in DATA_DIR (another corpus); repeatable",
    )
    cal.add_argument("--out", type=Path, help="where to write the weights (default: $ASSISTANT_DECISION_WEIGHTS)")
    cal.add_argument("--l2", type=float, default=1.0, help="strength of the L2 penalty (default 1.0)")
    cal.set_defaults(run=_calibrate)

    feedback = commands.add_parser("feedback", help="the readers' ratings of answers")
    feedback_actions = feedback.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = feedback_actions.add_parser(
        "export", help="write the rated questions as an evaluation set to review (JSON Lines)"
    )
    export.add_argument("file", type=Path, help="the file to write (replaced once complete)")
    export.set_defaults(run=_feedback_export)
    return parser


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    paths = args.paths or [settings.seeds_dir]
    store = build_store(settings)
    report = ingest_paths(store, paths, progress=_progress_bar)
    for path, reason in report.failed:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    print(
        f"documents: {len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed, {len(report.failed)} failed\n"
        f"passages: {report.passages_written} written ({report.passages_embedded} embedded), "
        f"{report.passages_deleted} deleted, {store.count()} in store\n"
        f"seconds: {report.seconds:.2f}"
    )
    if store.count() >= settings.search_in_store_from:
        # So that no worker has to: a large corpus's lexical index on disk, brought up to date.
        corpus = build_corpus(settings, store)
        corpus.index()
        print(f"lexical index: {corpus.lexicon_path} up to date")
    return 0 if report.ok else 1


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        print(
            "error: reindex deletes this store's collections, then ingests the given paths again; "
            "run it with --yes to confirm",
            file=sys.stderr,
        )
        return 2
    dropped = drop_collections(
        MODEL_ID, data_dir=settings.data_dir, chroma_url=settings.chroma_url, collection=settings.collection
    )
    print(f"dropped: {', '.join(dropped) or 'nothing'}")
    args.paths = args.paths or [settings.seeds_dir]
    return _ingest(args, settings)


def _progress_bar(total: int) -> Callable[[int], None]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="passage", desc="embedding", file=sys.stderr, disable=total < 64 or None)

    def advance(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return advance


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    try:
        question = validate_question(args.question, settings.max_question_chars)
        history = _read_history(args.history) if args.history else []
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runtime = build_runtime(settings)
    answer = runtime.chain.answer(question, history, debug=args.debug)
    if args.json:
        print(answer.model_dump_json(indent=2, exclude_none=True))
        return 0
    print(answer.answer)
    if answer.fallback:
        print("(the language model did not answer usefully: this is the extractive answer)")
    if answer.unsupported:
        print(f"(statements without a source: {len(answer.unsupported)})")
    _print_passages("Closest passages (not an answer)", answer.related, numbered=False)
    _print_passages("Sources", answer.citations, numbered=True)
    if args.debug and answer.trace:
        print("\nTrace:")
        for step in answer.trace:
            print(f"  {step.stage}: {json.dumps(step.detail, ensure_ascii=False)[:400]}")
    return 0


def _print_passages(heading: str, passages: list[Citation], *, numbered: bool) -> None:
    if not passages:
        return
    print(f"\n{heading}:")
    for c in passages:
        where = f"{c.title} — {c.section}" if c.section else c.title
        print(f"  {f'[{c.id}]' if numbered else '-'} {where} ({c.document}, characters {c.start}-{c.end})")
        print(f"      « {c.text} »")


def _read_history(path: Path) -> list[Message]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [Message(**m) for m in raw]
    except (OSError, json.JSONDecodeError, TypeError, ValidationError) as exc:
        raise ValueError(f"cannot read history from {path}: {exc}") from exc


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from assistant.http.app import create_app
    from assistant.http.server import server_options

    host = args.host or settings.host
    port = args.port or settings.port
    # The host the server listens on is one of the names it answers to.
    settings = settings.model_copy(update={"host": host, "port": port})
    if args.workers < 1:
        print("error: --workers must be 1 or more", file=sys.stderr)
        return 2
    log.info("starting on http://%s:%d (store %s)", host, port, settings.chroma_url or settings.data_dir)
    options = server_options(settings, LOG_FORMAT, QUIET_LOGGERS)
    if args.workers == 1:
        # Built before the server starts, so that a store that cannot be used is named in
        # one line (see main), not inside the server's start-up traceback.
        runtime = build_runtime(settings)
        uvicorn.run(create_app(settings, runtime), host=host, port=port, **options)
        return 0
    # An embedded store belongs to one process; several workers share a Chroma server.
    if not settings.chroma_url:
        print("error: --workers above 1 needs a Chroma server: set ASSISTANT_CHROMA_URL", file=sys.stderr)
        return 2
    # Each worker's embedding engine runs threads of its own (OpenMP), and more of them than
    # cores wait at every step for a core another worker holds: on 2 cores, a run of the
    # question bank beside another took 3.5 times as long with two threads a process as
    # with one. Unless set, the workers share the cores out.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.workers)))
    # Each worker builds its own app from the environment: hand it the flags given here.
    os.environ.update(
        {
            "ASSISTANT_CHROMA_URL": settings.chroma_url,
            "ASSISTANT_COLLECTION": settings.collection,
            "ASSISTANT_HOST": host,
            "ASSISTANT_PORT": str(port),
        }
    )
    uvicorn.run(
        "assistant.http.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        # A worker answers uvicorn's health checks only once it has imported this package: on
        # a busy machine that can take longer than uvicorn's 5 s, and the worker gets killed.
        timeout_worker_healthcheck=30,
        **options,
    )
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    try:
        items = [item for path in args.files for item in load_cases(path)]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.document:
        items = [item for item in items if item.get("document") in args.document]
        if not items:
            print(f"error: no question is labelled with the document {' or '.join(args.document)}", file=sys.stderr)
            return 2
    runtime = build_runtime(settings)
    if runtime.store.count() == 0:
        print("error: the store is empty; run `assistant ingest` first", file=sys.stderr)
        return 1
    report = evaluate(runtime.chain, items)
    summary = report.summary()
    if args.json:
        cases = [c.__dict__ for c in report.cases]
        breakdown = {label: report.by(label) for label in args.by}
        print(json.dumps({"summary": summary, "by": breakdown, "cases": cases}, ensure_ascii=False, indent=2))
    else:
        print(f"{'id':32} {'ans':>3} {'found':>5} {'facts':>5} {'cite':>4} {'refus':>5} {'forbid':>6} {'ms':>6}")
        for c in report.cases:
            facts = "" if c.facts is None else f"{c.facts:.2f}"
            cited = _mark(c.cited_support)
            refused = _mark(c.refused_correctly)
            print(
                f"{c.id[:32]:32} {'yes' if c.answerable else 'no':>3} {c.found!s:>5} {facts:>5} {cited:>4} "
                f"{refused:>5} {','.join(c.forbidden):>6} {c.ms:6.1f}"
            )
        print()
        print_breakdown(report, args.by)
    failures = []
    if report.facts < args.min_facts:
        failures.append(f"facts {report.facts:.3f} < {args.min_facts}")
    if report.citation < args.min_citation:
        failures.append(f"citation {report.citation:.3f} < {args.min_citation}")
    if report.refusal < args.min_refusal:
        failures.append(f"refusal {report.refusal:.3f} < {args.min_refusal}")
    if report.forbidden > args.max_forbidden:
        failures.append(f"forbidden strings in {report.forbidden} answers > {args.max_forbidden}")
    for failure in failures:
        print(f"below threshold: {failure}", file=sys.stderr)
    return 1 if failures else 0


def print_breakdown(report: Report, labels: list[str]) -> None:
    """The overall figures, then one line per group of each label."""
    print(
        f"{'group':28} {'n':>4} {'answ':>4} {'facts':>6} {'cite':>6} {'refus':>6} {'doc':>6} {'forbid':>6} {'relat':>6}"
    )
    rows = [("all", report.summary())]
    for label in labels:
        rows += [(f"{label}={name}", figures) for name, figures in report.by(label).items()]
    for name, s in rows:
        print(
            f"{name[:28]:28} {s['questions']:>4} {s['answerable']:>4} {s['facts']:6.3f} {s['citation']:6.3f} "
            f"{s['refusal']:6.3f} {s['right_document']:6.3f} {s['forbidden']:>6} {s['related']:6.3f}"
        )
    s = report.summary()
    print(f"latency p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms")


def _calibrate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        items = [item for path in args.files for item in load_cases(path)]
        held_out = [item for path in args.validate for item in load_cases(path)]
        others = [(Path(folder), load_cases(Path(path))) for folder, path in args.also]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or settings.decision_weights or WEIGHTS
    # Retrieval does not depend on the weights: calibration needs none to start from.
    runtime = build_runtime(settings, decision=DecisionModel.untrained())
    if runtime.store.count() == 0:
        print("error: the store is empty; ingest the documents the questions are about first", file=sys.stderr)
        return 1
    chain = runtime.chain
    examples = gather(chain, items)
    other_chains = []
    for folder, questions in others:
        other = build_runtime(
            settings.model_copy(update={"data_dir": folder, "chroma_url": None}), decision=chain.decision
        )
        if other.store.count() == 0:
            print(f"error: the store in {folder} is empty", file=sys.stderr)
            return 1
        examples += gather(other.chain, questions)
        other_chains.append((folder, other.chain, questions))
    try:
        model = fit(examples, l2=args.l2, quote_limit=settings.max_citations)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    chain.decision = model.used(quick=settings.quick_decisions)
    for _, other_chain, _ in other_chains:
        other_chain.decision = chain.decision
    print(f"fitted on {len(examples)} questions; answer when the probability is at least {model.threshold:.2f}")
    print(f"quote passages of the answer's document within {model.extra_margin:g} of the best (ranker log-odds)")
    for name, weights in (("ranker", model.ranker), ("decider", model.decider)):
        print(f"{name}: " + ", ".join(f"{f} {w:+.2f}" for f, w in zip(weights.features, weights.weights, strict=True)))
    if model.quick is not None:
        low, high = model.quick.unsure
        share = model.notes.get("decided_without_the_focus_pass", 0.0)
        print(
            f"quick stage (no focus pass): trusted below {low:.2f} or above {high:.2f}, "
            f"{share:.0%} of the calibration questions that have a focus"
        )
    print("\ncalibration split:")
    print_breakdown(evaluate(chain, items), ["lang"])
    for folder, other_chain, questions in other_chains:
        print(f"\ncalibration questions asked of {folder}:")
        print_breakdown(evaluate(other_chain, questions), ["lang"])
    if held_out:
        print("\nvalidation split:")
        report = evaluate(chain, held_out)
        print_breakdown(report, ["lang", "kind", "style"])
        model.notes["validation"] = {k: v for k, v in report.summary().items() if not k.endswith("_ms")}
    model.save(out)
    print(f"\nweights written to {out}")
    return 0


def _feedback_export(args: argparse.Namespace, settings: Settings) -> int:
    try:
        counts = export_cases(database_path(settings), args.file, language=detect_language)
    except FeedbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"exported {counts.total()} rated questions to {args.file}: {counts['up_found']} approved answers, "
        f"{counts['up_not_found']} approved refusals, {counts['down']} rejected answers\n"
        "each needs a review before it joins a question set: its `review` field says what to check or fill"
    )
    return 0


def _mark(value: bool | None) -> str:
    return "" if value is None else ("ok" if value else "MISS")


if __name__ == "__main__":
    sys.exit(main())
