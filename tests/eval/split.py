"""Deal questions into the calibration, validation and test sets.

``python tests/eval/split.py bank.jsonl...`` splits a whole bank once;
``python tests/eval/split.py --append new.jsonl...`` deals new questions the same way and
adds them to the end of the three files, leaving every question already dealt where it
is. Questions are grouped by document and kind, shuffled by a hash of their id, and dealt
out calibration, validation, test, calibration: every document and every kind is in
every split, half of them in calibration. The test split is locked: nothing is fitted or
adjusted on it, and CI gates on it.
"""

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEAL = ("calibration", "validation", "test", "calibration")

append = "--append" in sys.argv[1:]
paths = [a for a in sys.argv[1:] if a != "--append"]
items = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.strip()]
groups: dict[tuple[str, str], list[dict]] = {}
for item in items:
    groups.setdefault((item["document"], item["kind"]), []).append(item)
splits: dict[str, list[dict]] = {name: [] for name in DEAL}
for _, group in sorted(groups.items()):
    group.sort(key=lambda item: hashlib.sha256(item["id"].encode()).hexdigest())
    for n, item in enumerate(group):
        splits[DEAL[n % len(DEAL)]].append(item)
for name, chosen in splits.items():
    lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in chosen)
    target = HERE / f"{name}.jsonl"
    before = target.read_text(encoding="utf-8") if append and target.exists() else ""
    target.write_text(before + lines, encoding="utf-8")
    print(name, len(chosen))
