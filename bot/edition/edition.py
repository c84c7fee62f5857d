"""What one channel's edition of a week holds: the week's own papers, then the papers added to earlier weeks of the
same source that it carries ("Added to earlier weeks"). Channel-neutral: email, X and Discord each render an
`Edition`, and the web app shows one.

Read from the store as publishing recorded it (bot/edition/holdings.py): an edition whose week was planned for
real (or went out) on the channel keeps the papers it was planned with (what came later is late, for everyone);
before it is planned, it would carry the late papers nobody carries yet. Finding, claiming and delivering those
late papers is publishing's (bot/publish/late.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property

from bot.edition import holdings
from bot.store import Store, WeekRow
from bot.track.arxiv_ids import first_arxiv_id
from bot.track.late import LateGroup, LateRow, paper_keys
from bot.track.model import ArxivRecord, Paper


@dataclass(frozen=True)
class Edition:
    source: str
    key: str
    title: str
    first_day: date | None
    last_day: date | None
    papers: tuple[Paper, ...]
    late: tuple[LateGroup, ...] = ()  # papers added to earlier weeks, after the week's own
    late_only: bool = False  # an edition of late papers alone ("<key>+late1"): no papers of its own
    note: str = ""  # the editor's note (`paperbot note`), shown at the top; "" for none
    # arXiv's records of its papers (#32): what the cache held when the edition was planned on its channel
    # (everything, for the web copy); shown beside what the curator wrote, never part of a paper's identity.
    arxiv: tuple[ArxivRecord, ...] = ()

    @property
    def late_papers(self) -> int:
        return sum(len(g.papers) for g in self.late)

    @cached_property
    def _records(self) -> dict[str, ArxivRecord]:
        return {r.arxiv_id: r for r in self.arxiv}

    def record(self, paper: Paper) -> ArxivRecord | None:
        """arXiv's record of `paper`, if it links arXiv and the edition carries the record."""
        found = first_arxiv_id(lk.url for lk in paper.links) if self.arxiv else None
        return self._records.get(found) if found else None


def own_papers(store: Store, week: WeekRow, channel: str | None) -> tuple[Paper, ...]:
    """The week's papers on `channel`: once the week is planned there for real (or went out), only those it was
    planned with: its units were counted from them (a thread's posts), so a paper added later is a late one,
    carried by the next edition, never a unit nobody planned (issue #15)."""
    papers = tuple(p for _, p in store.papers(week.source, week.key))
    if channel is None or week.late_of is not None:
        return papers
    if (not holdings.planned(store, week.source, week.key, channel)
            and holdings.went_out_at(store, week.source, week.key, channel) is None):
        return papers
    keys = holdings.edition_keys(store, week.source, week.key, channel)
    if keys is None:
        return papers
    return tuple(p for p in papers if not keys.isdisjoint(paper_keys(p)))


def late_rows(store: Store, week: WeekRow, channel: str | None) -> list[LateRow]:
    """The late papers the edition carries on `channel`; before it is planned there, those it would take. For
    None (the web copy), what it carries on any channel."""
    if channel is None:
        return holdings.carried(store, week.source, week.key)
    rows = holdings.carried(store, week.source, week.key, channel)
    if holdings.planned(store, week.source, week.key, channel) is None:
        rows += holdings.claimable(store, week.source, channel,
                                   holdings.reached_nobody_on(store, week.source, channel), exclude=week.key)
    return rows


def edition_from_store(store: Store, source: str, key: str, channel: str | None = None) -> Edition:
    """The stored week `source`/`key` as `channel` sends it (None: the web copy); KeyError if there is no such
    week."""
    week = store.week(source, key)
    if week is None:
        raise KeyError(f"no week {key!r} in source {source!r}")
    papers = own_papers(store, week, channel)
    groups = holdings.groups(store, source, late_rows(store, week, channel), papers)
    every = [*papers, *(p for g in groups for p in g.papers)]
    known_by = holdings.planned_at(store, source, key, channel) if channel is not None else None
    ids = {i for p in every if (i := first_arxiv_id(lk.url for lk in p.links))}
    records = tuple(store.arxiv_records(ids, known_by).values()) if ids else ()
    return Edition(source, key, week.title, week.first_day, week.last_day, papers, groups,
                   late_only=week.late_of is not None, note=store.note(source, key), arxiv=records)
