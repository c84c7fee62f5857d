"""Fidelity (#20): every paper of every real version we hold reads as its curator wrote it.

Over every version in ../shared/corpus/ (the 2023 history, the latest README, the feeds and the generated feed's
history) and ../shared/seeds/: each paper has a title, with no list numbering, no Markdown, HTML or table residue,
not running into its summary; each link is a well-formed http(s) URL; and the latest README's weeks hold as many
papers as weeks.tsv counts rows, but for the rows listed below that are not papers. The checks look only at what
the parser returns (what readers are shown), never at how it got there.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from conftest import read_tsv, shared_path

from bot.track.model import Document, Paper, Week
from bot.track.parsing import parse_document

LATEST_AS_OF = date(2025, 7, 20)  # the day the latest README was taken (corpus README)

# Rows weeks.tsv counts that are not papers, by week and line of the latest README: the Jan 1-8 2023 table's
# header and separator rows, padded with spaces, which the count took for rows.
NOT_PAPERS = {"2023-01-01..2023-01-08": (2130, 2131)}

_NUMBERING = re.compile(r"^\(?\d{1,3}\s?(?:\)|\.(?!\d))")  # "1)", "1).", "(1)", "1." but not "1.58-bit"
_RESIDUE = ("**", "[", "](", "<br", "|")
_HTML = re.compile(r"</?[A-Za-z][^>]*>|&(?:[a-z]+|#\d+|#x[0-9a-f]+);", re.IGNORECASE)
# A summary after the title: two spaces, a dash before a lower-case word, or a summary's opening words.
_RUNS_ON = re.compile(
    r" {2}|\s[-–—]{1,2}\s+[a-z]|\s[-–—]{1,2}$|●|\s(?:Introduces|Presents|Proposes|This (?:paper|work|study))\s[a-z]"
)
LONG_TITLE_WORDS = 20  # longer than any digest title; a row with no name must say so (an `untitled` defect)


def title_problems(p: Paper, week: Week | None, row: bool = True) -> list[str]:
    """What is wrong with a paper as readers see it (empty if nothing). `row`: title and summary shared a cell
    (digests), so a very long title is one that ran on; a feed entry's title is a field of its own."""
    t = p.title
    out = []
    if not t.strip():
        return ["empty title"]
    if _NUMBERING.match(t):
        out.append("list number")
    if t[0] in "*_" or t[-1] in "*_" or any(r in t for r in _RESIDUE) or _HTML.search(t):
        out.append("markup")
    if _RUNS_ON.search(t):
        out.append("runs into summary")
    untitled = week is not None and any(d.kind == "untitled" and d.line == p.line for d in week.defects)
    if row and len(t.split()) > LONG_TITLE_WORDS and not untitled:
        out.append("runs into summary")
    for lk in p.links:
        if not _well_formed(lk.url):
            out.append(f"bad link {lk.url[:60]}")
    return out


def _well_formed(url: str) -> bool:
    """An absolute http(s) URL with a host, nothing a reader's client would trip on."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and not re.search(r"[\s<>\"]", url)


def _versions(folder: Path) -> Iterator[tuple[str, bytes, date]]:
    """(name, bytes, as_of) of every version under corpus/ or seeds/."""
    if folder.name == "seeds":
        for f in sorted(folder.glob("*.txt")):
            yield f.name, f.read_bytes(), LATEST_AS_OF
        return
    history = folder / "dair-ai-2023"
    for row in read_tsv(history / "versions.tsv"):
        yield row["file"], (history / row["file"]).read_bytes(), date.fromisoformat(row["commit_date"][:10])
    yield "dair-ai-latest/README.md", (folder / "dair-ai-latest" / "README.md").read_bytes(), LATEST_AS_OF
    for f in sorted((folder / "feeds").glob("*.*")):
        yield f.name, f.read_bytes(), LATEST_AS_OF
    batch = folder / "feeds" / "the-batch-history"
    for row in read_tsv(batch / "index.tsv"):
        yield row["file"], (batch / row["file"]).read_bytes(), date.fromisoformat(row["commit_date"][:10])


def check_folder(folder: Path) -> tuple[int, int, list[str], Counter]:
    """(versions, papers checked, failures, failures by kind) over every version in the folder."""
    n_versions = n_papers = 0
    failures: list[str] = []
    kinds: Counter = Counter()
    distinct: dict[str, set[str]] = {}
    for name, data, as_of in _versions(folder):
        doc: Document = parse_document(data, as_of)
        n_versions += 1
        for week in doc.weeks:
            for p in week.papers:
                n_papers += 1
                for problem in title_problems(p, week, row=doc.format == "digest"):
                    kinds[problem.split(" http")[0]] += 1
                    distinct.setdefault(problem, set()).add(p.title)
                    failures.append(f"{name}:{p.line} ({week.key}) {problem}: {p.title[:90]!r}")
    for problem, titles in distinct.items():
        kinds[f"distinct titles with {problem}"] = len(titles)
    return n_versions, n_papers, failures, kinds


def _report(label: str, folder: Path) -> None:
    n_versions, n_papers, failures, kinds = check_folder(folder)
    print(f"\nfidelity #20, {label}: checked {n_papers} papers in {n_versions} versions; "
          f"{len(failures)} problems {dict(kinds)}")
    assert n_papers > 0
    assert not failures, f"{len(failures)} problems {dict(kinds)}; first ones:\n" + "\n".join(failures[:40])


def test_every_paper_of_the_corpus_reads_as_written():
    """#20: the 2023 history, the latest README, the feeds and the generated feed's history."""
    _report("corpus", shared_path("corpus"))


def test_every_paper_of_the_seeds_reads_as_written():
    """#20: the seeds the project was created from (two digests, a notes page)."""
    _report("seeds", shared_path("seeds"))


def test_latest_readme_weeks_hold_every_row_as_a_paper():
    """#20: each week of the latest README has a paper per row of weeks.tsv, but for rows listed as not papers."""
    folder = shared_path("corpus", "dair-ai-latest")
    text = (folder / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    doc = parse_document(text.encode("utf-8"), LATEST_AS_OF)
    rows = {r["key"]: int(r["rows"]) for r in read_tsv(folder / "weeks.tsv")}
    got = {w.key: w for w in doc.weeks}
    assert set(got) == set(rows)
    for key, week in got.items():
        skipped = NOT_PAPERS.get(key, ())
        assert len(week.papers) + len(skipped) == rows[key], key
        starts = {p.line for p in week.papers}
        for line in skipped:  # each listed row is a table row of this week, and no paper starts there
            assert week.line < line and lines[line - 1].lstrip().startswith("|") and line not in starts, (key, line)
    print(f"\nfidelity #20: {sum(len(w.papers) for w in doc.weeks)} papers in {len(got)} weeks match weeks.tsv "
          f"({sum(rows.values())} rows, {sum(map(len, NOT_PAPERS.values()))} of them not papers)")
