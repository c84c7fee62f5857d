"""The small frozen values that flow through paperbot: what a parser returns and what a diff reports.

Everything here is plain data: no I/O, no clock. A `Week` is identified by its `key`
(`YYYY-MM-DD..YYYY-MM-DD` for digest weeks, `YYYY-Www` for notes pages and feeds).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import cached_property

FORMATS = ("auto", "digest", "notes", "feed")  # how a source's document is read (bot/track/parsing.py)


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Defect:
    """Something wrong in the source text, kept so the operator can see it; never fatal."""

    line: int  # 1-based line in the document
    kind: str  # placeholder | bad-url | missing-pipe | unbalanced-bold | missing-separator | numbering-gap |
    # number-style | untitled | ...
    text: str


@dataclass(frozen=True)
class Paper:
    title: str
    summary: str = ""
    links: tuple[Link, ...] = ()
    number: int | None = None
    release_date: date | None = None
    authors: str = ""
    published: str | None = None  # ISO datetime, feeds only
    uid: str = ""  # stable id for feed entries / notes sections
    line: int = 0  # where the paper starts in the document (not part of its identity)
    # False when the title was not set off by markup (a row without bold, split where the summary seemed to
    # start): arXiv's title may then stand in for it (#32). Not part of the paper's identity or equality.
    title_marked: bool = field(default=True, compare=False)

    def fingerprint_data(self) -> dict:
        """The fields whose change counts as an edit of the paper (line numbers do not)."""
        return {
            "number": self.number,
            "title": self.title,
            "summary": self.summary,
            "links": [[lk.label, lk.url] for lk in self.links],
            "release_date": self.release_date.isoformat() if self.release_date else None,
            "authors": self.authors,
            "uid": self.uid,
        }


@dataclass(frozen=True)
class Week:
    key: str
    title: str
    papers: tuple[Paper, ...] = ()
    defects: tuple[Defect, ...] = ()
    line: int = 0  # line of the heading
    first_day: date | None = None
    last_day: date | None = None
    text_hash: str = ""  # hash of the section's raw text: any change to it is an edit

    @property
    def has_placeholders(self) -> bool:
        return any(d.kind == "placeholder" for d in self.defects)

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.papers)


@dataclass(frozen=True)
class Document:
    """One version of a source, parsed."""

    format: str  # digest | notes | feed
    weeks: tuple[Week, ...] = ()  # newest first, as the document lists them
    defects: tuple[Defect, ...] = ()  # defects outside any week (an undated week heading, say)


@dataclass(frozen=True)
class Diff:
    new: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    renamed: dict[str, str] = field(default_factory=dict)  # known key -> key in the new version
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


def fingerprint(papers: tuple[Paper, ...] | list[Paper]) -> str:
    """A short hash of the parsed papers: equal fingerprints mean nothing a reader sees changed."""
    blob = json.dumps([p.fingerprint_data() for p in papers], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def paper_to_json(p: Paper) -> dict:
    d = {
        "number": p.number,
        "title": p.title,
        "summary": p.summary,
        "links": [asdict(lk) for lk in p.links],
        "release_date": p.release_date.isoformat() if p.release_date else None,
    }
    if p.authors:
        d["authors"] = p.authors
    if p.published:
        d["published"] = p.published
    if p.uid:
        d["id"] = p.uid
    return d


def week_to_json(w: Week) -> dict:
    return {
        "key": w.key,
        "title": w.title,
        "papers": [paper_to_json(p) for p in w.papers],
        "defects": [asdict(d) for d in w.defects],
    }


@dataclass(frozen=True)
class ArxivRecord:
    """What arXiv's own record says about a paper (#32): fetched by bot/sources/arxiv_api.py, cached in the store,
    shown beside what the curator wrote (never instead of it, and never part of a paper's identity). Untrusted
    text, like a digest's."""

    arxiv_id: str  # no version: `2303.08774`, `cs/0112017`
    title: str
    authors: tuple[str, ...] = ()
    abstract: str = ""
    primary_category: str = ""
    categories: tuple[str, ...] = ()
    published: str = ""  # ISO datetime of version 1
    updated: str = ""  # ISO datetime of the latest version
