"""The end-to-end world shared by tests/test_e2e.py (#15) and tests/test_chaos.py (#22): a git repository as the
source, aiosmtpd with a few subscribers, tests/x_server.py, tests/discord_server.py and tests/mastodon_server.py
(#31), a config live on every
channel, `paperbot run` as a subprocess (`Daemon`), and readers of what each server received.

Discord is a webhook that posts with, by default, a bot token that reads the channel back (`bot=False`: the
webhook alone, which cannot read back).
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from conftest import commit_file, make_repo
from discord_server import DiscordServer, shown
from mastodon_server import MastodonServer
from publish_support import SECRET, Recorder, add_subscribers, smtp_server
from x_server import XServer

from bot.channels import load_config
from bot.channels.email.mime import message_id
from bot.store import Store

SOURCE = "dair"
CHANNELS = ("email", "x", "discord", "mastodon")
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
BSKY_CREDS = {"PAPERBOT_BLUESKY_HANDLE": "paperbot.test", "PAPERBOT_BLUESKY_APP_PASSWORD": "e2e1-e2e2-e2e3-e2e4"}
MASTODON_TOKEN = "mastodon-e2e-token"
DOMAIN = "papers.weekly.test"  # the list id: our Message-IDs' right-hand side


def heading(key: str) -> str:
    """A week's dates as the digest's heading gives them: "Feb 20-26", "Feb 27 - Mar 5"."""
    if key in HEADINGS:
        return HEADINGS[key]
    first, last = (date.fromisoformat(d) for d in key.split(".."))
    return f"{first:%b} {first.day}-{last.day}" if first.month == last.month else \
        f"{first:%b} {first.day} - {last:%b} {last.day}"


def digest(weeks: dict[str, list[tuple[str, int]]], long: bool = False) -> str:
    """The digest's README in the seeds' form (dair-ai's): a table per week, newest first. `long`: summaries of
    about 1,500 characters, so a week's Discord announcement is several messages."""
    out = ["# **ML Papers of The Week**", "", "We ❤️ reading ML papers so we've created this repo to highlight the "
           "top ML papers of every week.", ""]
    for key in sorted(weeks, reverse=True):
        out += [f"## Top ML Papers of the Week ({heading(key)})", "", "| **Paper**  | **Links** |",
                "| ------------- | ------------- |"]
        for i, (title, n) in enumerate(weeks[key], 1):
            more = (" It" + " scales, generalises and holds up under ablation on every benchmark;" * 22)[:1500]
            more = more if long else ""
            out.append(f"| {i}) **{title}** - what {title.split(',')[0].lower()} found, in a line.{more}  | "
                       f"[Paper](https://arxiv.org/abs/2302.{n:05d}), "
                       f"[Tweet](https://twitter.com/dair_ai/status/16298455359464{n:05d}?s=20) |")
        out.append("")
    return "\n".join(out)


def write_config(tmp: Path, smtp_port: int, x: XServer, d: DiscordServer, repo: Path, x_delay: str = "1s",
                 m: MastodonServer | None = None, bluesky: str | None = None) -> Path:
    """Live on every channel (`.test` domains pass the live-send checks), timeouts and delays of a second;
    Mastodon only with `m` (issue #31), Bluesky only at `bluesky`, its service (issue #30: the chaos test), else
    off."""
    bsky = f'service = "{bluesky}"\ntimeout = "1s"\ndelay = "0s"' if bluesky else "enabled = false"
    path = tmp / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
[publish]
settle = "0s"
wait_for_papers = "0s"
backfill = 0
max_per_day = 100  # weeks of a year come minutes apart here (#21's daily cap: tests/test_publish_guard.py)
[email]
smtp_url = "smtp://127.0.0.1:{smtp_port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
subject = "{{title}}"
contact = "help@weekly.test"
list_id = "{DOMAIN}"
connections = 2
[arxiv]
enabled = false
[web]
base_url = "https://papers.weekly.test"
listen = "127.0.0.1:0"
[x]
api_base = "{x.api_base}"
timeout = "1s"
delay = "{x_delay}"
daily_budget = 1000
[discord]
api_base = "{d.api_base}"
timeout = "1s"
max_wait = "1s"
channel_id = "{d.webhook_channel}"
edit_on_correction = true
[bluesky]
{bsky}
[mastodon]
""" + (f'instance = "{m.base_url}"\ntimeout = "1s"\ndelay = "{x_delay}"\n' if m else "enabled = false\n")
        + f"""[[sources]]
name = "{SOURCE}"
git = "{repo}"
every = "1s"
""", encoding="utf-8")
    load_config(path)  # fails here, loudly, if the config is not valid
    return path


class Daemon:
    """`paperbot run` processes on one state folder, one at a time; each with its own log file."""

    def __init__(self, cfg_path: Path, d: DiscordServer, *, bot: bool = True):
        self.cfg_path = cfg_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_")}
        self.env.update(XCREDS, **BSKY_CREDS, PAPERBOT_SECRET_KEY=SECRET,
                        PAPERBOT_DISCORD_WEBHOOK_URL=d.webhook_url(), PAPERBOT_MASTODON_TOKEN=MASTODON_TOKEN)
        if bot:  # the bot reads the channel back; without it, the webhook alone
            self.env["PAPERBOT_DISCORD_BOT_TOKEN"] = d.bot_token
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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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


def published(db: Path, keys: tuple[str, ...], channels: tuple[str, ...] = CHANNELS) -> bool:
    """Every week of `keys` is published on every channel."""
    rows = query(db, "SELECT week_key, channel FROM publications WHERE state = 'published' AND source = ?", (SOURCE,))
    return {(k, c) for k in keys for c in channels} <= set(rows)


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


def mastodon_threads(m: MastodonServer, keys: tuple[str, ...]) -> dict[str, list]:
    """week -> its thread on Mastodon (m.thread fails if a thread branches); every status of the account is in one
    of them, no text twice (a blind resend would show), each week has exactly one head (issue #31)."""
    ours = m.ours()
    threads = {}
    for k in keys:
        heads = [s for s in ours if s.in_reply_to is None and f"/editions/{SOURCE}/{k}" in s.text]
        assert len(heads) == 1, f"{len(heads)} head statuses for {k}: {[h.text[:60] for h in heads]}"
        threads[k] = m.thread(heads[0].id)
    assert sorted(s.id for t in threads.values() for s in t) == sorted(s.id for s in ours), "a status outside"
    assert len({s.text for s in ours}) == len(ours), "a status's text twice"
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


def log_of(server: XServer | DiscordServer | MastodonServer) -> str:
    """A server's requests, one a line, for a failure's message: when, what, the answer, what it carried."""
    def what(body: object) -> str:
        if not isinstance(body, dict):
            return ""
        text = str(body.get("text") or body.get("status") or "")[:60]  # X's or Mastodon's
        return text or str([shown(e.get("title", "")) for e in body.get("embeds") or []])

    return "\n".join(f"{r.at:.3f} {r.method} {r.path[:40]} {r.status} {what(r.body)}" for r in server.requests)


def late_embeds_of(e: dict) -> bool:
    return LATE_TITLE in ((e.get("author") or {}).get("name") or "")


def late_embeds(m) -> list[dict]:
    return [e for e in m.embeds if late_embeds_of(e)]



@contextmanager
def world(tmp_path: Path, people: list[str], *, x_delay: str = "1s", x_window: int = 100, bluesky: str | None = None,
          ) -> Iterator[tuple[Recorder, XServer, DiscordServer, MastodonServer, Path, Path, Path]]:
    """The local peers (SMTP, X, Discord, Mastodon), a git repo holding week W0, the config and its subscribers.
    `x_window`: the posts X allows in 15 minutes (a soak makes more than X's 100). Bluesky is on only at `bluesky`,
    the service of a BlueskyServer the caller runs (issue #30)."""
    with smtp_server() as (rec, port), XServer(*XCREDS.values(), post_limit=x_window) as x, \
            DiscordServer(rate=50) as d, MastodonServer(MASTODON_TOKEN, limit=100_000) as m:
        repo = make_repo(tmp_path / "digest")
        commit_file(repo, "README.md", digest({W0: PAPERS[W0]}), "2023-02-20T10:00:00+00:00", "W0")
        cfg_path = write_config(tmp_path, port, x, d, repo, x_delay, m, bluesky)
        db = load_config(cfg_path).db_path
        store = Store.open(db)
        add_subscribers(store, tmp_path, people)
        store.close()
        yield rec, x, d, m, repo, cfg_path, db

