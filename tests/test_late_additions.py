"""Issue #10, item 3: papers added to a week after it went out are late additions. The next edition of the source
carries them once per channel under "Added to earlier weeks", or they go out alone after `late_max_wait`; a
kill loses and repeats none of them; a correction of a sent paper is not re-sent; and `paperbot replay --json`
shows each late paper in exactly one later edition.

Real parts only: SQLite files, an aiosmtpd server on 127.0.0.1, the real pipeline (the daemon's after-poll hook
with its own clock, the CLI, a killed `paperbot publish` process) and git repositories made here.
"""

from __future__ import annotations

import email
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import commit_file, git, make_repo
from publish_support import SECRET, add_subscribers, addresses, parse, smtp_server, write_config

from bot.channels import load_config
from bot.channels.base import ChannelLimits, Unit
from bot.cli import cli
from bot.config import Config
from bot.edition.edition import Edition, edition_from_store
from bot.publish import ledger
from bot.publish.pipeline import after_poll, late_round, publish_channel
from bot.store import Store, WeekRow
from bot.track.diff import norm_title
from bot.track.late import paper_keys
from bot.track.model import Link, Paper
from bot.track.parse_digest import parse_digest
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "dair"
W1, W2, W3 = "2023-02-20..2023-02-26", "2023-02-27..2023-03-05", "2023-03-06..2023-03-12"
HEADINGS = {W1: "Feb 20 - Feb 26", W2: "Feb 27 - Mar 5", W3: "Mar 6 - Mar 12"}
LATE_TITLE = "Added to earlier weeks"


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def digest(weeks: dict[str, Sequence[str | tuple[str, str, str]]]) -> str:
    """A digest README, newest week first. A paper is a title, or (title, summary, link) to say more."""
    out = ["# Papers We Liked This Week", ""]
    for key in sorted(weeks, reverse=True):
        out += [f"## Top ML Papers of the Week ({HEADINGS[key]})", "", "| **Paper** | **Links** |", "| --- | --- |"]
        for i, p in enumerate(weeks[key], 1):
            title, summary, link = p if isinstance(p, tuple) else (p, f"all about {p.lower()}.",
                                                                   f"https://arxiv.org/abs/{slug(p)}")
            out.append(f"| {i}) **{title}** - {summary} | [Paper]({link}) |")
        out.append("")
    return "\n".join(out)


def see(store: Store, cfg: Config, text: str, at: datetime, version: str) -> None:
    """A poll at `at` finds this version (the tracker's own steps: observe, then release what is due)."""
    observe(store, SOURCE, parse_document(text.encode(), at.date(), "digest"), at, version, cfg.publish)
    release(store, at, cfg.publish)


def texts(rec, since: int = 0) -> list[tuple[str, str, str, str]]:
    """(recipient, subject, text part, html part) of each message received, from the `since`-th on."""
    out = []
    for rcpt, raw in rec.messages[since:]:
        msg = parse(raw)
        text, html = list(msg.iter_parts())
        out.append((rcpt, str(msg["Subject"]), text.get_content(), html.get_content()))
    return out


def text_parts(rec, since: int = 0) -> list[tuple[str, str]]:
    """(recipient, text part) of each message from the `since`-th on; the quick parser, for many messages."""
    out = []
    for rcpt, raw in rec.messages[since:]:
        text = email.message_from_bytes(raw).get_payload()[0]
        out.append((rcpt, text.get_payload(decode=True).decode(text.get_content_charset() or "utf-8")))
    return out


def late_rows(store: Store) -> list[tuple]:
    return store.db.execute("SELECT week_key, channel, json_extract(paper, '$.title'), carried_in_key, "
                            "delivered_at IS NOT NULL FROM late_additions ORDER BY id").fetchall()


def setup(tmp_path, port, people: list[str], extra: str = "") -> tuple[Config, Store]:
    cfg = write_config(tmp_path, port)
    if extra:
        cfg.path.write_text(cfg.path.read_text() + extra, encoding="utf-8")
        cfg = load_config(cfg.path)
    store = Store.open(cfg.db_path)
    add_subscribers(store, tmp_path, people)
    return cfg, store


T0 = datetime(2023, 2, 27, 9, tzinfo=UTC)  # W1 is over; its first poll
V1 = {W1: ["Sparse Lanterns", "Quiet Gradients"]}
V2 = {W1: ["Sparse Lanterns", "Quiet Gradients", "Sunday Night Transformers"]}  # added after W1 went out
V3 = {W2: ["Deep Kettles", "Folded Attention"], **V2}


def test_a_paper_added_after_the_week_went_out_is_in_the_next_email_once(tmp_path):
    """issue #10: the late paper reaches every subscriber once, in the next week's HTML and text part, under
    "Added to earlier weeks" after the week's own papers; never again after that."""
    people = addresses(2)
    with smtp_server() as (rec, port):
        cfg, store = setup(tmp_path, port, people)
        see(store, cfg, digest(V1), T0, "v1")
        after_poll(cfg, store, T0 + timedelta(hours=3))  # first poll: W1 is backfill, ready at once
        assert rec.count() == 2
        see(store, cfg, digest(V2), T0 + timedelta(hours=20), "v2")
        after_poll(cfg, store, T0 + timedelta(hours=20))
        assert rec.count() == 2, "a late paper waits for the next edition"
        assert late_rows(store) == [(W1, "email", "Sunday Night Transformers", None, 0)]

        see(store, cfg, digest(V3), datetime(2023, 3, 6, 1, tzinfo=UTC), "v3")
        see(store, cfg, digest(V3), datetime(2023, 3, 6, 4, tzinfo=UTC), "v3b")  # settled: W2 ready
        after_poll(cfg, store, datetime(2023, 3, 6, 4, tzinfo=UTC))
        got = texts(rec, 2)
        assert sorted(r for r, *_ in got) == people
        for _, subject, text, html in got:
            assert "Feb 27 - Mar 5" in subject
            assert text.count("Sunday Night Transformers") == 1 and html.count("Sunday Night Transformers") == 1
            assert text.count(LATE_TITLE) == 1 and html.count(LATE_TITLE) == 1
            # after the week's own papers, under the original week's title
            assert text.index("Folded Attention") < text.index(LATE_TITLE) < text.index("Sunday Night Transformers")
            assert html.index("Folded Attention") < html.index(LATE_TITLE) < html.index("Sunday Night Transformers")
            lines = text.splitlines()
            section = "\n".join(lines[lines.index(LATE_TITLE):lines.index("-- ")])
            assert "== Top ML Papers of the Week\n   20–26 February 2023" in section  # issue #16: dates once
            assert "3. Sunday Night Transformers" in section  # its number in its own week
            assert "Sparse Lanterns" not in text and "Sparse Lanterns" not in html  # no repeat of sent papers
        web = (cfg.state_dir / "editions" / SOURCE / f"{W2}.html").read_text()
        assert web.count("Sunday Night Transformers") == 1 and LATE_TITLE in web
        assert late_rows(store) == [(W1, "email", "Sunday Night Transformers", W2, 1)]
        hist = CliRunner().invoke(cli, ["--config", str(cfg.path), "history", f"{SOURCE}:{W2}", "--json"], obj={})
        assert json.loads(hist.output)[0]["channels"]["email"]["late"] == [
            {"week": W1, "papers": ["Sunday Night Transformers"]}]

        after_poll(cfg, store, datetime(2023, 3, 6, 5, tzinfo=UTC))
        v4 = {W3: ["Tiny Rockets"], **V3}
        see(store, cfg, digest(v4), datetime(2023, 3, 13, 1, tzinfo=UTC), "v4")
        see(store, cfg, digest(v4), datetime(2023, 3, 13, 4, tzinfo=UTC), "v4b")
        after_poll(cfg, store, datetime(2023, 3, 13, 4, tzinfo=UTC))
        third = texts(rec, 4)
        assert len(third) == 2 and rec.count() == 6
        assert not any("Sunday Night" in t or LATE_TITLE in t or LATE_TITLE in h for _, _, t, h in third)


def test_a_correction_of_a_sent_paper_is_not_sent_again(tmp_path):
    """issue #10: a fixed summary, a retitled paper (same link) and a new link (same title) are corrections."""
    with smtp_server() as (rec, port):
        cfg, store = setup(tmp_path, port, addresses(1))
        see(store, cfg, digest(V1), T0, "v1")
        after_poll(cfg, store, T0 + timedelta(hours=3))
        fixed = {W1: [("Sparse Lanterns", "a corrected summary.", "https://arxiv.org/abs/sparse-lanterns"),
                      ("Quiet Gradients, Revisited", "all about quiet gradients.", "https://arxiv.org/abs/quiet-gradients")],
                 W2: ["Deep Kettles"]}
        see(store, cfg, digest(fixed), T0 + timedelta(hours=20), "v2")
        fixed[W1][0] = ("Sparse Lanterns", "a corrected summary.", "https://arxiv.org/abs/2302.99999v2")
        see(store, cfg, digest(fixed), datetime(2023, 3, 6, 1, tzinfo=UTC), "v3")
        see(store, cfg, digest(fixed), datetime(2023, 3, 6, 4, tzinfo=UTC), "v3b")
        after_poll(cfg, store, datetime(2023, 3, 6, 4, tzinfo=UTC))
        ((_, _, text, html),) = texts(rec, 1)
        assert "Deep Kettles" in text and LATE_TITLE not in text and LATE_TITLE not in html
        assert "Sparse Lanterns" not in text and "Quiet Gradients" not in text
        assert late_rows(store) == []


def test_late_papers_go_out_alone_after_late_max_wait(tmp_path):
    """issue #10: with no new week within `late_max_wait` of their being found, late papers go out alone, once,
    recorded in the ledger and shown by `paperbot history`; the next week does not carry them again."""
    people = addresses(2)
    with smtp_server() as (rec, port):
        cfg, store = setup(tmp_path, port, people, '[publish]\nlate_max_wait = "2d"\n')
        assert cfg.publish.late_max_wait == timedelta(days=2)
        see(store, cfg, digest(V1), T0, "v1")
        after_poll(cfg, store, T0 + timedelta(hours=3))
        found = T0 + timedelta(hours=20)
        see(store, cfg, digest(V2), found, "v2")
        after_poll(cfg, store, found)
        after_poll(cfg, store, found + timedelta(days=2) - timedelta(minutes=1))
        assert rec.count() == 2, "not before late_max_wait"
        after_poll(cfg, store, found + timedelta(days=2))
        alone = texts(rec, 2)
        assert sorted(r for r, *_ in alone) == people
        for _, subject, text, html in alone:
            assert subject == "Added to earlier weeks: Top ML Papers of the Week (Feb 20 - Feb 26)"
            # once as a paper, once in the contents list at the top (issue #16)
            assert text.splitlines().count("3. Sunday Night Transformers") == 1
            assert html.count(">Sunday Night Transformers<") == 2 and html.count("<h2") == 1
            assert "Sparse Lanterns" not in text and "No papers this week" not in text
        key = f"{W1}+late1"
        week = store.week(SOURCE, key)
        assert (week.state, week.late_of) == ("published", W1)
        assert late_rows(store) == [(W1, "email", "Sunday Night Transformers", key, 1)]
        after_poll(cfg, store, found + timedelta(days=3))
        assert rec.count() == 4, "sent once"
        hist = CliRunner().invoke(cli, ["--config", str(cfg.path), "history", "--json"], obj={})
        entry = next(e for e in json.loads(hist.output) if e["week"] == key)
        assert entry["title"].startswith(LATE_TITLE) and entry["state"] == "published"
        assert entry["channels"]["email"]["counts"]["sent"] == 2
        assert entry["channels"]["email"]["late"] == [{"week": W1, "papers": ["Sunday Night Transformers"]}]
        assert "carries 1 paper(s) added to " + W1 in CliRunner().invoke(
            cli, ["--config", str(cfg.path), "history"], obj={}).output

        see(store, cfg, digest(V3), datetime(2023, 3, 6, 1, tzinfo=UTC), "v3")
        see(store, cfg, digest(V3), datetime(2023, 3, 6, 4, tzinfo=UTC), "v3b")
        after_poll(cfg, store, datetime(2023, 3, 6, 4, tzinfo=UTC))
        nxt = texts(rec, 4)
        assert len(nxt) == 2 and not any("Sunday Night" in t or LATE_TITLE in t for _, _, t, _ in nxt)
        # the web copy of the edition of late papers alone
        page = (cfg.state_dir / "editions" / SOURCE / f"{key}.html").read_text()
        assert "Sunday Night Transformers" in page and "No papers this week" not in page


class Timeline:
    """A channel the way X will be one (bot/channels/base.py's interface): it "posts" each edition to a list."""

    name = "x"
    limits = ChannelLimits(connections=1, max_attempts=1)
    live = True  # it really "posts" (to its list): not a trial
    audience = "followers"

    def __init__(self) -> None:
        self.posted: list[Edition] = []

    def plan(self, store: Store, week: WeekRow) -> list[Unit]:
        return [Unit(key="timeline")]

    def render(self, store: Store, week: WeekRow, *, dry: bool = False) -> Edition:
        return edition_from_store(store, week.source, week.key, self.name)

    def prepare(self, rendition: Edition) -> None:
        pass

    def open_sender(self, rendition: Edition):
        posted = self.posted

        class Sender:
            def send(self, unit: Unit) -> str:
                posted.append(rendition)
                return f"post-{len(posted)}"

            def close(self) -> None:
                pass

        return Sender()

    def on_permanent(self, store, unit, error, now) -> None:
        pass


def _titles(ed: Edition) -> tuple[list[str], list[str]]:
    return [p.title for p in ed.papers], [p.title for g in ed.late for p in g.papers]


def test_late_additions_are_per_channel(tmp_path):
    """issue #10: each channel counts from its own sending. Email sent W1 before the paper came, X after: the
    paper is late on email only; a paper that comes after both is late on both, and each carries it once."""
    with smtp_server() as (rec, port):
        cfg, store = setup(tmp_path, port, addresses(1))
        x = Timeline()
        see(store, cfg, digest(V1), T0, "v1")
        after_poll(cfg, store, T0 + timedelta(hours=3))  # email sends W1 now; X later
        see(store, cfg, digest(V2), T0 + timedelta(hours=20), "v2")
        publish_channel(cfg, store, store.week(SOURCE, W1), x, now=T0 + timedelta(hours=21))
        assert _titles(x.posted[0]) == (V2[W1], [])  # X's first edition of W1 has the paper in it
        late_round(cfg, store, T0 + timedelta(hours=21), channels=["email", "x"])
        assert late_rows(store) == [(W1, "email", "Sunday Night Transformers", None, 0)]

        v3 = {W2: ["Deep Kettles"], W1: V2[W1] + ["Monday Morning Mixers"]}  # after both sent W1
        see(store, cfg, digest(v3), datetime(2023, 3, 6, 1, tzinfo=UTC), "v3")
        see(store, cfg, digest(v3), datetime(2023, 3, 6, 4, tzinfo=UTC), "v3b")
        now = datetime(2023, 3, 6, 4, tzinfo=UTC)
        late_round(cfg, store, now, channels=["email", "x"])
        after_poll(cfg, store, now)
        publish_channel(cfg, store, store.week(SOURCE, W2), x, now=now)
        ((_, _, text, _),) = texts(rec, 1)
        assert text.count("Sunday Night Transformers") == 1 and text.count("Monday Morning Mixers") == 1
        assert _titles(x.posted[1]) == (["Deep Kettles"], ["Monday Morning Mixers"])
        assert sorted(late_rows(store)) == [(W1, "email", "Monday Morning Mixers", W2, 1),
                                            (W1, "email", "Sunday Night Transformers", W2, 1),
                                            (W1, "x", "Monday Morning Mixers", W2, 1)]
        # what each channel's edition of W1 went out with stays as it was
        assert _titles(edition_from_store(store, SOURCE, W1, "email"))[0] == V1[W1]
        assert _titles(edition_from_store(store, SOURCE, W1, "x"))[0] == V2[W1]


def start_publish(cfg: Config) -> subprocess.Popen:
    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "publish"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def use_port(cfg: Config, port: int) -> Config:
    text = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", cfg.path.read_text())
    cfg.path.write_text(text, encoding="utf-8")
    return load_config(cfg.path)


def test_a_kill_between_planning_and_sending_loses_no_late_paper(tmp_path):
    """issue #10: the edition that takes late papers takes them in the transaction that plans it. Kill -9 a real
    `paperbot publish` after it planned that edition and before anything was sent (its SMTP server never answers):
    the restart sends that edition with them to everyone, and the newer week ready beside it does not repeat them."""
    people = addresses(3)
    with smtp_server() as (rec, port):
        cfg, store = setup(tmp_path, port, people)
        see(store, cfg, digest(V1), T0, "v1")
        after_poll(cfg, store, T0 + timedelta(hours=3))
        see(store, cfg, digest(V2), T0 + timedelta(hours=20), "v2")
        v4 = {W3: ["Tiny Rockets"], **V3}
        see(store, cfg, digest(v4), datetime(2023, 3, 13, 1, tzinfo=UTC), "v4")
        see(store, cfg, digest(v4), datetime(2023, 3, 13, 4, tzinfo=UTC), "v4b")  # W2 and W3 are ready
        with socket.socket() as silent:  # accepts connections, never says a word
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)
            cfg = use_port(cfg, silent.getsockname()[1])
            proc = start_publish(cfg)
            deadline = time.monotonic() + 30
            while ledger.publication(store, SOURCE, W2, "email") is None:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the edition was never planned"
                time.sleep(0.01)
            proc.kill()
            proc.wait()
        assert rec.count() == 3  # W1 only
        assert late_rows(store) == [(W1, "email", "Sunday Night Transformers", W2, 0)]
        assert ledger.counts(store, SOURCE, W2, "email")["sent"] == 0

        cfg = use_port(cfg, port)
        out, err = start_publish(cfg).communicate(timeout=60)
        got = texts(rec, 3)
        assert len(got) == 6, err.decode()
        with_paper = sorted((r, s) for r, s, t, _ in got if t.count("Sunday Night Transformers") == 1)
        assert with_paper == [(r, "Top ML Papers of the Week (Feb 27 - Mar 5)") for r in people]
        assert not any("Sunday Night" in t for _, s, t, _ in got if "Mar 6" in s)
    assert late_rows(store) == [(W1, "email", "Sunday Night Transformers", W2, 1)]


def test_a_kill_while_sending_loses_and_repeats_no_late_paper(tmp_path):
    """issue #10: kill -9 a real `paperbot publish` while it sends the edition carrying a late paper, restart it:
    every subscriber has the paper in that edition, a second copy only for a row in flight at the kill (same
    Message-ID), and no later edition carries it again."""
    n = 300
    people = addresses(n)
    with smtp_server() as (rec, port):
        cfg, store = setup(tmp_path, port, people[:1])
        see(store, cfg, digest(V1), T0, "v1")
        after_poll(cfg, store, T0 + timedelta(hours=3))
        see(store, cfg, digest(V2), T0 + timedelta(hours=20), "v2")
        see(store, cfg, digest(V3), datetime(2023, 3, 6, 1, tzinfo=UTC), "v3")
        see(store, cfg, digest(V3), datetime(2023, 3, 6, 4, tzinfo=UTC), "v3b")
        add_subscribers(store, tmp_path, people[1:])
        store.close()
        base = rec.count()
        proc = start_publish(cfg)
        deadline = time.monotonic() + 60
        while rec.count() < base + n // 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sender made no progress"
            time.sleep(0.002)
        proc.kill()
        proc.wait()
        store = Store.open(cfg.db_path)
        in_flight = {r["unit"] for r in ledger.rows_in(store, SOURCE, W2, "email", ("sending",))}
        assert [r[:4] for r in late_rows(store)] == [(W1, "email", "Sunday Night Transformers", W2)]
        out, err = start_publish(cfg).communicate(timeout=60)
        got = text_parts(rec, base)
        carried = {}
        for r, text in got:
            assert text.count("Sunday Night Transformers") == 1
            carried[r] = carried.get(r, 0) + 1
        assert set(carried) == set(people), "every subscriber has the late paper"
        extra = {a for a, c in carried.items() if c > 1}
        assert extra <= in_flight and all(carried[a] == 2 for a in extra)
        v4 = {W3: ["Tiny Rockets"], **V3}
        see(store, cfg, digest(v4), datetime(2023, 3, 13, 1, tzinfo=UTC), "v4")
        see(store, cfg, digest(v4), datetime(2023, 3, 13, 4, tzinfo=UTC), "v4b")
        before = rec.count()
        after_poll(cfg, store, datetime(2023, 3, 13, 4, tzinfo=UTC))
        assert rec.count() == before + n
        assert not any("Sunday Night" in t for _, t in text_parts(rec, before))
        assert late_rows(store) == [(W1, "email", "Sunday Night Transformers", W2, 1)]


# -- the backtest ----------------------------------------------------------------------------------------------
def replay_lines(repo: Path, *args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["replay", str(repo), "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


NY = "-04:00"  # a maintainer in New York (EDT)


def nweek(start: date) -> tuple[str, str]:
    end = start + timedelta(days=6)
    heading = f"{start:%b} {start.day} - {end:%b} {end.day}"
    return f"{start.isoformat()}..{end.isoformat()}", heading


@pytest.fixture(scope="module")
def ny_repo(tmp_path_factory):
    """Six weeks filled in through the week from New York; the last paper lands on Sunday 21:30 local time (01:30
    UTC Monday, after the week was released at midnight UTC). One week's placeholder is filled a month late;
    after the last week, a paper lands in a week already out and no new week follows."""
    repo = make_repo(tmp_path_factory.mktemp("ny") / "digest")
    weeks: dict[str, list[str]] = {}
    headings: dict[str, str] = {}

    def text() -> str:
        out = ["# Digest", ""]
        for key in sorted(weeks, reverse=True):
            out += [f"## Top ML Papers of the Week ({headings[key]})", "| **Paper** | **Links** |", "| --- | --- |"]
            out += [f"| {i}) **{t}** - about {t.lower()}. | [Paper](https://example.org/{slug(t)}) |"
                    for i, t in enumerate(weeks[key], 1)]
            out.append("")
        return "\n".join(out)

    commit_file(repo, "README.md", "# Digest\n", f"2023-05-31T09:00:00{NY}")
    start = date(2023, 6, 5)
    for w in range(6):
        key, heading = nweek(start + timedelta(weeks=w))
        headings[key], weeks[key] = heading, []
        first = start + timedelta(weeks=w)
        for d in range(6):
            weeks[key].append(f"Week {w} Paper {d}" if not (w == 2 and d == 3) else "XXX")
            commit_file(repo, "README.md", text(), f"{first + timedelta(days=d)}T10:00:00{NY}")
        weeks[key].append(f"Week {w} Sunday Paper")
        commit_file(repo, "README.md", text(), f"{first + timedelta(days=6)}T21:30:00{NY}")
    w2 = nweek(start + timedelta(weeks=2))[0]
    weeks[w2][3] = "Week 2 Paper 3 At Last"  # a month late
    commit_file(repo, "README.md", text(), f"2023-08-02T12:00:00{NY}")
    weeks[nweek(start + timedelta(weeks=5))[0]].append("Week 5 Straggler")  # no new week after it
    commit_file(repo, "README.md", text(), f"2023-08-20T12:00:00{NY}")
    return repo


def _show(repo: Path, sha: str) -> str:
    return git(repo, "show", f"{sha}:README.md")


def test_replay_json_shows_every_late_paper_in_exactly_one_later_edition(ny_repo, tmp_path):
    """issue #10: in a backtest every paper of the final version reaches readers: in its week's release, or as a
    late addition in exactly one later edition (the next release, or alone after late_max_wait)."""
    lines = replay_lines(ny_repo)
    released = [x for x in lines if "event" not in x]
    late = [x for x in lines if x.get("event") == "late"]
    assert len(released) == 6
    sent: dict[str, list[str]] = {}
    for x in released:
        doc = parse_digest(_show(ny_repo, x["commit"]), date(2023, 9, 1))
        sent[x["week"]] = [norm_title(p.title) for w in doc.weeks if w.key == x["week"] for p in w.papers]
    at = {x["week"]: x["at"] for x in released}
    for e in late:
        assert set(e) == {"event", "week", "papers", "carried_in", "at", "found_at"}
        assert e["found_at"] >= at[e["week"]] and e["at"] >= e["found_at"]
        if e["carried_in"] in at:
            assert at[e["carried_in"]] == e["at"] and e["carried_in"] != e["week"]
        else:
            assert re.fullmatch(rf"{re.escape(e['week'])}\+late\d", e["carried_in"]), e
            assert datetime.fromisoformat(e["at"]) == datetime.fromisoformat(e["found_at"]) + timedelta(days=7)
        for t in e["papers"]:
            assert norm_title(t) not in sent[e["week"]], f"{t} was in its week already"
            sent[e["week"]].append(norm_title(t))
    final = parse_digest(_show(ny_repo, "HEAD"), date(2023, 9, 1))
    for w in final.weeks:
        for p in w.papers:
            assert sent[w.key].count(norm_title(p.title)) == 1, f"{w.key}: {p.title} reached readers once"
    late_titles = sorted(t for e in late for t in e["papers"])
    assert "Week 2 Paper 3 At Last" in late_titles and "Week 5 Straggler" in late_titles
    # the source's clock, learned from the -04:00 commits, waits for the Sunday-evening papers (#10, item 1)...
    assert sum("Sunday Paper" in t for t in late_titles) == 0
    # ...where a UTC clock releases each week without them, and every one follows as a late addition
    utc_late = [t for x in replay_lines(ny_repo, "--timezone", "UTC") if x.get("event") == "late" for t in x["papers"]]
    assert sum("Sunday Paper" in t for t in utc_late) == 6
    assert any(e["carried_in"].endswith("+late1") for e in late)

    # a replay stopped and continued prints the same, late lines included
    state = tmp_path / "state"
    pieces = []
    for n in (5, 17, 9, 1):
        pieces += replay_lines(ny_repo, "--state", str(state), "--stop-after", str(n))
    pieces += replay_lines(ny_repo, "--state", str(state))
    assert pieces == lines


def test_a_filled_placeholder_row_is_a_new_paper_and_a_fixed_title_is_not():
    """issue #10: a row sent as `XXX` that is filled in later is a late addition even if its link was there
    already; a paper whose title or link alone is corrected is the same paper."""
    link = (Link("Paper", "https://arxiv.org/abs/2302.00003"),)
    sent = set(paper_keys(Paper("XXX", links=link)))
    assert sent.isdisjoint(paper_keys(Paper("Tables All the Way Down", links=link)))
    real = set(paper_keys(Paper("Tables All the Way Down", links=link)))
    assert not real.isdisjoint(paper_keys(Paper("Tables All The Way Down!", links=link)))
    assert not real.isdisjoint(paper_keys(Paper("Tables All the Way Down", links=(Link("Paper", "https://x.org/v2"),))))
    assert real.isdisjoint(paper_keys(Paper("Another Paper", links=(Link("Paper", "https://x.org/v2"),))))
