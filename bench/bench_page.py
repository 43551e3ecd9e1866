"""Benchmark: how fast the chat page feels, measured in the browser (Debian's Chromium).

    .venv/bin/python bench/bench_page.py [--questions 20]

A fresh `assistant serve` over the seeds (nothing asked before), the page opened in
Chromium, and questions it has never seen typed and sent with Enter, each in a new
conversation: 16 from the question bank and 4 long ones (700 to 900 characters). For each,
from the Enter key's event to the frame after the page shows it: the first visible
feedback ("Searching the documents…"), the sources, and the first text of the answer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, quantile, question_items, start_server, stop, wait_until
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

# Times, on the page's clock, of Enter and of the frames after the answer's progress line,
# its sources and its first text appear.
PROBE = """
(() => {
  const times = (window.__times = {});
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.id === "question") {
      for (const k of Object.keys(times)) delete times[k];
      times.enter = event.timeStamp;
    }
  }, true);
  const seen = (name) => {
    if (times[name] !== undefined || times.enter === undefined) return;
    times[name] = -1;
    requestAnimationFrame(() => { times[name] = performance.now(); });
  };
  new MutationObserver(() => {
    const answer = document.querySelector(".message.assistant:last-child");
    if (!answer) return;
    if (answer.querySelector(".progress")) seen("feedback");
    if (answer.querySelector(".sources li")) seen("sources");
    const text = answer.querySelector(".text");
    if (text && text.textContent.trim()) seen("text");
  }).observe(document, { childList: true, subtree: true, characterData: true });
})();
"""


def questions(count: int) -> list[str]:
    """Never-seen questions: from the bank (single turns), and long ones built from them."""
    bank = [i["question"] for i in question_items() if not i.get("history")]
    long = []
    for start in range(0, 40, 10):
        text = ""
        for q in bank[start:]:
            if len(text) + len(q) + 1 > 850:
                break
            text = f"{text} {q}".strip()
        long.append(text)
    short = bank[40 : 40 + count - len(long)]
    return short + long[: count - len(short)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-page-"))
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(work / "data")}
    subprocess.run([str(BIN / "assistant"), "ingest"], env=env, check=True, capture_output=True)
    server, url = start_server(work / "data")
    rows = []
    try:
        wait_until(f"{url}/readyz", server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page(locale="fr-FR", viewport={"width": 1280, "height": 820})
            page.add_init_script(PROBE)
            page.goto(url)
            page.wait_for_selector("#starters li button")
            for question in questions(args.questions):
                page.click("#new-conversation")
                page.fill("#question", question)
                page.press("#question", "Enter")
                page.wait_for_function("() => window.__times.text > 0", timeout=60_000)
                page.locator(".message.assistant:not(.streaming)").wait_for(timeout=60_000)
                t = page.evaluate("() => window.__times")
                since = {k: (t[k] - t["enter"] if t.get(k, -1) > 0 else None) for k in ("feedback", "sources", "text")}
                rows.append((len(question), since["feedback"], since["sources"], since["text"]))
                shown = "  ".join(f"{k} {'   -   ' if v is None else f'{v:7.1f}'}" for k, v in since.items())
                print(f"{len(question):4d} chars  {shown} ms  {question[:50]}")
            browser.close()
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{len(rows)} never-seen questions, from Enter to the frame showing it (ms; sources only for answers):")
    for name, column in (("first feedback", 1), ("sources", 2), ("first answer text", 3)):
        values = [r[column] for r in rows if r[column] is not None]
        print(
            f"  {name:18s} median {statistics.median(values):7.1f}  p90 {quantile(values, 0.9):7.1f}"
            f"  max {max(values):7.1f}"
        )
    long_rows = [r for r in rows if r[0] >= 700]
    if long_rows:
        print(
            f"  long questions ({len(long_rows)}, 700+ chars): feedback max {max(r[1] for r in long_rows):.1f}, "
            f"first text median {statistics.median(r[3] for r in long_rows):.1f}"
        )


if __name__ == "__main__":
    main()
