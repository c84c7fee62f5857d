"""Real parts for the publishing tests: an aiosmtpd server on 127.0.0.1, a ready week, a config file."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from chaos_support import Faults

from bot.channels import load_config
from bot.channels.email import subscribers
from bot.config import Config
from bot.store import Store, WeekRow
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"

DIGEST = "\n".join([
    "# Papers We Liked This Week",
    "",
    "## Top ML Papers of the Week (Feb 20-26)",
    "",
    "| **Paper**  | **Links** |",
    "| ------------- | ------------- |",
    "| 1) **Sparse Lanterns** - routes tokens to a handful of experts and halves the compute. "
    "| [Paper](https://arxiv.org/abs/2302.00001) |",
    "| 2) **Quiet Gradients** - why small learning rates generalise: a link to flat minima. "
    "| [Paper](https://arxiv.org/abs/2302.00002), [Code](https://github.com/example/quiet) |",
    "| 3) **Déjà vu: Tables All the Way Down** - parses tables from scanned papers. "
    "| [Paper](https://arxiv.org/abs/2302.00003) |",
    "",
])
KEY = "2023-02-20..2023-02-26"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """Counts and keeps what arrives; refuses RCPT for `refuse` (550) and defers DATA for `defer` (451)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes]] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self.refuse: set[str] = set()
        self.defer: dict[str, int] = {}  # address -> how many more DATA to answer 451
        self.drop: set[str] = set()  # close the connection instead of answering DATA, once per address
        # issue #21: take the message, then close without answering (`drop`) or answer after `seconds` (`hang`),
        # once per address: the client cannot know it was delivered
        self.after_data: dict[str, tuple[str, float]] = {}
        self.drop_at_rcpt: set[str] = set()  # close the connection at RCPT, before any data: nothing taken
        self.reject_content = False  # answer every DATA with a 5xx, as a spam filter refusing the message
        self.logins: list[tuple[bytes, bytes]] = []
        self.plan: Faults | None = None  # chaos (issues #15, #22): the seed's fault schedule for DATA
        self.injected: Counter[str] = Counter()

    def chaos(self, faults: Faults | None) -> None:
        """Answer DATA as `faults` schedules (None: no more faults): a 451 or a closed connection, the message
        not taken either way; and each DATA takes the schedule's latency (a message is taken, then answered)."""
        with self.lock:
            if self.plan is not None and faults is None:
                self.plan.stop()
            self.plan = faults

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.logins.append((auth_data.login, auth_data.password))
        # handled=False: aiosmtpd then answers a wrong password with 535 (by default it answers nothing at all)
        return AuthResult(success=auth_data.password == b"s3cret-pw", handled=False)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        with self.lock:
            self.rcpt_attempts[address] += 1
            dropped = address in self.drop_at_rcpt
            self.drop_at_rcpt.discard(address)
        if dropped:
            server.transport.close()
            return "421 4.3.2 closing"
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        rcpt = envelope.rcpt_tos[0]
        with self.lock:
            late = self.after_data.pop(rcpt, None)
            if late:
                self.messages.append((rcpt, envelope.original_content or envelope.content))
        if late and late[0] == "drop":
            server.transport.close()
            return "421 4.3.2 closing"
        if late:
            await asyncio.sleep(late[1])
            return "250 OK"
        d = self.plan.next("data") if self.plan else None
        if d is not None and d.fault and d.latency:
            await asyncio.sleep(d.latency)
        with self.lock:
            if d is not None and d.fault:
                self.injected[d.fault] += 1
                if d.fault == "drop":
                    server.transport.close()
                    return "421 4.3.2 closing"
                return "451 4.3.0 mailbox busy, try again later"
            if rcpt in self.drop:
                self.drop.discard(rcpt)
                server.transport.close()
                return "421 4.3.2 closing"
            if self.reject_content:
                return "554 5.7.1 message refused by content filter"
            if self.defer.get(rcpt, 0) > 0:
                self.defer[rcpt] -= 1
                return "451 4.3.0 mailbox busy, try again later"
            self.messages.append((rcpt, envelope.original_content or envelope.content))
        if d is not None and d.latency:
            await asyncio.sleep(d.latency)  # taken, answered only now: a client killed meanwhile never knows
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def recipients(self) -> Counter[str]:
        with self.lock:
            return Counter(r for r, _ in self.messages)


@contextmanager
def smtp_server(*, auth: bool = False) -> Iterator[tuple[Recorder, int]]:
    """`auth`: the server demands a login (over plain text, as this test server has no certificate)."""
    rec = Recorder()
    port = free_port()
    extra = {"authenticator": rec.authenticate, "auth_required": True, "auth_require_tls": False} if auth else {}
    ctl = Controller(rec, hostname="127.0.0.1", port=port, **extra)
    ctl.start()
    try:
        yield rec, port
    finally:
        ctl.stop()


def write_config(tmp: Path, port: int | None, *, connections: int = 2, rate: float = 0, user: str = "",
                 x: str | None = None, discord: str | None = None, bluesky: str | None = None,
                 mastodon: str | None = None, batch: int | None = None, arxiv: str | None = None) -> Config:
    """A config that may send for real (issue #14: no example domain, a public base_url; `.test` is the
    domain reserved for tests, which the live-send checks allow). X is off unless `x` gives the `[x]` table's
    lines (tests/test_x_thread.py), and Discord unless `discord` gives the `[discord]` table's
    (tests/test_discord_publish.py), and Bluesky unless `bluesky` gives the `[bluesky]` table's (issue #30),
    and Mastodon unless `mastodon` gives the `[mastodon]` table's (tests/test_mastodon_thread.py), and arXiv
    enrichment unless `arxiv` gives the `[arxiv]` table's (tests/test_arxiv.py: a test never reaches the internet).
    `batch`: `[email] batch` (default: paperbot's)."""
    who = f"{user}@" if user else ""
    smtp = f'smtp_url = "smtp://{who}127.0.0.1:{port}"\nstarttls = false\n' if port else ""
    path = tmp / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
[email]
{smtp}from = "Papers Weekly <papers@weekly.test>"
subject = "{{title}}"
contact = "help@weekly.test"
list_id = "papers.weekly.test"
connections = {connections}
rate = {rate}
{"" if batch is None else f"batch = {batch}"}
[web]
base_url = "https://papers.weekly.test"
[x]
""" + ("enabled = false\n" if x is None else x) + "[discord]\n"
        + ("enabled = false\n" if discord is None else discord) + "[bluesky]\n"
        + ("enabled = false\n" if bluesky is None else bluesky) + "[mastodon]\n"
        + ("enabled = false\n" if mastodon is None else mastodon) + "[arxiv]\n"
        + ("enabled = false\n" if arxiv is None else arxiv), encoding="utf-8")
    return load_config(path)


def ready_week(store: Store, cfg: Config, source: str = "dair") -> WeekRow:
    """Observe a one-week digest after the week is over, then let the gate release it."""
    doc = parse_document(DIGEST.encode(), date(2023, 2, 27), "digest")
    observe(store, source, doc, datetime(2023, 2, 27, 12, tzinfo=UTC), "v1", cfg.publish)
    release(store, datetime(2023, 3, 10, tzinfo=UTC), cfg.publish)
    week = store.week(source, KEY)
    assert week is not None and week.state == "ready"
    return week


def add_subscribers(store: Store, tmp: Path, addresses: list[str]) -> None:
    path = tmp / "subscribers.csv"
    path.write_text("email\n" + "\n".join(addresses) + "\n", encoding="utf-8")
    subscribers.import_csv(store, path, now=datetime.now(UTC))


def addresses(n: int, prefix: str = "reader") -> list[str]:
    return [f"{prefix}{i}@example.net" for i in range(n)]


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)
