"""Late additions, the pure part: how a paper is recognised across versions, and which papers of a week are new
to what a channel already carried for it.

A paper that appears in a week after that week went out on a channel is a late addition for that channel: found
once, carried once by a later edition of the same source, delivered when that edition goes out. Publishing
keeps that record (bot/publish/late.py: which papers went out where, which edition carries what;
bot/edition/holdings.py reads it back). What is here touches no store and no clock.
A paper matches by any of its keys, so an edit of a paper already sent (a corrected summary, title or link) is a
correction, never an addition. Matching stays within the week: two weeks may list papers with the same link or
title (a generic link, a paper featured twice), and a paper of one week never hides a new one of another.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.track.diff import norm_title
from bot.track.model import Link, Paper
from bot.track.tracker import same_entry

_PLACEHOLDER = re.compile(r"\bX{3,}\b")  # as bot/track/parse_digest.py marks an unfinished row
LATE_MARK = "+late"  # an edition of late papers alone is keyed "<week key>+late1"
TITLE = "Added to earlier weeks"

WentOut = Callable[[str], datetime | None]  # week key -> when it went out on the channel, or None
ReachedNobody = Callable[[str], bool]  # carrier key -> it finished without reaching anyone


def paper_keys(p: Paper) -> tuple[str, ...]:
    """How a paper is recognised across versions: its entry id when it has one (feeds, notes), else its
    normalised title and its first link, either of which may be corrected without making it a new paper. A row
    whose title is still a placeholder (`XXX`) is known by that alone: once filled in, it is a new paper."""
    if p.uid.strip():
        return (f"id:{same_entry(p.uid)}",)
    keys = []
    if title := norm_title(p.title):
        keys.append(f"title:{title}")
    if _PLACEHOLDER.search(p.title) and keys:
        return tuple(keys)
    if p.links and p.links[0].url.strip():
        keys.append(f"url:{same_entry(p.links[0].url)}")
    if not keys:
        keys.append("text:" + hashlib.sha256(p.summary.encode("utf-8")).hexdigest()[:16])
    return tuple(keys)


@dataclass(frozen=True)
class LateRow:
    id: int
    source: str
    week_key: str  # the week the paper was added to
    channel: str
    paper_key: str
    keys: tuple[str, ...]
    paper: Paper  # as it was when found
    found_at: datetime
    carried_in: str | None  # the later edition carrying it
    delivered_at: datetime | None  # when that edition went out


@dataclass(frozen=True)
class LateGroup:
    """Papers added to one earlier week, as a later edition carries them (channel-neutral)."""

    key: str
    title: str
    first_day: date | None
    last_day: date | None
    papers: tuple[Paper, ...]


@dataclass(frozen=True)
class LateEvent:
    """For the replay: papers added to `week` reached readers in edition `carried_in` at `at`."""

    source: str
    week: str
    title: str
    papers: tuple[str, ...]  # titles
    carried_in: str
    at: datetime
    found_at: datetime  # the earliest of them was found then


def paper_json(p: Paper) -> str:
    return json.dumps({
        "title": p.title, "summary": p.summary, "links": [[lk.label, lk.url] for lk in p.links],
        "number": p.number, "release_date": p.release_date.isoformat() if p.release_date else None,
        "authors": p.authors, "published": p.published, "uid": p.uid,
    }, ensure_ascii=False)


def paper_from_json(text: str) -> Paper:
    d = json.loads(text)
    return Paper(title=d["title"], summary=d["summary"], links=tuple(Link(a, b) for a, b in d["links"]),
                 number=d["number"], release_date=date.fromisoformat(d["release_date"]) if d["release_date"] else None,
                 authors=d["authors"], published=d["published"], uid=d["uid"])


def new_papers(papers: Iterable[Paper], carried: set[str]) -> list[tuple[Paper, tuple[str, ...]]]:
    """The papers (with their keys) that match nothing in `carried` (the keys a channel already carried for the
    week), each added to `carried` as it is taken, so a paper listed twice is new once."""
    out = []
    for p in papers:
        pk = paper_keys(p)
        if carried.isdisjoint(pk):
            out.append((p, pk))
            carried |= set(pk)
    return out


def deadline(rows: Iterable[LateRow], wait: timedelta) -> datetime | None:
    """When papers nobody carries yet go out alone: `wait` after the first of them was found."""
    found = [r.found_at for r in rows]
    return min(found) + wait if found else None
