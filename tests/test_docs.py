"""The documentation: links that resolve (files and anchors), a front page a newcomer reads
in minutes, and a configuration page that names every setting with its default."""

import re
from pathlib import Path

import pytest

from assistant.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def prose(text: str) -> str:
    """Markdown without its code blocks and inline code (where brackets are not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text(encoding="utf-8")), re.M)
    return {anchor(h) for h in headings}


def broken_links(page: Path) -> list[str]:
    """Relative links of a page whose file or anchor does not exist."""
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and (linked.suffix != ".md" or fragment not in anchors(linked)):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Running at scale\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n[ok](other.md#running-at-scale) [self](#title) [web](https://example.org/x)\n"
        "[gone](missing.md) [no anchor](other.md#nowhere) [here](#nothing)\n"
        "```\n[in code](not-checked.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nowhere: no heading #nowhere in other.md",
        "#nothing: no heading #nothing in page.md",
    ]


def test_the_front_page_is_short_and_links_every_page_of_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "make run" in readme and "make test" in readme
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(prose(readme))}
    assert set((ROOT / "docs").glob("*.md")) | {ROOT / "CONTRIBUTING.md"} <= linked


def documented_settings() -> dict[str, str]:
    """Each variable of the configuration page's tables, with its default cell."""
    rows = {}
    for line in (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3:
            for name in re.findall(r"`(ASSISTANT_[A-Z0-9_]+)`", cells[0]):
                rows[name] = cells[1]
    return rows


def test_the_configuration_page_names_every_setting_and_its_default() -> None:
    documented = documented_settings()
    fields = {f"ASSISTANT_{name.upper()}": field for name, field in Settings.model_fields.items()}
    assert sorted(set(fields) - set(documented)) == [], "settings missing from docs/configuration.md"
    assert sorted(set(documented) - set(fields)) == [], "docs/configuration.md names unknown settings"
    for name, field in fields.items():
        default = field.default
        if isinstance(default, bool):
            assert f"`{str(default).lower()}`" in documented[name], name
        elif isinstance(default, int | float):
            shown = [float(n.replace(",", "")) for n in re.findall(r"`(\d[\d,]*(?:\.\d+)?)`", documented[name])]
            assert float(default) in shown, f"{name}: default {default}, documented {documented[name]}"
