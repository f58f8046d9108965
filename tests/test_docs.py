"""The README is part of the product: its contents list (the docs index) must match its sections,
the sections a user relies on must be there, and what it cites (tests, files) must exist.

A section deleted, renamed without its index entry, or a reliability row citing a test that was
renamed away fails here instead of going unnoticed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BENCH_README = ROOT / "bench" / "README.md"

#: Sections every version of the README must keep (slug prefixes of their headings).
REQUIRED = ("quick-start", "using-it", "experiment-configs", "the-headline", "reliability",
            "security", "results-in-brief", "development")

RELIABILITY = "Reliability: faults survived, bad input refused"
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_NODE_ID = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(path: Path) -> dict[str, str]:
    """slug -> heading text, for every `#`..`####` heading outside code blocks."""
    out, fenced = {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,4} (.+)", line)):
            out[_slug(m.group(1))] = m.group(1)
    return out


def reliability_tests() -> list[str]:
    """The test node ids the README's reliability table cites (`make test-faults` runs the slow
    ones in CI)."""
    table = _section(README.read_text(encoding="utf-8"), RELIABILITY)
    return sorted({f"{file}::{name}" for file, name in _NODE_ID.findall(table) if name})


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    if match is None:
        raise AssertionError(f"README.md has no '## {title}' section")
    return match.group(1)


def _contents() -> list[tuple[Path, str]]:
    """(file, anchor) of every entry in the README's contents list."""
    entries = []
    for _, target in _LINK.findall(_section(README.read_text(encoding="utf-8"), "Contents")):
        path, _, anchor = target.partition("#")
        entries.append(((README.parent / path) if path else README, anchor))
    return entries


def test_every_contents_entry_is_a_heading_that_exists() -> None:
    missing = []
    for path, anchor in _contents():
        if not path.exists():
            missing.append(f"{path.relative_to(ROOT)} (file)")
        elif anchor and anchor not in _headings(path):
            missing.append(f"{path.relative_to(ROOT)}#{anchor}")
    assert not missing, f"the README's Contents lists sections that do not exist: {missing}"


def test_required_sections_are_listed_and_present() -> None:
    listed = [anchor for path, anchor in _contents() if path == README]
    present = _headings(README)
    for prefix in REQUIRED:
        assert any(a.startswith(prefix) for a in listed), f"Contents does not list '{prefix}…'"
        assert any(s.startswith(prefix) for s in present), f"README.md lost its '{prefix}…' section"


def test_every_readme_section_is_in_the_contents() -> None:
    listed = {anchor for path, anchor in _contents() if path == README}
    text = README.read_text(encoding="utf-8")
    sections = [_slug(h) for h in re.findall(r"^## (.+)$", text, re.M)]
    unlisted = [s for s in sections if s != "contents" and s not in listed]
    assert not unlisted, f"add these README sections to its Contents list: {unlisted}"


def test_the_measurement_narratives_have_a_home() -> None:
    bench = _headings(BENCH_README)
    for prefix in ("controllers", "child-training", "search-overhead", "headline",
                   "latency-fidelity", "history-of-these-figures", "make-search-on-a-fresh-clone"):
        assert any(s.startswith(prefix) for s in bench), f"bench/README.md lost '{prefix}…'"


@pytest.mark.parametrize("doc", [README, BENCH_README], ids=["README", "bench/README"])
def test_cited_tests_and_files_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    problems = []
    for file, name in _NODE_ID.findall(text):
        path = ROOT / file
        if not path.exists():
            problems.append(file)
        elif name and not re.search(rf"^def {name}\(", path.read_text(encoding="utf-8"), re.M):
            problems.append(f"{file}::{name}")
    for _, target in _LINK.findall(text):
        path = target.partition("#")[0]
        if path and "://" not in path and not (doc.parent / path).exists():
            problems.append(path)
    assert not problems, f"{doc.relative_to(ROOT)} cites what does not exist: {problems}"


def test_every_reliability_row_cites_a_test() -> None:
    table = _section(README.read_text(encoding="utf-8"), RELIABILITY)
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| fault")]
    assert len(rows) >= 10, "the reliability table lost rows"
    for row in rows:
        assert _NODE_ID.search(row.rsplit("|", 2)[1]), f"reliability row without a test: {row}"
    assert len(reliability_tests()) >= 10


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--reliability-tests"]:
        sys.exit("usage: python tests/test_docs.py --reliability-tests")
    print(" ".join(reliability_tests()))
