"""Late additions: papers that appear in a week after that week went out on a channel.

Each channel's edition of a week records the papers it held (`channel_editions.paper_keys`: the identity keys of
`paper_keys`). Once the week went out there, a paper of the week that matches nothing the channel carried for that
week (in its edition or as a late addition) is a late addition for that channel (`late_additions`): found once,
carried once by a later edition of the same source (`carried_in_key`), and delivered when that edition goes out.
A paper matches by any of its keys, so an edit of a paper already sent (a corrected summary, title or link) is a
correction, never an addition. Matching stays within the week: two weeks may list papers with the same link or
title (a generic link, a paper featured twice), and a paper of one week never hides a new one of another.

Nothing here reads the ledger or the clock: the caller says when a week went out (`went_out`), which carriers
reached nobody and may hand their papers on (`reached_nobody`), and what time it is. The replay (every edition
goes out the moment it is released) and the publishing pipeline (a week went out on a channel once one of its
deliveries there is `sent`) share this code.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.store import Store, iso, parse_time
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


def _paper_json(p: Paper) -> str:
    return json.dumps({
        "title": p.title, "summary": p.summary, "links": [[lk.label, lk.url] for lk in p.links],
        "number": p.number, "release_date": p.release_date.isoformat() if p.release_date else None,
        "authors": p.authors, "published": p.published, "uid": p.uid,
    }, ensure_ascii=False)


def _paper(text: str) -> Paper:
    d = json.loads(text)
    return Paper(title=d["title"], summary=d["summary"], links=tuple(Link(a, b) for a, b in d["links"]),
                 number=d["number"], release_date=date.fromisoformat(d["release_date"]) if d["release_date"] else None,
                 authors=d["authors"], published=d["published"], uid=d["uid"])


_COLUMNS = "id, source, week_key, channel, paper_key, keys, paper, found_at, carried_in_key, delivered_at"


def _row(r: tuple) -> LateRow:
    return LateRow(id=r[0], source=r[1], week_key=r[2], channel=r[3], paper_key=r[4], keys=tuple(json.loads(r[5])),
                   paper=_paper(r[6]), found_at=parse_time(r[7]), carried_in=r[8], delivered_at=parse_time(r[9]))


def _rows(store: Store, where: str, args: Sequence) -> list[LateRow]:
    sql = f"SELECT {_COLUMNS} FROM late_additions WHERE {where} ORDER BY id"
    return [_row(r) for r in store.db.execute(sql, list(args)).fetchall()]


# -- what each channel's edition of a week held ----------------------------------------------------------------
def edition_keys(store: Store, source: str, key: str, channel: str) -> set[str] | None:
    """The keys of the papers the channel's edition of the week held; None if nothing is recorded."""
    row = store.db.execute("SELECT paper_keys FROM channel_editions WHERE source = ? AND week_key = ? AND channel = ?",
                           [source, key, channel]).fetchone()
    return set(json.loads(row[0])) if row and row[0] is not None else None


def record_edition(store: Store, source: str, key: str, channel: str, papers: Iterable[Paper]) -> None:
    """Add `papers` to what the channel's edition of the week holds. Called before every rendering that may be
    sent, so the record holds every paper any reader of the channel got (a rendering that reached nobody adds
    nothing that the next one would not add too)."""
    keys = (edition_keys(store, source, key, channel) or set()) | {k for p in papers for k in paper_keys(p)}
    with store.atomic():
        store.db.execute("INSERT OR IGNORE INTO channel_editions (source, week_key, channel) VALUES (?, ?, ?)",
                         [source, key, channel])
        store.db.execute("UPDATE channel_editions SET paper_keys = ? WHERE source = ? AND week_key = ? "
                         "AND channel = ?", [json.dumps(sorted(keys), ensure_ascii=False), source, key, channel])


def mark_went_out(store: Store, source: str, key: str, channel: str, at: datetime) -> None:
    """The channel's edition of the week went out at `at`: so did the late papers it carries."""
    with store.atomic():
        store.db.execute("UPDATE channel_editions SET went_out_at = coalesce(went_out_at, ?) WHERE source = ? "
                         "AND week_key = ? AND channel = ?", [iso(at), source, key, channel])
        store.db.execute("UPDATE late_additions SET delivered_at = ? WHERE source = ? AND carried_in_key = ? "
                         "AND channel = ? AND delivered_at IS NULL", [iso(at), source, key, channel])


# -- finding late papers -----------------------------------------------------------------------------------------
def find(store: Store, source: str, channel: str, now: datetime, went_out: WentOut) -> list[LateRow]:
    """Record, as found at `now`, every paper of a week that went out on `channel` which the channel never carried
    for that week. Returns the new ones. A week is searched again only when its papers changed (fingerprint)."""
    weeks = {w.key: w for w in store.weeks(source) if w.late_of is None}
    found: list[LateRow] = []
    with store.atomic():
        eds = store.db.execute(
            "SELECT week_key, paper_keys, went_out_at, checked FROM channel_editions WHERE source = ? "
            "AND channel = ?", [source, channel]).fetchall()
        out = []
        for key, keys, at, checked in eds:
            if at is None and (t := went_out(key)) is not None:
                at = iso(t)
                mark_went_out(store, source, key, channel, t)
            if at is not None and key in weeks:
                out.append((key, keys, checked))
        todo = [e for e in out if e[1] is None or e[2] != weeks[e[0]].fingerprint]
        if not todo:
            return []
        todo.sort(key=lambda e: (weeks[e[0]].last_day or date.min, e[0]))
        for key, keys, _ in todo:
            papers = [p for _, p in store.papers(source, key)]
            if keys is None:  # sent before editions were recorded: what is there now counts as sent
                record_edition(store, source, key, channel, papers)
            else:
                carried = set(json.loads(keys))
                carried |= {k for r in _rows(store, "source = ? AND week_key = ? AND channel = ?",
                                             [source, key, channel]) for k in r.keys}
                for p in papers:
                    pk = paper_keys(p)
                    if carried.isdisjoint(pk):
                        cur = store.db.execute(
                            "INSERT OR IGNORE INTO late_additions (source, week_key, channel, paper_key, keys, "
                            "paper, found_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [source, key, channel, "\n".join(pk), json.dumps(pk, ensure_ascii=False), _paper_json(p),
                             iso(now)])
                        if cur.rowcount:
                            found.append(_rows(store, "id = ?", [cur.lastrowid])[0])
                        carried |= set(pk)
            store.db.execute("UPDATE channel_editions SET checked = ? WHERE source = ? AND week_key = ? "
                             "AND channel = ?", [weeks[key].fingerprint, source, key, channel])
    return found


def pending(store: Store, source: str | None, channel: str, now: datetime, wait: timedelta) -> bool:
    """Cheap: is there a week that went out and changed since it was last searched, or a late paper due alone?"""
    src, args = ("AND e.source = ? ", [channel, source]) if source else ("", [channel])
    changed = store.db.execute(
        "SELECT 1 FROM channel_editions e JOIN weeks w ON w.source = e.source AND w.key = e.week_key "
        f"WHERE e.channel = ? {src}AND e.went_out_at IS NOT NULL "
        "AND (e.paper_keys IS NULL OR e.checked IS NULL OR e.checked != w.fingerprint) LIMIT 1", args).fetchone()
    if changed:
        return True
    src = "AND source = ? " if source else ""
    due = store.db.execute(f"SELECT 1 FROM late_additions WHERE channel = ? {src}AND carried_in_key IS NULL "
                           "AND found_at <= ? LIMIT 1", [*args, iso(now - wait)]).fetchone()
    return due is not None


# -- carrying them -------------------------------------------------------------------------------------------------
def claimable(store: Store, source: str, channel: str, reached_nobody: ReachedNobody = lambda key: False,
              exclude: str | None = None) -> list[LateRow]:
    """Late papers not delivered and not carried by an edition still going out: the next edition takes them."""
    rows = _rows(store, "source = ? AND channel = ? AND delivered_at IS NULL", [source, channel])
    free: dict[str, bool] = {}
    out = []
    for r in rows:
        if r.carried_in == exclude and exclude is not None:
            continue
        if r.carried_in is None or free.setdefault(r.carried_in, reached_nobody(r.carried_in)):
            out.append(r)
    return out


def claim(store: Store, rows: Iterable[LateRow], key: str) -> None:
    """Edition `key` carries `rows` (call it in the transaction that plans the edition, so neither is without the
    other)."""
    with store.atomic():
        store.db.conn.executemany("UPDATE late_additions SET carried_in_key = ? WHERE id = ?",
                                  [(key, r.id) for r in rows])


def carried(store: Store, source: str, key: str, channel: str | None = None) -> list[LateRow]:
    """The late papers edition `key` carries on `channel` (on any channel, once each, for None)."""
    if channel is not None:
        return _rows(store, "source = ? AND carried_in_key = ? AND channel = ?", [source, key, channel])
    seen: set[tuple[str, str]] = set()
    out = []
    for r in _rows(store, "source = ? AND carried_in_key = ?", [source, key]):
        if (r.week_key, r.paper_key) not in seen:
            seen.add((r.week_key, r.paper_key))
            out.append(r)
    return out


def groups(store: Store, source: str, rows: Iterable[LateRow], own: Iterable[Paper] = ()) -> tuple[LateGroup, ...]:
    """Late papers by the week they were added to, oldest week first, each paper as the week holds it now (as
    found, if it was taken out since). A paper the edition holds as one of its own is not repeated."""
    mine = {k for p in own for k in paper_keys(p)}
    by_week: dict[str, list[LateRow]] = {}
    for r in rows:
        if mine.isdisjoint(r.keys):
            by_week.setdefault(r.week_key, []).append(r)
    out = []
    for key, rs in by_week.items():
        week = store.week(source, key)
        now = [p for _, p in store.papers(source, key)]
        papers = []
        for r in rs:
            papers.append(next((p for p in now if not set(r.keys).isdisjoint(paper_keys(p))), r.paper))
        out.append(LateGroup(key=key, title=week.title if week else key, first_day=week.first_day if week else None,
                             last_day=week.last_day if week else None, papers=tuple(papers)))
    out.sort(key=lambda g: (g.last_day or date.min, g.key))
    return tuple(out)


def deadline(rows: Iterable[LateRow], wait: timedelta) -> datetime | None:
    """When papers nobody carries yet go out alone: `wait` after the first of them was found."""
    found = [r.found_at for r in rows]
    return min(found) + wait if found else None


def standalone_key(store: Store, source: str, rows: Sequence[LateRow]) -> tuple[str, str]:
    """(key, week it is named after) of a new edition of late papers alone: "<newest week>+late<n>"."""
    weeks = {r.week_key for r in rows}
    known = {w.key: w for w in store.weeks(source)}
    orig = max(weeks, key=lambda k: (known[k].last_day or date.min, k) if k in known else (date.min, k))
    taken = set(known) | {r[0] for r in store.db.execute(
        "SELECT DISTINCT carried_in_key FROM late_additions WHERE source = ? AND carried_in_key IS NOT NULL",
        [source]).fetchall()}
    n = 1
    while f"{orig}{LATE_MARK}{n}" in taken:
        n += 1
    return f"{orig}{LATE_MARK}{n}", orig


def events(store: Store, source: str, rows: Iterable[LateRow], carrier: str, at: datetime) -> list[LateEvent]:
    """One event per week the papers were added to (for the replay's output)."""
    rows = list(rows)
    out = []
    for g in groups(store, source, rows):
        found = min(r.found_at for r in rows if r.week_key == g.key)
        out.append(LateEvent(source=source, week=g.key, title=g.title, papers=tuple(p.title for p in g.papers),
                             carried_in=carrier, at=at, found_at=found))
    return out
