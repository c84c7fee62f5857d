"""Issue #15, "Done when": the whole daemon, end to end, and under kills and faults.

Real parts only: `paperbot run` as a subprocess (started, SIGKILLed and SIGTERMed as an operator's host would),
a git repository made here as its source (every commit is a version the daemon polls, `every = "1s"`), aiosmtpd
on 127.0.0.1 with a few subscribers, tests/x_server.py (X API v2, driven by the real tweepy client) and
tests/discord_server.py (Discord REST, driven by discord.py: a webhook posts, a bot token reads back). What is
asserted is what the servers received and what the ledger (the SQLite file) says.

- `test_each_week_arrives_once_on_every_channel_a_fix_edits_and_a_late_paper_rides_the_next_week`: a new week
  arrives once on every channel; a title fix sends nothing new (Discord edits its message); a paper added later
  to that week arrives in the next week's edition on every channel.
- `test_twenty_kills_and_flaky_apis_lose_and_repeat_nothing`: the same while the daemon is SIGKILLed at random
  moments 20 times and the APIs fail about 20% of requests. The seed is printed; `PAPERBOT_CHAOS_SEED=N`
  replays its kill moments and fault draws (the servers' draws follow the order requests arrive in, so a replay
  is close, not exact). `PAPERBOT_CHAOS_KILLS` sets the number of kills; the `soak` marker runs a longer one
  (`pytest -m soak`).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import commit_file, make_repo
from discord_server import DiscordServer, shown
from publish_support import SECRET, Recorder, add_subscribers, addresses, smtp_server
from x_server import XServer

from bot.channels import load_config
from bot.channels.email.mime import message_id
from bot.store import Store

SOURCE = "dair"
CHANNELS = ("email", "x", "discord")
W0, W1, W2, W3 = "2023-02-13..2023-02-19", "2023-02-20..2023-02-26", "2023-02-27..2023-03-05", "2023-03-06..2023-03-12"
HEADINGS = {W0: "Feb 13-19", W1: "Feb 20-26", W2: "Feb 27 - Mar 5", W3: "Mar 6 - Mar 12"}
# (title, arXiv number): the link stays when a title is fixed, so a fix is a correction, not a new paper
PAPERS = {W0: [("Baseline Beacons", 1), ("Old Orchards", 2)],
          W1: [("Sparse Lanterns", 11), ("Quiet Gradients", 12), ("Tidal Tokenizers", 13)],
          W2: [("Deep Kettles", 21), ("Folded Attention", 22), ("Paper Boats", 23)],
          W3: [("Tiny Rockets", 31), ("Orchard Search", 32), ("Lazy Optimizers", 33)]}
FIX = ("Quiet Gradients", "Quieter Gradients, Fixed")
LATE = ("Sunday Night Transformers", 14)
LATE_TITLE = "Added to earlier weeks"
XCREDS = {"PAPERBOT_X_CONSUMER_KEY": "ck-e2e-1", "PAPERBOT_X_CONSUMER_SECRET": "cs-e2e-2",
          "PAPERBOT_X_ACCESS_TOKEN": "at-e2e-3", "PAPERBOT_X_ACCESS_TOKEN_SECRET": "ats-e2e-4"}
DOMAIN = "papers.weekly.test"  # the list id: our Message-IDs' right-hand side


def digest(weeks: dict[str, list[tuple[str, int]]], long: bool = False) -> str:
    """The digest's README in the seeds' form (dair-ai's): a table per week, newest first. `long`: summaries of
    about 1,500 characters, so a week's Discord announcement is several messages."""
    out = ["# **ML Papers of The Week**", "", "We ❤️ reading ML papers so we've created this repo to highlight the "
           "top ML papers of every week.", ""]
    for key in sorted(weeks, reverse=True):
        out += [f"## Top ML Papers of the Week ({HEADINGS[key]})", "", "| **Paper**  | **Links** |",
                "| ------------- | ------------- |"]
        for i, (title, n) in enumerate(weeks[key], 1):
            more = (" It" + " scales, generalises and holds up under ablation on every benchmark;" * 22)[:1500]
            more = more if long else ""
            out.append(f"| {i}) **{title}** - what {title.split(',')[0].lower()} found, in a line.{more}  | "
                       f"[Paper](https://arxiv.org/abs/2302.{n:05d}), "
                       f"[Tweet](https://twitter.com/dair_ai/status/16298455359464{n:05d}?s=20) |")
        out.append("")
    return "\n".join(out)


def write_config(tmp: Path, smtp_port: int, x: XServer, d: DiscordServer, repo: Path) -> Path:
    """Live on every channel (`.test` domains pass the live-send checks), timeouts and delays of a second."""
    path = tmp / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
[publish]
settle = "0s"
wait_for_papers = "0s"
backfill = 0
max_per_day = 10  # weeks of a year come minutes apart here (#21's daily cap: tests/test_publish_guard.py)
[email]
smtp_url = "smtp://127.0.0.1:{smtp_port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
subject = "{{title}}"
contact = "help@weekly.test"
list_id = "{DOMAIN}"
connections = 2
[web]
base_url = "https://papers.weekly.test"
listen = "127.0.0.1:0"
[x]
api_base = "{x.api_base}"
timeout = "1s"
delay = "1s"
daily_budget = 1000
[discord]
api_base = "{d.api_base}"
timeout = "1s"
max_wait = "1s"
channel_id = "{d.webhook_channel}"
edit_on_correction = true
[[sources]]
name = "{SOURCE}"
git = "{repo}"
every = "1s"
""", encoding="utf-8")
    load_config(path)  # fails here, loudly, if the config is not valid
    return path


class Daemon:
    """`paperbot run` processes on one state folder, one at a time; each with its own log file."""

    def __init__(self, cfg_path: Path, d: DiscordServer):
        self.cfg_path = cfg_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")}
        self.env.update(XCREDS, PAPERBOT_SECRET_KEY=SECRET, PAPERBOT_DISCORD_WEBHOOK_URL=d.webhook_url(),
                        PAPERBOT_DISCORD_BOT_TOKEN=d.bot_token)
        self.runs = 0
        self.proc: subprocess.Popen | None = None
        self.log = cfg_path.parent / "daemon-0.log"

    def start(self) -> subprocess.Popen:
        self.runs += 1
        self.log = self.cfg_path.parent / f"daemon-{self.runs}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(self.cfg_path), "run"],
                                     cwd=self.cfg_path.parent, env=self.env, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)
        return self.proc

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, what: str, check: Callable[[], bool], limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while not check():
            assert self.proc is None or self.proc.poll() is None, \
                f"the daemon exited ({self.proc.returncode}) while waiting for {what}:\n{self.text()[-5000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.text()[-5000:]}"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the daemon did not stop within 15 s:\n{self.text()[-5000:]}")


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def published(db: Path, keys: tuple[str, ...]) -> bool:
    """Every week of `keys` is published on every channel."""
    rows = query(db, "SELECT week_key, channel FROM publications WHERE state = 'published' AND source = ?", (SOURCE,))
    return {(k, c) for k in keys for c in CHANNELS} <= set(rows)


# -- what each server received ------------------------------------------------------------------------------------

def mail_by_week(rec: Recorder, keys: tuple[str, ...]) -> dict[tuple[str, str], list[str]]:
    """(recipient, week) -> the text part of each message received for it, the week told by its Message-ID."""
    ids = {}
    out: dict[tuple[str, str], list[str]] = {}
    with rec.lock:
        messages = list(rec.messages)
    for rcpt, raw in messages:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for k in keys:
            ids.setdefault((rcpt, k), message_id(SOURCE, k, rcpt, DOMAIN))
        week = next((k for k in keys if ids[(rcpt, k)] == msg["Message-ID"]), None)
        assert week is not None, f"a message to {rcpt} of no week: {msg['Subject']}"
        out.setdefault((rcpt, week), []).append(msg.get_body(("plain",)).get_content())
    return out


def x_threads(x: XServer, keys: tuple[str, ...]) -> dict[str, list]:
    """week -> its thread as a reader sees it (x.thread fails if a thread branches); every post of the account
    must be in one of them, and each week has exactly one head (its post linking the week's edition)."""
    ours = x.ours()
    threads = {}
    for k in keys:
        heads = [p for p in ours if p.in_reply_to is None and f"/editions/{SOURCE}/{k}" in p.text]
        assert len(heads) == 1, f"{len(heads)} head posts for {k}: {[h.text[:60] for h in heads]}"
        threads[k] = x.thread(heads[0].id)
    in_threads = [p.id for t in threads.values() for p in t]
    assert sorted(in_threads) == sorted(p.id for p in ours), "a post outside the weeks' threads"
    assert len({p.text for p in ours}) == len(ours), "a post's text twice"
    return threads


def discord_by_week(d: DiscordServer, keys: tuple[str, ...], papers: dict = PAPERS) -> dict[str, list]:
    """week -> the messages showing its own papers (by their embeds' titles); each message belongs to one week."""
    out: dict[str, list] = {k: [] for k in keys}
    for m in d.in_channel(d.webhook_channel):
        titles = {shown(e.get("title") or "") for e in m.embeds if not (e.get("author") or {}).get("name")}
        weeks = [k for k in keys if titles & ({t for t, _ in papers[k]} | ({FIX[1]} if k == W1 else set()))]
        assert len(weeks) == 1, f"message {m.id} shows papers of {weeks}"
        out[weeks[0]].append(m)
    return out


def log_of(server: XServer | DiscordServer) -> str:
    """A server's requests, one a line, for a failure's message: when, what, the answer, what it carried."""
    def what(body: object) -> str:
        if not isinstance(body, dict):
            return ""
        return str(body.get("text", "")[:60]) or str([shown(e.get("title", "")) for e in body.get("embeds") or []])

    return "\n".join(f"{r.at:.3f} {r.method} {r.path[:40]} {r.status} {what(r.body)}" for r in server.requests)


def late_embeds_of(e: dict) -> bool:
    return LATE_TITLE in ((e.get("author") or {}).get("name") or "")


def late_embeds(m) -> list[dict]:
    return [e for e in m.embeds if late_embeds_of(e)]


# -- 1. end to end ------------------------------------------------------------------------------------------------

@contextmanager
def world(tmp_path: Path, people: list[str]) -> Iterator[tuple[Recorder, XServer, DiscordServer, Path, Path, Path]]:
    """The local peers (SMTP, X, Discord), a git repo holding week W0, the config and its subscribers."""
    with smtp_server() as (rec, port), XServer(*XCREDS.values()) as x, DiscordServer(rate=50) as d:
        repo = make_repo(tmp_path / "digest")
        commit_file(repo, "README.md", digest({W0: PAPERS[W0]}), "2023-02-20T10:00:00+00:00", "W0")
        cfg_path = write_config(tmp_path, port, x, d, repo)
        db = load_config(cfg_path).db_path
        store = Store.open(db)
        add_subscribers(store, tmp_path, people)
        store.close()
        yield rec, x, d, repo, cfg_path, db


def test_each_week_arrives_once_on_every_channel_a_fix_edits_and_a_late_paper_rides_the_next_week(tmp_path):
    """issue #15: a week committed to the source arrives once on every channel; a commit that only fixes a title
    sends nothing new, and Discord (edit_on_correction) edits its message; a paper added to that week later
    arrives in the next week's edition on every channel: the email's text, an X "Added to" post at the end of
    the thread, a Discord embed marked as added to the earlier week."""
    people = addresses(4)
    started = time.monotonic()
    with world(tmp_path, people) as (rec, x, d, repo, cfg_path, db):
        daemon = Daemon(cfg_path, d)
        daemon.start()
        daemon.wait("the first poll", lambda: bool(query(db, "SELECT 1 FROM weeks WHERE key = ?", (W0,))))
        assert query(db, "SELECT count(*) FROM publications")[0][0] == 0, "the baseline week was sent"

        commit_file(repo, "README.md", digest({W1: PAPERS[W1], W0: PAPERS[W0]}), "2023-02-27T10:00:00+00:00", "W1")
        daemon.wait("W1 on every channel", lambda: published(db, (W1,)))
        mail = mail_by_week(rec, (W1,))
        assert sorted(r for r, _ in mail) == people and all(len(v) == 1 for v in mail.values()), mail.keys()
        (thread,) = x_threads(x, (W1,)).values()
        assert len(thread) == 1 + 3 and all(t in p.text for (t, _), p in zip(PAPERS[W1], thread[1:], strict=True))
        (announced,) = discord_by_week(d, (W1,))[W1]
        counts = rec.count(), len(x.ours()), len(d.messages)

        fixed = [(FIX[1] if t == FIX[0] else t, n) for t, n in PAPERS[W1]]
        commit_file(repo, "README.md", digest({W1: fixed, W0: PAPERS[W0]}), "2023-02-28T10:00:00+00:00", "fix")
        daemon.wait("Discord's edit", lambda: any(s.method == "PATCH" and s.status == 200 for s in d.requests))
        time.sleep(3)  # three more polls of `every = "1s"`: a fix never sends anything new
        assert (rec.count(), len(x.ours()), len(d.messages)) == counts, "the title fix sent something new"
        patches = [s for s in d.requests if s.method == "PATCH"]
        assert len(patches) == 1 and patches[0].path.endswith(f"/messages/{announced.id}")
        assert FIX[1] in [shown(e["title"]) for e in d.messages[announced.id].embeds]

        late = [*fixed, LATE]
        commit_file(repo, "README.md", digest({W1: late, W0: PAPERS[W0]}), "2023-03-01T10:00:00+00:00", "late")
        daemon.wait("the late paper to be found on every channel", lambda: len(query(
            db, "SELECT channel FROM late_additions WHERE week_key = ?", (W1,))) == 3)
        assert (rec.count(), len(x.ours()), len(d.messages)) == counts, "a late paper waits for the next week"
        commit_file(repo, "README.md", digest({W2: PAPERS[W2], W1: late, W0: PAPERS[W0]}),
                    "2023-03-06T10:00:00+00:00", "W2")
        daemon.wait("W2 on every channel", lambda: published(db, (W2,)))
        assert daemon.stop() == 0
        assert "Traceback" not in "".join(p.read_text() for p in tmp_path.glob("daemon-*.log"))

    mail = mail_by_week(rec, (W1, W2))
    assert sorted(mail) == sorted((p, k) for p in people for k in (W1, W2))
    assert all(len(v) == 1 for v in mail.values()), "a subscriber got a week twice"
    for p in people:
        (second,) = mail[(p, W2)]
        assert second.count(LATE[0]) == 1 and LATE_TITLE in second
        assert second.index(PAPERS[W2][-1][0]) < second.index(LATE_TITLE) < second.index(LATE[0])
        assert LATE[0] not in mail[(p, W1)][0]
    threads = x_threads(x, (W1, W2))
    assert len(threads[W1]) == 4 and len(threads[W2]) == 1 + 3 + 1
    assert threads[W2][-1].text.startswith("Added to ") and LATE[0] in threads[W2][-1].text
    assert [p.text for p in x.ours()].count(threads[W2][-1].text) == 1
    assert sum(LATE[0] in p.text for p in x.ours()) == 1
    by_week = discord_by_week(d, (W1, W2))
    assert [len(v) for v in by_week.values()] == [1, 1] and len(d.messages) == 2
    (carrier,) = by_week[W2]
    assert [shown(e["title"]) for e in late_embeds(carrier)] == [LATE[0]]
    assert sum(LATE[0] in json.dumps(m.embeds, ensure_ascii=False) for m in d.messages.values()) == 1
    print(f"\nend to end in {time.monotonic() - started:.1f} s: {rec.count()} emails, {len(x.ours())} X posts, "
          f"{len(d.messages)} Discord messages, {len(patches)} edit")


# -- 2. chaos ------------------------------------------------------------------------------------------------------

KILLS = int(os.environ.get("PAPERBOT_CHAOS_KILLS") or 20)
WEEKS = (W1, W2, W3)
# Eight papers a week with long summaries: a thread of 9 posts on X, an announcement of 3 messages on Discord
_WORDS = ("Sparse Quiet Tidal Deep Folded Tiny Lazy Paper Orchard Velvet Hollow Amber Silent Rapid Frozen Gentle "
          "Crimson Bright Narrow Distant Wandering Humble Curious Patient").split()
CHAOS_PAPERS = {W0: PAPERS[W0], **{k: [(f"{_WORDS[8 * w + i]} {('Lanterns', 'Kettles', 'Rockets')[w]} {i + 1}",
                                        100 * (w + 1) + i) for i in range(8)] for w, k in enumerate(WEEKS)}}


def _versions() -> list[tuple[str, str, dict[str, list[tuple[str, int]]]]]:
    """The commits of the chaos run, after the baseline: (date, message, weeks). Three weeks and a late paper."""
    p = CHAOS_PAPERS
    w1 = [*p[W1], LATE]
    return [("2023-02-27T10:00:00+00:00", "W1", {W1: p[W1], W0: p[W0]}),
            ("2023-03-06T10:00:00+00:00", "W2", {W2: p[W2], W1: p[W1], W0: p[W0]}),
            ("2023-03-08T10:00:00+00:00", "late", {W2: p[W2], W1: w1, W0: p[W0]}),
            ("2023-03-13T10:00:00+00:00", "W3", {W3: p[W3], W2: p[W2], W1: w1, W0: p[W0]})]


def _settle_by_hand(cfg_path: Path, db: Path, x: XServer, daemon: Daemon) -> int:
    """What an operator does with X posts left `uncertain` (or `refused` as a duplicate not found): look at the
    account (here: the server's record of posts) and say `--posted ID` if the post is there, else `--retry`.
    Returns how many units were settled so."""
    settled = 0
    for key in WEEKS:
        rows = query(db, "SELECT state, remote_id FROM deliveries WHERE source = ? AND week_key = ? AND channel = 'x' "
                         "ORDER BY id", (SOURCE, key))
        for n, (state, _) in enumerate(rows, start=1):
            if state not in ("uncertain", "refused"):
                continue
            ours = x.ours()
            if n == 1:
                found = [p for p in ours if p.in_reply_to is None and f"/editions/{SOURCE}/{key}" in p.text]
            else:
                found = [p for p in ours if p.in_reply_to == rows[n - 2][1]]
            how = ["--posted", found[0].id] if found else ["--retry"]
            out = subprocess.run([sys.executable, "-m", "bot", "--config", str(cfg_path), "resolve", f"{SOURCE}:{key}",
                                  "--channel", "x", "--unit", str(n), *how], cwd=cfg_path.parent, env=daemon.env,
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stdout + out.stderr
            print(f"resolved x {key} unit {n} ({state}): {' '.join(how)}")
            settled += 1
    return settled


def _chaos(tmp_path: Path, kills: int) -> None:
    seed = int(os.environ.get("PAPERBOT_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nchaos seed {seed} (replay with PAPERBOT_CHAOS_SEED={seed}), {kills} kills")
    rng = random.Random(seed)
    people = addresses(4)
    versions = _versions()
    commit_at = {0: 0, kills // 5: 1, 2 * kills // 5: 2, 3 * kills // 5: 3}  # kill round -> the version committed
    started = time.monotonic()
    with world(tmp_path, people) as (rec, x, d, repo, cfg_path, db):
        x.chaos(random.Random(rng.random()), 0.2)
        d.chaos(random.Random(rng.random()), 0.2)
        rec.chaos(random.Random(rng.random()), 0.15)
        daemon = Daemon(cfg_path, d)
        daemon.start()  # its first poll takes the digest as it is as the baseline: only later weeks are new
        daemon.wait("the first poll", lambda: bool(query(db, "SELECT 1 FROM weeks WHERE key = ?", (W0,))))
        assert daemon.stop() == 0
        for i in range(kills):
            if i in commit_at:
                when, message, weeks = versions[commit_at[i]]
                commit_file(repo, "README.md", digest(weeks, long=True), when, message)
            daemon.start()
            daemon.wait("the daemon to start", lambda: "paperbot running" in daemon.text())
            time.sleep(rng.uniform(0.0, 2.5))
            daemon.kill()
        for i in range(max(commit_at) + 1, len(versions)):  # fewer kills than versions (PAPERBOT_CHAOS_KILLS)
            commit_file(repo, "README.md", digest(versions[i][2], long=True), versions[i][0], versions[i][1])
        chaos_took = time.monotonic() - started

        x.chaos(None)
        d.chaos(None)
        rec.chaos(None)
        resolves = 0
        for _ in range(4):  # the daemon left to finish; what it cannot settle, the operator does
            daemon.start()
            daemon.wait("the daemon to start", lambda: "paperbot running" in daemon.text())
            deadline, last, still = time.monotonic() + 60, None, time.monotonic()
            while not published(db, WEEKS) and time.monotonic() < deadline:
                state = query(db, "SELECT channel, state, count(*) FROM deliveries GROUP BY channel, state")
                if state != last:
                    last, still = state, time.monotonic()
                if time.monotonic() - still > 10:
                    break  # stuck: what is left, only the operator can settle (or it is a bug)
                assert daemon.proc.poll() is None, daemon.text()[-5000:]
                time.sleep(0.2)
            assert daemon.stop() == 0, daemon.text()[-5000:]
            if published(db, WEEKS):
                break
            settled = _settle_by_hand(cfg_path, db, x, daemon)
            if not settled:
                break
            resolves += settled
        ledger_rows = query(db, "SELECT week_key, channel, unit, state, attempts, last_error FROM deliveries "
                                "ORDER BY id")
        assert published(db, WEEKS), "not every week went out on every channel:\n" + "\n".join(map(str, ledger_rows))
        pubs = query(db, "SELECT week_key, channel, state FROM publications ORDER BY week_key, channel")
        assert sorted((k, c) for k, c, _ in pubs) == sorted((k, c) for k in WEEKS for c in CHANNELS), pubs
        logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("daemon-*.log"))
        assert "Traceback" not in logs, logs[logs.index("Traceback") - 2000:][:6000]
        x_early, d_early = x.early(), d.early()

    # email: each subscriber has each week; a second copy only where the ledger shows the row was tried again
    mail = mail_by_week(rec, WEEKS)
    assert sorted(mail) == sorted((p, k) for p in people for k in WEEKS), "a subscriber misses a week"
    attempts = {(k, u): a for k, c, u, _, a, _ in ledger_rows if c == "email"}
    extra = {rk: len(v) for rk, v in mail.items() if len(v) > 1}
    assert all(attempts[(k, r)] >= n for (r, k), n in extra.items()), \
        f"copies beyond the ledger's attempts: {extra} (attempts {attempts})"
    for p in people:  # the late paper: in exactly one of the subscriber's weeks, whichever carried it
        assert sum(LATE[0] in texts[0] for (r, _), texts in mail.items() if r == p) == 1, p
    # X: one thread per week, complete, nothing twice, the late paper once
    try:
        threads = x_threads(x, WEEKS)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{log_of(x)}") from None
    for k in WEEKS:
        titles = [t for t, _ in CHAOS_PAPERS[k]]
        assert all(t in p.text for t, p in zip(titles, threads[k][1:], strict=False)), k
        assert len(threads[k]) - 1 - len(titles) in (0, 1), [p.text[:50] for p in threads[k]]
    assert sum(LATE[0] in p.text for p in x.ours()) == 1
    # Discord: one announcement per week, nothing twice, the late paper once
    by_week = discord_by_week(d, WEEKS, CHAOS_PAPERS)
    sizes = {k: len(query(db, "SELECT 1 FROM deliveries WHERE week_key = ? AND channel = 'discord'", (k,)))
             for k in WEEKS}
    assert {k: len(v) for k, v in by_week.items()} == sizes, "a Discord message missing or twice:\n" + log_of(d)
    for k in WEEKS:  # each message once: every paper's embed once in the week's announcement
        shown_titles = [shown(e["title"]) for m in by_week[k] for e in m.embeds if not late_embeds_of(e)]
        own = sorted(t for t in shown_titles if t != LATE[0])  # the late paper is W1's own if planned after it came
        assert own == sorted(t for t, _ in CHAOS_PAPERS[k]), (k, shown_titles)
    assert sum(LATE[0] in json.dumps(m.embeds, ensure_ascii=False) for m in d.messages.values()) == 1
    # nobody came back before a reset the server announced
    assert x_early == [], [(r.method, r.path, r.at) for r in x_early]
    assert d_early == [], [(r.method, r.path, r.at) for r in d_early]

    faults = Counter({f"x {k}": n for k, n in x.injected.items()})
    faults.update({f"discord {k}": n for k, n in d.injected.items()})
    faults.update({f"smtp {k}": n for k, n in rec.injected.items()})
    print(f"chaos seed {seed}: {kills} kills in {chaos_took:.0f} s, done in {time.monotonic() - started:.0f} s; "
          f"faults injected {sum(faults.values())}: {', '.join(f'{k} {n}' for k, n in sorted(faults.items()))}; "
          f"X: {len(x.ours())} posts from {sum(r.method == 'POST' for r in x.requests)} create requests, "
          f"{len(x.resets)} resets announced; Discord: {len(d.messages)} messages from "
          f"{len(d.posts())} create requests, {len(d.resets)} resets announced; email: {rec.count()} messages, "
          f"{sum(n - 1 for n in extra.values())} duplicates allowed by the ledger ({sorted(extra)}); "
          f"resolves by hand: {resolves}")


def test_twenty_kills_and_flaky_apis_lose_and_repeat_nothing(tmp_path):
    """issue #15: the daemon SIGKILLed at random moments 20 times (restarted each time) while X and Discord fail
    ~20% of requests (429s with resets a few seconds ahead, 5xx, stalls past the timeout, dropped connections)
    and SMTP defers or drops some; three weeks and a late paper committed over the run. Afterwards, faults off:
    every week on every channel exactly once (an email twice only where the ledger shows a second attempt: in
    flight at a kill), no X post or Discord message twice, nothing lost, no request before an announced reset."""
    _chaos(tmp_path, KILLS)


@pytest.mark.soak
def test_a_long_soak_of_kills_and_faults(tmp_path):
    """issue #15: the chaos test with 100 kills (`pytest -m soak`; not run by default)."""
    _chaos(tmp_path, int(os.environ.get("PAPERBOT_SOAK_KILLS") or 100))
