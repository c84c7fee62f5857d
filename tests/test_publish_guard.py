"""Issue #21, the guard on age and volume: an upstream that pastes its archive never floods readers, and no source
sends more than `[publish] max_per_day` editions a day on a channel.

Real parts: a git repository in a temporary folder polled by the real poller, an aiosmtpd server (what readers
get is what it received), the SQLite file, the CLI, and bench/completeness.py's replays of the real corpus.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, commit_file, make_repo, shared_path
from publish_support import add_subscribers, free_port, parse, smtp_server
from publish_support import write_config as email_config
from sources_support import FAST

from bot.channels import load_config
from bot.cli import cli
from bot.config import ConfigError
from bot.ops import alerts
from bot.ops.status import lines, status
from bot.publish import approval
from bot.publish.pipeline import publish_ready, publish_week
from bot.sources.poll import poll_source
from bot.store import Store
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release
from bot.web import reader

READER = "reader@example.net"
EDITOR = "editor@example.net"


def week_key(first: date) -> str:
    return f"{first.isoformat()}..{(first + timedelta(days=6)).isoformat()}"


def digest(firsts: list[date], longer: tuple[date, ...] = ()) -> str:
    """A digest README with one week per Monday in `firsts` (newest first), headings with their year; three
    papers a week, four in the weeks `longer` names."""
    out = ["# Reading Group Digest", ""]
    for first in sorted(firsts, reverse=True):
        last = first + timedelta(days=6)
        out += [f"## Top ML Papers of the Week ({first:%b} {first.day} - {last:%b} {last.day}) - {last.year}", "",
                "| **Paper** | **Links** |", "| --- | --- |"]
        for i in range(1, 5 if first in longer else 4):
            out.append(f"| {i}) **Paper {i} of {first.isoformat()}** -- what it found that week. "
                       f"| [Paper](https://arxiv.org/abs/{first:%y%m}.{first.day:02d}{i:03d}) |")
        out.append("")
    return "\n".join(out)


def _git_config(tmp_path: Path, repo: Path, port: int) -> Path:
    path = tmp_path / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
[email]
smtp_url = "smtp://127.0.0.1:{port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
subject = "{{title}}"
contact = "help@weekly.test"
list_id = "papers.weekly.test"
[web]
base_url = "https://papers.weekly.test"
[x]
enabled = false
[discord]
enabled = false
[bluesky]
enabled = false
[mastodon]
enabled = false
[[sources]]
name = "lab"
git = "{repo}"
path = "README.md"
""", encoding="utf-8")
    return path


def _throwaway(store: Store) -> None:
    """Issue #25: $PAPERBOT_NOW is refused on a state folder holding real sends, unless it is a throwaway made
    under a shifted clock, as these tests' folders are (every time in them is in 2024): marked so."""
    with store.atomic():
        store.db.execute("INSERT INTO shifted_clock (real_at, shifted_to, command) VALUES (?, ?, 'test')",
                         [datetime.now(UTC).isoformat(), datetime(2024, 1, 1, tzinfo=UTC).isoformat()])


def _cli(cfg, *args, now: datetime | None = None):
    env = {"PAPERBOT_NOW": now.isoformat()} if now else {}
    return CliRunner().invoke(cli, ["--config", str(cfg.path), *args], obj={}, env=env)


def _subjects(server, start: int = 0, to: str = READER) -> list[str]:
    return [str(parse(raw)["Subject"]) for rcpt, raw in server.messages[start:] if rcpt == to]


ARCHIVE_2020 = [date(2020, 1, 6) + timedelta(weeks=i) for i in range(60)]


def test_60_back_dated_weeks_pasted_into_a_polled_git_source_reach_no_reader_issue_21(tmp_path):
    """#21: after the first poll, the upstream pastes 60 weeks dated 2020 beside one new week: a reader gets the
    new week only; the 60 are held, shown in the archive and search marked held, not in the feed, named by
    status, history and an alert."""
    repo = make_repo(tmp_path / "digest")
    w1, w2 = date(2024, 1, 1), date(2024, 1, 8)
    commit_file(repo, "README.md", digest([w1]), "2024-01-08T09:00:00+00:00", "week 1")
    with smtp_server() as (server, port):
        cfg = load_config(_git_config(tmp_path, repo, port))
        store = Store.open(cfg.db_path)
        try:
            add_subscribers(store, tmp_path, [READER])
            t0 = datetime(2024, 1, 8, 12, tzinfo=UTC)
            poll_source(store, cfg, cfg.source("lab"), t0, options=FAST)
            publish_ready(cfg, store, t0)
            assert _subjects(server) == ["Top ML Papers of the Week (Jan 1 - Jan 7) - 2024"]

            commit_file(repo, "README.md", digest([w1, w2, *ARCHIVE_2020]), "2024-01-15T09:00:00+00:00",
                        "the archive, pasted in")
            t1 = datetime(2024, 1, 15, 12, tzinfo=UTC)
            polled = poll_source(store, cfg, cfg.source("lab"), t1, options=FAST)
            assert len(polled.new) == 61
            publish_ready(cfg, store, t1)
            publish_ready(cfg, store, t1 + timedelta(days=3))  # and later rounds send nothing more
            after = _subjects(server, 1)
            assert after == ["Top ML Papers of the Week (Jan 8 - Jan 14) - 2024"], f"{len(after)} newsletters"
            assert polled.ready == (week_key(w2),)

            held = store.weeks("lab", state="held")
            assert [w.key for w in held] == [week_key(d) for d in ARCHIVE_2020]
            assert all("older than the newest week already released" in w.held for w in held)
            st = status(cfg, store, t1)
            assert len(st["weeks"]["held"]) == 60 and st["weeks"]["held"][0]["why"] == held[0].held
            assert any("… and 55 more held" in line for line in lines(st))
            (problem,) = [p for p in alerts.detect(cfg, store, t1) if p.kind == "guard"]
            assert "60 weeks held" in problem.subject and week_key(ARCHIVE_2020[0]) in problem.body
            assert "paperbot skip --held lab" in problem.body

            rows, _ = reader.editions(store, cfg, 1, 100, held=True)
            marked = {r.key: r.held for r in rows}
            assert marked[week_key(w2)] is False and marked[week_key(ARCHIVE_2020[0])] is True
            assert rows[-1].dates == "6–12 January 2020"  # under its own dates
            total, hits = reader.search(store, cfg, "\"Paper 2 of 2020-03-02\"")
            assert total == 1 and hits[0]["held"] is True
            feed = reader.feed(store, cfg, reader.Templates()).decode()
            assert "2024-01-08..2024-01-14" in feed and "2020-" not in feed
        finally:
            store.close()
        shown = _cli(cfg, "history", f"lab:{week_key(ARCHIVE_2020[0])}")
        assert shown.exit_code == 0 and "held: older than the newest week" in shown.output


def _four_new_weeks(store: Store, cfg, source: str = "dair") -> tuple[list[str], datetime]:
    """A first poll with one week (sent), then four new weeks in one commit, all ready at the returned time."""
    w0 = date(2024, 1, 1)
    new = [date(2024, 1, 8) + timedelta(weeks=i) for i in range(4)]
    observe(store, source, parse_document(digest([w0]).encode(), date(2024, 1, 8), "digest"),
            datetime(2024, 1, 8, 9, tzinfo=UTC), "v1", cfg.publish)
    release(store, datetime(2024, 1, 8, 12, tzinfo=UTC), cfg.publish)
    publish_ready(cfg, store, datetime(2024, 1, 8, 12, tzinfo=UTC))
    at = datetime(2024, 2, 5, 9, tzinfo=UTC)
    observe(store, source, parse_document(digest([w0, *new]).encode(), at.date(), "digest"), at, "v2", cfg.publish)
    t = datetime(2024, 2, 5, 12, tzinfo=UTC)
    assert [r.key for r in release(store, t, cfg.publish)] == [week_key(d) for d in new]
    return [week_key(d) for d in new], t


def _title(key: str) -> str:
    first = date.fromisoformat(key[:10])
    last = first + timedelta(days=6)
    return f"Top ML Papers of the Week ({first:%b} {first.day} - {last:%b} {last.day}) - {last.year}"


def test_the_daily_cap_sends_two_editions_a_day_and_the_rest_wait_in_order_issue_21(tmp_path):
    """#21: four weeks ready at once: two go out, two wait in order (status, history, an alert say so) for the
    next 24 hours; `paperbot approve` sends one of them past the cap."""
    with smtp_server() as (server, port):
        cfg = email_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        _throwaway(store)  # #25: PAPERBOT_NOW below writes to it
        try:
            add_subscribers(store, tmp_path, [READER])
            keys, t = _four_new_weeks(store, cfg)
            start = len(server.messages)
            reports = publish_ready(cfg, store, t)
            assert _subjects(server, start) == [_title(keys[0]), _title(keys[1])]
            waiting = [r for r in reports if r.key in keys[2:]]
            assert all("waits for the daily cap" in r.note for r in waiting) and len(waiting) == 2
            st = status(cfg, store, t)
            cap_waits = {r["key"]: r["waits_for_cap"] for r in st["weeks"]["ready"]}
            assert cap_waits == {keys[2]: {"email": "2024-02-06T12:00:00+00:00"},
                                 keys[3]: {"email": "2024-02-06T12:00:00+00:00"}}
            (problem,) = [p for p in alerts.detect(cfg, store, t) if p.kind == "guard"]
            assert "2 editions waiting for the daily cap" in problem.subject and keys[2] in problem.body
            publish_ready(cfg, store, t + timedelta(hours=12))
            assert len(_subjects(server, start)) == 2  # still within the same 24 hours
        finally:
            store.close()
        hist = json.loads(_cli(cfg, "history", "--json", now=t + timedelta(hours=12)).stdout)
        assert {e["week"]: e.get("waits_for_cap") for e in hist if e.get("waits_for_cap")} == {
            keys[2]: {"email": "2024-02-06T12:00:00+00:00"}, keys[3]: {"email": "2024-02-06T12:00:00+00:00"}}
        run = _cli(cfg, "approve", f"dair:{keys[3]}", now=t + timedelta(hours=13))
        assert run.exit_code == 0, run.output
        assert _subjects(server, start) == [_title(keys[0]), _title(keys[1]), _title(keys[3])]
        store = Store.open(cfg.db_path)
        try:
            publish_ready(cfg, store, t + timedelta(hours=23))  # three in the last 24 hours: keys[2] waits on
            assert len(_subjects(server, start)) == 3
            publish_ready(cfg, store, t + timedelta(hours=24, minutes=1))
            assert _subjects(server, start)[3:] == [_title(keys[2])]
            assert {w.key for w in store.weeks("dair", state="published")} >= set(keys)
        finally:
            store.close()


def test_an_edition_of_late_papers_counts_against_the_daily_cap_issue_21(tmp_path):
    """#21: `+late1` editions count: late papers that went out alone an hour ago leave one slot of two."""
    with smtp_server() as (server, port):
        cfg = email_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        try:
            add_subscribers(store, tmp_path, [READER])
            w0, w1, w2 = date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 15)
            t0 = datetime(2024, 1, 8, 12, tzinfo=UTC)
            observe(store, "dair", parse_document(digest([w0]).encode(), t0.date(), "digest"),
                    t0 - timedelta(hours=3), "v1", cfg.publish)
            release(store, t0, cfg.publish)
            publish_ready(cfg, store, t0)
            at = datetime(2024, 1, 15, 9, tzinfo=UTC)  # a paper added to the week that went out
            observe(store, "dair", parse_document(digest([w0], longer=(w0,)).encode(), at.date(), "digest"), at,
                    "v2", cfg.publish)
            publish_ready(cfg, store, at + timedelta(hours=3))  # found; it waits late_max_wait for a new week
            alone = datetime(2024, 1, 22, 12, 30, tzinfo=UTC)
            publish_ready(cfg, store, alone)
            assert [w.key for w in store.weeks("dair", state="published") if w.late_of] == [
                f"{week_key(w0)}+late1"]
            at = datetime(2024, 1, 22, 13, tzinfo=UTC)
            observe(store, "dair", parse_document(digest([w0, w1, w2], longer=(w0,)).encode(), at.date(),
                                                  "digest"), at, "v3", cfg.publish)
            release(store, at + timedelta(hours=3), cfg.publish)
            start = len(server.messages)
            publish_ready(cfg, store, at + timedelta(hours=3))
            assert _subjects(server, start) == [_title(week_key(w1))]
            assert store.week("dair", week_key(w2)).state == "ready"
            publish_ready(cfg, store, alone + timedelta(hours=24, minutes=1))
            assert _subjects(server, start) == [_title(week_key(w1)), _title(week_key(w2))]
        finally:
            store.close()


def test_a_week_delayed_after_it_became_ready_or_posted_six_weeks_late_is_not_held_issue_21(tmp_path):
    """#21: judged once, when the week first becomes ready. A newer week posted six weeks after its last day is
    not held; it then waits 100 days for the editor's approval and still goes out; a week pasted in the same
    commit but older than the one released before is held."""
    with smtp_server() as (server, port):
        path = tmp_path / "paperbot.toml"
        cfg = email_config(tmp_path, port)
        path.write_text(path.read_text(encoding="utf-8").replace(
            'state_dir = "state"\n', f'state_dir = "state"\n[publish]\napprove = true\neditor = "{EDITOR}"\n'),
            encoding="utf-8")
        cfg = load_config(path)
        store = Store.open(cfg.db_path)
        try:
            add_subscribers(store, tmp_path, [READER])
            w0, late, old = date(2023, 12, 25), date(2024, 1, 1), date(2023, 12, 18)
            observe(store, "dair", parse_document(digest([w0]).encode(), date(2024, 1, 1), "digest"),
                    datetime(2024, 1, 1, 12, tzinfo=UTC), "v1", cfg.publish)
            release(store, datetime(2024, 1, 1, 12, tzinfo=UTC), cfg.publish)
            at = datetime(2024, 2, 19, 9, tzinfo=UTC)  # 43 days after the late week's last day
            observe(store, "dair", parse_document(digest([w0, late, old]).encode(), at.date(), "digest"), at,
                    "v2", cfg.publish)
            t = datetime(2024, 2, 19, 12, tzinfo=UTC)
            release(store, t, cfg.publish)
            assert store.week("dair", week_key(late)).state == "ready"
            assert store.week("dair", week_key(old)).state == "held"
            publish_ready(cfg, store, t)
            assert store.week("dair", week_key(late)).state == "awaiting-approval"
            assert _subjects(server) == []
            later = t + timedelta(days=100)  # the editor comes back: its last day is now 143 days ago
            release(store, later, cfg.publish)
            approval.approve(store, store.week("dair", week_key(late)), later)
            publish_week(cfg, store, store.week("dair", week_key(late)), now=later)
            assert _subjects(server) == [_title(week_key(late))]
            assert store.week("dair", week_key(late)).state == "published"
            assert store.week("dair", week_key(old)).state == "held"
        finally:
            store.close()


def test_approve_and_skip_take_several_weeks_and_every_held_week_of_a_source_issue_21(tmp_path):
    """#21: 60 held weeks must not take 60 commands: `approve A B` sends both; `skip --held SOURCE` gives up all
    the rest in one command."""
    with smtp_server() as (server, port):
        cfg = email_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        _throwaway(store)  # #25: PAPERBOT_NOW below writes to it
        w0 = date(2024, 1, 1)
        try:
            add_subscribers(store, tmp_path, [READER])
            observe(store, "dair", parse_document(digest([w0]).encode(), date(2024, 1, 8), "digest"),
                    datetime(2024, 1, 8, 9, tzinfo=UTC), "v1", cfg.publish)
            release(store, datetime(2024, 1, 8, 12, tzinfo=UTC), cfg.publish)
            publish_ready(cfg, store, datetime(2024, 1, 8, 12, tzinfo=UTC))
            at = datetime(2024, 1, 10, 9, tzinfo=UTC)
            observe(store, "dair", parse_document(digest([w0, *ARCHIVE_2020]).encode(), at.date(), "digest"),
                    at, "v2", cfg.publish)
            release(store, at + timedelta(hours=3), cfg.publish)
            assert len(store.weeks("dair", state="held")) == 60
            start = len(server.messages)
        finally:
            store.close()
        now = at + timedelta(hours=4)
        a, b = week_key(ARCHIVE_2020[0]), week_key(ARCHIVE_2020[1])
        run = _cli(cfg, "approve", f"dair:{a}", f"dair:{b}", now=now)
        assert run.exit_code == 0, run.output
        assert f"dair:{a} approved" in run.output and f"dair:{b} approved" in run.output
        assert sorted(_subjects(server, start)) == sorted([_title(a), _title(b)])  # past the daily cap too
        run = _cli(cfg, "skip", "--held", "dair", now=now)
        assert run.exit_code == 0, run.output
        assert run.output.count("skipped by the editor") == 58
        assert "has no held week" in _cli(cfg, "approve", "--held", "dair", now=now).output
        bad = _cli(cfg, "approve", f"dair:{week_key(w0)}", now=now)  # published: refused, nothing changes
        assert bad.exit_code != 0 and "published" in bad.output
        store = Store.open(cfg.db_path)
        try:
            states = {w.key: w.state for w in store.weeks("dair")}
            assert states[a] == states[b] == "published"
            assert sum(s == "skipped" for s in states.values()) == 58
            publish_ready(cfg, store, now + timedelta(days=2))
        finally:
            store.close()
        assert len(_subjects(server, start)) == 2


def test_replaying_the_corpus_the_new_york_history_and_the_feeds_holds_no_week_issue_21(tmp_path, capsys):
    """#21: bench/completeness.py's histories with the default settings: no week held; the daily cap delays
    only the oldest of the three weeks one 2023 commit added at once, by less than a day."""
    corpus = shared_path("corpus", "dair-ai-2023")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import completeness
    finally:
        sys.path.remove(str(ROOT / "bench"))
    results = [completeness.measure("dair-ai", completeness.corpus_repo(corpus, tmp_path)),
               completeness.measure("new-york", completeness.new_york_repo(tmp_path))]
    results += [completeness.guard(name, repo, "feed.xml", "feed")
                for name, repo in completeness.feed_repos(corpus.parent / "feeds", tmp_path)]
    assert len(results) == 7
    assert {r["name"]: r["held"] for r in results if r["held"]} == {}
    dair, new_york = results[0], results[1]
    assert [key for key, _, _ in dair["delayed"]] == ["2023-01-23..2023-01-29"]
    assert all(d < timedelta(days=1) for _, _, d in dair["delayed"])
    assert new_york["delayed"] == [] and all(r["delayed"] == [] for r in results[2:])


@pytest.mark.parametrize("line,words", [
    ('max_age = "0d"', "publish.max_age"), ('max_age = "90"', "publish.max_age"),
    ("max_age = 90", "publish.max_age: 90 is not a duration"),
    ("max_per_day = 0", "publish.max_per_day"), ('max_per_day = "2"', "publish.max_per_day"),
    ("max_per_day = 2.5", "publish.max_per_day"), ("max_per_day = true", "publish.max_per_day"),
])
def test_bad_guard_settings_are_refused_naming_the_key_issue_21(tmp_path, line, words):
    path = tmp_path / "paperbot.toml"
    path.write_text(f"[publish]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=words):
        load_config(path)


def test_guard_settings_default_and_load_issue_21(tmp_path):
    path = tmp_path / "paperbot.toml"
    path.write_text('[publish]\nmax_age = "30d"\nmax_per_day = 5\n', encoding="utf-8")
    assert (load_config(path).publish.max_age, load_config(path).publish.max_per_day) == (timedelta(days=30), 5)
    path.write_text("", encoding="utf-8")
    assert (load_config(path).publish.max_age, load_config(path).publish.max_per_day) == (timedelta(days=90), 2)


def test_held_weeks_are_in_the_web_archive_and_search_marked_held_and_never_in_the_feed_issue_21(tmp_path):
    """#21, over HTTP (`paperbot serve`): a held week is listed in /editions/ under its own dates, marked held,
    its page says it was not sent, search finds its papers marked held, and /feed.xml leaves it out."""
    with smtp_server() as (server, smtp_port):
        cfg = email_config(tmp_path, smtp_port)
        port = free_port()
        cfg.path.write_text(cfg.path.read_text(encoding="utf-8").replace(
            'base_url = "https://papers.weekly.test"\n',
            f'base_url = "https://papers.weekly.test"\nlisten = "127.0.0.1:{port}"\n'), encoding="utf-8")
        cfg = load_config(cfg.path)
        store = Store.open(cfg.db_path)
        try:
            w0, old = date(2024, 1, 1), date(2020, 3, 2)
            observe(store, "dair", parse_document(digest([w0]).encode(), date(2024, 1, 8), "digest"),
                    datetime(2024, 1, 8, 9, tzinfo=UTC), "v1", cfg.publish)
            release(store, datetime(2024, 1, 8, 12, tzinfo=UTC), cfg.publish)
            add_subscribers(store, tmp_path, [READER])  # #25: with nobody subscribed the week would wait for one
            publish_ready(cfg, store, datetime(2024, 1, 8, 12, tzinfo=UTC))
            at = datetime(2024, 1, 10, 9, tzinfo=UTC)
            observe(store, "dair", parse_document(digest([w0, old]).encode(), at.date(), "digest"), at, "v2",
                    cfg.publish)
            release(store, at + timedelta(hours=3), cfg.publish)
            assert store.week("dair", week_key(old)).state == "held"
        finally:
            store.close()
    env = {**os.environ, "PAPERBOT_SECRET_KEY": "guard-key-" + "0123456789" * 4}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "serve"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> str:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.read().decode("utf-8")

    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while True:
            try:
                get("/static/site.css")
                break
            except OSError:
                assert proc.poll() is None and datetime.now(UTC) < deadline
                time.sleep(0.1)
        archive = get("/editions/")
        assert re.findall(r"/editions/dair/([0-9.-]+)", archive) == [week_key(w0), week_key(old)]
        item = archive[archive.index(f"/editions/dair/{week_key(old)}"):].split("</li>", 1)[0]
        assert "2–8 March 2020" in item and "held: not sent" in item
        assert "held: not sent" not in archive[archive.index(f"/editions/dair/{week_key(w0)}"):].split("</li>")[0]
        assert "Held:" in get(f"/editions/dair/{week_key(old)}")
        found = get("/search?q=" + urllib.parse.quote(f'"Paper 1 of {old.isoformat()}"'))
        assert "held: not sent" in found and week_key(old) in found
        feed = get("/feed.xml")
        assert week_key(w0) in feed and week_key(old) not in feed
    finally:
        proc.terminate()
        proc.wait(timeout=10)
