"""A large corpus of real French text, from Debian's French documentation packages.

    apt-get install debian-reference-fr debian-handbook developers-reference-fr \\
        gimp-help-fr libreoffice-help-fr

`fit(folder, passages)` fills a folder with documents until it holds at least that many
citable passages, taking one document from each package in turn, so every size mixes
every kind of text (system administration, packaging rules, image editing, office help)
with the seed article. The order is fixed, so a smaller corpus is the start of a larger one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

from vectorstore.documents import DocumentError, discover, load
from vectorstore.ingest import PASSAGE_RULES, citable_passages

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Source:
    """One documentation package: where its French HTML pages are installed."""

    package: str
    folder: Path
    suffix: str = ".html"


SOURCES = (
    Source("debian-reference-fr", Path("/usr/share/debian-reference"), ".fr.html"),
    Source("debian-handbook", Path("/usr/share/doc/debian-handbook/html/fr-FR")),
    Source("developers-reference-fr", Path("/usr/share/developers-reference/fr")),
    Source("gimp-help-fr", Path("/usr/share/gimp/2.0/help/fr")),
    Source("libreoffice-help-fr", Path("/usr/share/libreoffice/help/fr")),
)


def available() -> list[Source]:
    """The sources installed on this machine."""
    return [s for s in SOURCES if s.folder.is_dir()]


def candidates() -> list[tuple[str, Path, Path]]:
    """Every document in corpus order: (name in the corpus, file, the root it is read from)."""
    seeds = [(f"seeds/{f.relative_to(r)}", f, r) for f, r in discover([ROOT / "seeds"])[0]]
    per_source = []
    for source in available():
        files = [f for f, _ in discover([source.folder])[0] if f.name.endswith(source.suffix)]
        per_source.append([(f"{source.package}/{f.relative_to(source.folder)}", f, source.folder) for f in files])
    interleaved = [item for group in zip_longest(*per_source) for item in group if item is not None]
    return seeds + interleaved


def fit(folder: Path, passages: int) -> tuple[int, int]:
    """Make `folder` hold the first documents of the corpus order that reach `passages`
    citable passages (within 10 %): copying what is missing, removing what is beyond.

    Returns (documents, passages). A manifest in the folder keeps each document's passage
    count, so resizing reads only documents not counted before.
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / ".manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    counts: dict[str, int] = manifest.get("counts", {}) if manifest.get("rules") == PASSAGE_RULES else {}
    chosen: list[str] = []
    total = 0
    for name, file, root in candidates():
        if total >= passages:
            break
        if name not in counts:
            try:
                counts[name] = len(citable_passages(load(file, root)))
            except DocumentError:
                counts[name] = 0
        if not counts[name] or (total and total + counts[name] > passages * 1.1):
            continue  # nothing to cite, or so large a document would overshoot the size
        target = folder / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
        chosen.append(name)
        total += counts[name]
    keep = set(chosen)
    for file, _ in discover([folder])[0]:
        if file.relative_to(folder).as_posix() not in keep:
            file.unlink()
    manifest_path.write_text(json.dumps({"rules": PASSAGE_RULES, "counts": counts}))
    if total < passages:
        missing = " ".join(s.package for s in SOURCES if s not in available())
        raise SystemExit(f"only {total} passages available; install more packages: apt-get install {missing}")
    return len(chosen), total
