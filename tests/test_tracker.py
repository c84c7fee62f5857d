"""The tracker: first poll baseline/backfill, the gate (last day, settle, placeholders, max_wait), and
ready-once, recorded in a real SQLite file that survives a restart."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import PublishSettings, SourceConfig
from bot.store import Store
from bot.track.gate import source_clock, usual_offset
from bot.track.parse_digest import parse_digest
from bot.track.parsing import parse_document
from bot.track.tracker import next_gate, observe, release

SETTINGS = PublishSettings(settle=timedelta(hours=2), max_wait=timedelta(hours=48), backfill=1)


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC) if "+" not in s else datetime.fromisoformat(s)


def week(heading: str, rows: list[str]) -> str:
    body = "\n".join(f"| {i}) **{r}** - about {r}. | [Paper](https://example.org/{r.replace(' ', '')}) |"
                     for i, r in enumerate(rows, 1))
    return f"## Top ML Papers of the Week ({heading})\n| **Paper** | **Links** |\n| --- | --- |\n{body}\n\n"


class Feed:
    """Feeds versions of one source through a tracker kept in a SQLite file on disk."""

    def __init__(self, path, settings=SETTINGS, source="digest"):
        self.path, self.settings, self.source, self.n = path, settings, source, 0
        self.store = Store.open(path)

    def version(self, text: str, at: str):
        self.n += 1
        when = t(at)
        doc = parse_digest(text, when.date())
        return observe(self.store, self.source, doc, when, f"v{self.n}", self.settings)

    def release(self, at: str):
        return [r.key for r in release(self.store, t(at), self.settings)]

    def state(self, key: str) -> str:
        return self.store.week(self.source, key).state

    def reopen(self):
        self.store.close()
        self.store = Store.open(self.path)


FEB = "2023-02-20..2023-02-26"
MAR = "2023-02-27..2023-03-05"


def test_first_poll_is_baseline_except_backfill(tmp_path):
    f = Feed(tmp_path / "s.db")
    obs = f.version(week("Feb 27-Mar 5", ["A"]) + week("Feb 20-26", ["B"]) + week("Feb 13-19", ["C"]),
                    "2023-03-07T10:00:00")
    assert obs.first_poll and obs.new == (MAR,) and set(obs.baseline) == {FEB, "2023-02-13..2023-02-19"}
    # A backfilled week has no settle wait: its age is unknown. It is past its last day: ready now.
    assert f.release("2023-03-07T10:00:00") == [MAR]
    assert f.state(FEB) == "baseline"


def test_gate_waits_for_last_day_and_settle_then_ready_once(tmp_path):
    f = Feed(tmp_path / "s.db")
    base = week("Feb 20-26", ["B"])
    f.version(base, "2023-02-27T12:00:00")
    assert f.release("2023-02-27T12:00:00") == [FEB]  # backfill
    # The new week appears on its last day, unfinished; then a row is added.
    f.version(week("Feb 27-Mar 5", ["A"]) + base, "2023-03-05T20:00:00")
    assert f.state(MAR) == "pending"
    assert f.release("2023-03-05T23:59:59") == []  # last day not over
    f.version(week("Feb 27-Mar 5", ["A", "A2"]) + base, "2023-03-05T23:30:00")
    assert f.release("2023-03-06T01:29:59") == []  # not settled: changed at 23:30
    assert next_gate(f.store, SETTINGS) == t("2023-03-06T01:30:00")
    assert f.release("2023-03-06T01:30:00") == [MAR]
    # An edit afterwards changes the papers but never makes the week new or ready again.
    obs = f.version(week("Feb 27-Mar 5", ["A", "A2", "A3"]) + base, "2023-03-08T00:00:00")
    assert obs.new == () and obs.edited == (MAR,)
    assert f.release("2023-03-20T00:00:00") == []
    assert f.state(MAR) == "ready"
    # It vanishes and comes back: still the same ready week.
    f.version(base, "2023-03-09T00:00:00")
    obs = f.version(week("Feb 27-Mar 5", ["A"]) + base, "2023-03-10T00:00:00")
    assert obs.new == () and f.release("2023-04-01T00:00:00") == []


def test_placeholders_wait_for_max_wait_and_are_flagged(tmp_path, caplog):
    f = Feed(tmp_path / "s.db")
    f.version(week("Feb 20-26", ["B"]), "2023-02-27T12:00:00")
    f.release("2023-02-27T12:00:00")
    f.version(week("Feb 27-Mar 5", ["A", "XXX"]) + week("Feb 20-26", ["B"]), "2023-03-06T08:00:00")
    assert f.release("2023-03-08T07:59:59") == []
    with caplog.at_level(logging.WARNING):
        assert f.release("2023-03-08T08:00:00") == [MAR]
    assert f.store.week("digest", MAR).flagged
    assert "flagged" in caplog.text


def test_max_wait_never_before_last_day(tmp_path):
    f = Feed(tmp_path / "s.db", PublishSettings(settle=timedelta(hours=2), max_wait=timedelta(hours=1)))
    f.version("", "2023-02-01T00:00:00")
    f.version(week("Feb 27-Mar 5", ["XXX"]), "2023-02-27T00:00:00")
    assert f.release("2023-03-05T23:00:00") == []
    assert f.release("2023-03-06T00:00:00") == [MAR]


def test_timezone_decides_when_the_last_day_is_over(tmp_path):
    tz = ZoneInfo("America/Chicago")
    f = Feed(tmp_path / "s.db", PublishSettings(settle=timedelta(0), timezone=tz))
    f.version("", "2023-02-01T00:00:00")
    f.version(week("Feb 27-Mar 5", ["A"]), "2023-03-05T12:00:00")
    assert f.release("2023-03-06T05:59:59") == []  # still Mar 5 in Chicago
    assert f.release("2023-03-06T06:00:00") == [MAR]


def test_ready_weeks_are_released_oldest_first(tmp_path):
    f = Feed(tmp_path / "s.db", PublishSettings(settle=timedelta(0)))
    f.version("", "2023-02-01T00:00:00")
    f.version(week("Feb 27-Mar 5", ["A"]) + week("Feb 20-26", ["B"]) + week("Feb 13-19", ["C"]),
              "2023-03-07T00:00:00")
    assert f.release("2023-03-07T00:00:00") == ["2023-02-13..2023-02-19", FEB, MAR]


def test_restart_with_the_same_state_repeats_nothing(tmp_path):
    f = Feed(tmp_path / "s.db", PublishSettings(settle=timedelta(0)))
    f.version("", "2023-02-01T00:00:00")
    text = week("Feb 27-Mar 5", ["A"])
    assert f.version(text, "2023-03-07T00:00:00").new == (MAR,)
    assert f.release("2023-03-07T00:00:00") == [MAR]
    f.reopen()
    assert f.version(text, "2023-03-08T00:00:00").new == ()
    assert f.release("2023-03-09T00:00:00") == []
    rows = f.store.db.execute("select state, count(*) from weeks group by state").fetchall()
    assert rows == [("ready", 1)]
    assert f.store.db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_notes_page_papers_form_editions_by_first_seen_week(tmp_path):
    store = Store.open(tmp_path / "n.db")
    s = PublishSettings(settle=timedelta(0), backfill=0)
    page = "## Topic\n\n### [Alpha](https://e.org/a)\n* a\n\n### [Beta](https://e.org/b)\n* b\n"
    first = observe(store, "notes", parse_document(page.encode(), t("2026-11-02T00:00:00").date(), "notes"),
                    t("2026-11-02T00:00:00"), "v1", s)
    assert first.baseline == ("2026-W45",) and first.new == ()
    page2 = page + "\n### [Gamma](https://e.org/g)\n* g\n"
    second = observe(store, "notes", parse_document(page2.encode(), date_of("2026-11-18"), "notes"),
                     t("2026-11-18T00:00:00"), "v2", s)
    assert second.new == ("2026-W47",)
    assert [p.title for _, p in store.papers("notes", "2026-W47")] == ["Gamma"]
    assert [p.title for _, p in store.papers("notes", "2026-W45")] == ["Alpha", "Beta"]


def test_feed_entries_go_to_their_published_week_and_stay_when_they_scroll_out(tmp_path):
    store = Store.open(tmp_path / "f.db")
    s = PublishSettings(settle=timedelta(0), backfill=0)

    def rss(*items):
        body = "".join(f"<item><title>{n}</title><guid>urn:{n}</guid><pubDate>{d}</pubDate></item>" for n, d in items)
        return f"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title>{body}</channel></rss>".encode()

    a = ("A", "Mon, 02 Nov 2026 10:00:00 GMT")
    b = ("B", "Tue, 10 Nov 2026 10:00:00 GMT")
    observe(store, "f", parse_document(rss(a), date_of("2026-11-03")), t("2026-11-03T00:00:00"), "v1", s)
    obs = observe(store, "f", parse_document(rss(b), date_of("2026-11-11")), t("2026-11-11T00:00:00"), "v2", s)
    assert obs.new == ("2026-W46",)
    assert [p.title for _, p in store.papers("f", "2026-W45")] == ["A"]  # A scrolled out but stays


def date_of(s: str):
    return datetime.fromisoformat(s).date()


def test_weeks_command_lists_the_state_as_json(tmp_path):
    import json

    from click.testing import CliRunner

    from bot.cli import cli

    conf = tmp_path / "paperbot.toml"
    conf.write_text('state_dir = "st"\n')
    f = Feed(tmp_path / "st" / "paperbot.db", PublishSettings(settle=timedelta(0)))
    f.version("", "2023-02-01T00:00:00")
    f.version(week("Feb 27-Mar 5", ["A", "B"]), "2023-03-04T00:00:00")
    f.release("2023-03-07T00:00:00")
    f.store.close()
    result = CliRunner().invoke(cli, ["--config", str(conf), "weeks", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert {k: row[k] for k in ("source", "key", "state", "papers", "first_seen", "last_changed")} == {
        "source": "digest", "key": MAR, "state": "ready", "papers": 2,
        "first_seen": "2023-03-04T00:00:00+00:00", "last_changed": "2023-03-04T00:00:00+00:00"}
    assert row["title"] == "Top ML Papers of the Week (Feb 27-Mar 5)"
    text = CliRunner().invoke(cli, ["--config", str(conf), "weeks", "--source", "nope"])
    # issue #14: a source that does not exist is an error (it said "no weeks known yet" and exited 0)
    assert text.exit_code == 1 and "no source named 'nope' (known: digest)" in text.output
    assert CliRunner().invoke(cli, ["--config", str(conf), "weeks", "--source", "digest"]).exit_code == 0


def rss(*items: tuple[str, str]) -> bytes:
    """A small RSS feed of (title, pubDate) entries."""
    body = "".join(f"<item><title>{n}</title><guid>urn:{n}</guid><pubDate>{d}</pubDate></item>" for n, d in items)
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title>{body}</channel></rss>".encode()


def test_a_new_entry_in_a_baseline_week_goes_to_the_next_edition_not_lost(tmp_path):
    """Regression (#3 review): with backfill 0, this week's edition is baseline at the first poll; an entry
    arriving later that week must still be published, in the next edition."""
    store = Store.open(tmp_path / "f.db")
    s = PublishSettings(settle=timedelta(0), backfill=0)

    a = ("A", "Mon, 16 Nov 2026 10:00:00 GMT")
    b = ("B", "Wed, 18 Nov 2026 10:00:00 GMT")
    first = observe(store, "f", parse_document(rss(a), date_of("2026-11-16")), t("2026-11-16T12:00:00"), "v1", s)
    assert first.baseline == ("2026-W47",)
    obs = observe(store, "f", parse_document(rss(b, a), date_of("2026-11-18")), t("2026-11-18T12:00:00"), "v2", s)
    assert obs.new == ("2026-W48",)
    assert [p.title for _, p in store.papers("f", "2026-W48")] == ["B"]
    assert release(store, t("2026-11-30T00:00:00"), s)[0].key == "2026-W48"


def test_a_new_entry_in_a_skipped_week_goes_to_the_next_edition_not_lost(tmp_path):
    """Regression (#10, trial runs): a week given up when its channel went live is `skipped`; an entry dated in
    it that arrives afterwards must go to the next edition, not into the skipped one that is never sent."""
    store = Store.open(tmp_path / "f.db")
    s = PublishSettings(settle=timedelta(0), backfill=1)

    a = ("A", "Mon, 16 Nov 2026 10:00:00 GMT")
    b = ("B", "Wed, 18 Nov 2026 10:00:00 GMT")
    observe(store, "f", parse_document(rss(a), date_of("2026-11-16")), t("2026-11-16T12:00:00"), "v1", s)
    store.upsert_week("f", "2026-W47", state="skipped")
    obs = observe(store, "f", parse_document(rss(b, a), date_of("2026-11-18")), t("2026-11-18T12:00:00"), "v2", s)
    assert obs.new == ("2026-W48",)
    assert [p.title for _, p in store.papers("f", "2026-W48")] == ["B"]
    assert [p.title for _, p in store.papers("f", "2026-W47")] == ["A"]


# -- issue #10: learned completeness and the source's own clock ----------------------------------------------

def _ten(tag: str) -> list[str]:
    return [f"{tag}{i}" for i in range(10)]


HISTORY = week("Feb 20-26", _ten("c")) + week("Feb 13-19", _ten("b")) + week("Feb 6-12", _ten("a"))


def _with_history(tmp_path, **settings) -> Feed:
    """Three weeks of ten papers released: the source's usual week has ten."""
    f = Feed(tmp_path / "s.db", PublishSettings(**{"settle": timedelta(hours=2), "backfill": 0, **settings}))
    f.version("", "2023-02-01T00:00:00")
    f.version(HISTORY, "2023-02-27T00:00:00")
    assert len(f.release("2023-02-27T02:00:00")) == 3
    return f


def test_a_week_clearly_short_of_the_usual_count_waits_then_goes_out_flagged(tmp_path, caplog):
    """issue #10: 2 papers where weeks usually have 10: not complete at the end of its last day; it waits up to
    wait_for_papers (48h) past it, then goes out flagged, with a warning saying why."""
    f = _with_history(tmp_path)
    f.version(week("Feb 27-Mar 5", ["A", "B"]) + HISTORY, "2023-03-05T12:00:00")
    assert f.release("2023-03-06T00:00:00") == []
    assert next_gate(f.store, f.settings) == t("2023-03-08T00:00:00")
    assert f.release("2023-03-07T23:59:59") == []
    with caplog.at_level(logging.WARNING):
        assert f.release("2023-03-08T00:00:00") == [MAR]
    assert f.store.week("digest", MAR).flagged
    assert "2 papers where its weeks usually have 10" in caplog.text


def test_nine_of_ten_is_complete(tmp_path):
    """issue #10: below 80% of the usual count is short; 9 of 10 is not."""
    f = _with_history(tmp_path)
    f.version(week("Feb 27-Mar 5", _ten("d")[:9]) + HISTORY, "2023-03-05T12:00:00")
    assert f.release("2023-03-06T00:00:00") == [MAR]
    assert not f.store.week("digest", MAR).flagged


def test_papers_that_come_within_the_wait_settle_and_the_week_goes_out_complete(tmp_path):
    """issue #10: the rest arrives the morning after the last day: the week goes out unflagged once settled,
    though first sight + max_wait (1h here) is long past."""
    f = _with_history(tmp_path, max_wait=timedelta(hours=1))
    f.version(week("Feb 27-Mar 5", ["A", "B"]) + HISTORY, "2023-03-01T12:00:00")
    assert f.release("2023-03-06T09:00:00") == []
    f.version(week("Feb 27-Mar 5", _ten("d")[:8]) + HISTORY, "2023-03-06T10:00:00")
    assert f.release("2023-03-06T11:59:59") == []
    assert f.release("2023-03-06T12:00:00") == [MAR]
    row = f.store.week("digest", MAR)
    assert (row.flagged, row.n_papers) == (False, 8)


def test_wait_for_papers_zero_behaves_as_before(tmp_path):
    """issue #10: `wait_for_papers = "0s"` turns the wait off: the short week goes out when its day is over."""
    f = _with_history(tmp_path, wait_for_papers=timedelta(0))
    f.version(week("Feb 27-Mar 5", ["A", "B"]) + HISTORY, "2023-03-05T12:00:00")
    assert f.release("2023-03-06T00:00:00") == [MAR]
    assert not f.store.week("digest", MAR).flagged


def test_expect_papers_overrides_the_learned_count(tmp_path):
    """issue #10: a source's `expect_papers` wins over the median of its weeks (and 0 means: never wait)."""
    for expect, ready in ((2, [MAR]), (0, [MAR]), (3, [])):
        f = _with_history(tmp_path / str(expect))
        f.version(week("Feb 27-Mar 5", ["A", "B"]) + HISTORY, "2023-03-05T12:00:00")
        src = SourceConfig("digest", "git", "/x", expect_papers=expect)
        assert [r.key for r in release(f.store, t("2023-03-06T00:00:00"), f.settings, sources=[src])] == ready


def test_a_source_without_history_does_not_wait_for_papers(tmp_path):
    """issue #10: fewer than three finished weeks teach nothing: a one-paper week goes out as before."""
    f = Feed(tmp_path / "s.db", PublishSettings(settle=timedelta(0), backfill=0))
    f.version("", "2023-02-01T00:00:00")
    f.version(week("Feb 20-26", _ten("c")) + week("Feb 13-19", _ten("b")), "2023-02-27T00:00:00")
    assert len(f.release("2023-02-27T00:00:00")) == 2
    f.version(week("Feb 27-Mar 5", ["A"]) + week("Feb 20-26", _ten("c")), "2023-03-05T12:00:00")
    assert f.release("2023-03-06T00:00:00") == [MAR]


def _commits(*spec: tuple[str, int]) -> list[tuple[datetime, int]]:
    return [(t(at), minutes) for at, minutes in spec]


def test_the_clock_is_learned_from_the_offsets_commits_regularly_carry():
    """issue #10: the westernmost offset on at least 10% of a year's commits: New York's summer and winter
    time give -05:00 (never early); a few commits from elsewhere change nothing; too few teach nothing."""
    summer = [(f"2023-{m:02d}-{d:02d}T12:00:00", -240) for m in range(4, 11) for d in (3, 10, 17, 24)]
    winter = [(f"2023-{m:02d}-{d:02d}T12:00:00", -300) for m in (1, 2, 12) for d in (3, 10, 17, 24)]
    zone, n = usual_offset(_commits(*summer, *winter))
    assert (str(zone), n) == ("UTC-05:00", 40)
    only_summer = usual_offset(_commits(*summer))
    assert str(only_summer[0]) == "UTC-04:00"
    corpus_like = [(f"2023-03-{d:02d}T12:00:00", -360) for d in range(1, 29)] + [
        (f"2023-04-{d:02d}T12:00:00", 330) for d in range(1, 5)] + [("2023-04-06T12:00:00", -600)]
    assert str(usual_offset(_commits(*corpus_like))[0]) == "UTC-06:00"  # +05:30 is east; one -10:00 is a stray
    assert usual_offset(_commits(("2023-01-01T00:00:00", -300), ("2023-01-02T00:00:00", -300))) is None
    moved = [(f"2021-{m:02d}-01T12:00:00", -360) for m in range(1, 13)] + [
        (f"2023-{m:02d}-01T12:00:00", 60) for m in range(1, 7)]
    assert str(usual_offset(_commits(*moved))[0]) == "UTC+01:00"  # older than a year: forgotten


def test_a_sources_timezone_wins_over_the_learned_clock_and_the_default():
    zone = ZoneInfo("America/New_York")
    commits = _commits(*[(f"2023-03-{d:02d}T12:00:00", 330) for d in range(1, 9)])
    assert source_clock(zone, commits, UTC).describe() == "America/New_York (config)"
    assert source_clock(None, commits, UTC).describe() == "UTC+05:30 (learned from 8 commits)"
    assert source_clock(None, [], ZoneInfo("UTC")).describe() == "UTC (default)"
