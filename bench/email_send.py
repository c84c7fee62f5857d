"""Email sending speed: paperbot's real send path against a raw smtplib loop, same server, same run.

    .venv/bin/python bench/email_send.py [--subscribers 20000] [--connections 2]

A local aiosmtpd server runs in another process and counts and discards what it gets. First a real
`paperbot publish` (a subprocess: planning, rendering, the ledger, per-recipient MIME) sends one ready week
to every subscriber; then a plain smtplib loop sends one pre-built copy of the same message as many times
over the same number of reused connections. Prints messages per second for both, the ratio, and the
paperbot process's peak RSS. Also times the MIME step alone: paperbot's template against building an
EmailMessage per recipient. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
KEY = "2023-02-20..2023-02-26"


def sink(port: int) -> None:
    """The server process: count messages, discard them; print the count for each line read on stdin."""
    from aiosmtpd.controller import Controller

    class Count:
        n = 0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            Count.n += 1
            return "250 OK"

    ctl = Controller(Count(), hostname="127.0.0.1", port=port)
    ctl.start()
    print("ready", flush=True)
    for _ in sys.stdin:
        print(Count.n, flush=True)
    ctl.stop()
    asyncio.set_event_loop(None)


def digest(papers: int = 10) -> str:
    rows = "\n".join(
        f"| {i}) **Paper number {i}: a fairly long title about scaling laws and sparse experts** - "
        + "A summary of the kind editors write, two or three sentences about what the paper found and why it "
        + f"matters to practitioners. | [Paper](https://arxiv.org/abs/2302.{i:05d}), "
        + f"[Tweet](https://twitter.com/example/status/{i}) |"
        for i in range(1, papers + 1))
    return ("# Papers\n\n## Top ML Papers of the Week (Feb 20-26)\n\n| **Paper** | **Links** |\n| --- | --- |\n"
            + rows + "\n")


def setup(tmp: Path, port: int, n: int, connections: int) -> Path:
    from bot.channels import load_config
    from bot.store import Store
    from bot.track.parsing import parse_document
    from bot.track.tracker import observe, release

    cfg_path = tmp / "paperbot.toml"
    cfg_path.write_text(f"""state_dir = "state"
[email]
smtp_url = "smtp://127.0.0.1:{port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
list_id = "papers.weekly.test"
connections = {connections}
[web]
base_url = "https://papers.weekly.test"
[x]
enabled = false
[discord]
enabled = false
""", encoding="utf-8")
    cfg = load_config(cfg_path)
    store = Store.open(cfg.db_path)
    doc = parse_document(digest().encode(), date(2023, 2, 27), "digest")
    observe(store, "bench", doc, datetime(2023, 2, 27, 12, tzinfo=UTC), "v1", cfg.publish)
    release(store, datetime(2023, 3, 10, tzinfo=UTC), cfg.publish)
    t = datetime.now(UTC).isoformat()
    with store.atomic():
        store.db.conn.executemany(
            "INSERT INTO subscribers (address, state, created_at, updated_at, origin) VALUES (?, 'active', ?, ?, ?)",
            ((f"reader{i}@example.net", t, t, "bench") for i in range(n)))
    store.close()
    return cfg_path


def run_paperbot(cfg_path: Path) -> tuple[float, float, float, int]:
    """(wall seconds of the send phase, whole process seconds, CPU seconds, peak RSS in KB)."""
    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
    env.pop("PAPERBOT_SMTP_PASSWORD", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg_path), "publish"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"paperbot publish failed:\n{err.decode()}")
    import sqlite3

    conn = sqlite3.connect(cfg_path.parent / "state" / "paperbot.db")
    first, last = conn.execute("SELECT min(updated_at), max(sent_at) FROM deliveries").fetchone()
    first_sent = conn.execute("SELECT min(sent_at) FROM deliveries").fetchone()[0]
    conn.close()
    start = min(datetime.fromisoformat(first), datetime.fromisoformat(first_sent))
    send = (datetime.fromisoformat(last) - start).total_seconds()
    return send, total, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def one_message(cfg_path: Path) -> tuple[bytes, object, str]:
    """The message paperbot sends to reader0, and the rendition that built it."""
    from bot.channels import load_config
    from bot.channels.email.channel import EmailChannel
    from bot.store import Store

    os.environ["PAPERBOT_SECRET_KEY"] = SECRET
    cfg = load_config(cfg_path)
    store = Store.open(cfg.db_path)
    r = EmailChannel(cfg).render(store, store.week("bench", KEY), dry=True)
    store.close()
    _, data = r.message("reader0@example.net")
    return data, r, cfg.email.sender


def run_raw(port: int, data: bytes, n: int, connections: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process while it ran)."""
    def worker(k: int, offset: int) -> None:
        s = smtplib.SMTP("127.0.0.1", port)
        for i in range(k):
            s.sendmail("papers@weekly.test", [f"raw{offset + i}@example.net"], data)
        s.quit()

    share = [n // connections + (1 if i < n % connections else 0) for i in range(connections)]
    threads = [threading.Thread(target=worker, args=(k, sum(share[:i]))) for i, k in enumerate(share)]
    t0, c0 = time.perf_counter(), _cpu()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, _cpu() - c0


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def mime_cost(r, sender: str, reps: int = 2000) -> tuple[float, float]:
    """Microseconds per recipient: paperbot's template, and an EmailMessage built and serialised each time."""
    from bot.channels.email.render import personalize

    t0 = time.perf_counter()
    for i in range(reps):
        r.message(f"reader{i}@example.net")
    template = (time.perf_counter() - t0) / reps * 1e6
    t0 = time.perf_counter()
    for i in range(reps // 10):
        address = f"reader{i}@example.net"
        html, text = personalize(r.email, r.unsubscribe_url(address))
        m = EmailMessage(policy=SMTP)
        m["From"], m["To"], m["Subject"] = sender, address, r.email.subject
        m.set_content(text)
        m.add_alternative(html, subtype="html")
        m.as_bytes()
    naive = (time.perf_counter() - t0) / (reps // 10) * 1e6
    return template, naive


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=20000)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.sink:
        return sink(a.sink)
    sys.path.insert(0, str(ROOT / "tests"))
    from publish_support import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--sink", str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout and server.stdin and server.stdout.readline().strip() == "ready"

    def received() -> int:
        server.stdin.write("count\n")
        server.stdin.flush()
        return int(server.stdout.readline())

    with tempfile.TemporaryDirectory() as tmp:
        n, c = a.subscribers, a.connections
        cfg_path = setup(Path(tmp), port, n, c)
        send, total, cpu, rss_kb = run_paperbot(cfg_path)
        got = received()
        data, rendition, sender = one_message(cfg_path)
        raw, raw_cpu = run_raw(port, data, n, c)
        assert received() == got + n
        template_us, naive_us = mime_cost(rendition, sender)
    server.stdin.close()
    server.wait(10)
    ours, theirs = n / send, n / raw
    print(f"subscribers {n}, connections {c}, message {len(data) / 1024:.1f} KB, server received {got} + {n}")
    print(f"paperbot publish : {ours:8.0f} msg/s  (send phase {send:.1f} s; whole process {total:.1f} s "
          f"incl. start-up, planning, rendering; CPU {cpu / n * 1e6:.0f} us/msg)")
    print(f"raw smtplib loop : {theirs:8.0f} msg/s  ({raw:.1f} s, one pre-built message; "
          f"CPU {raw_cpu / n * 1e6:.0f} us/msg)")
    print(f"ratio            : {ours / theirs:8.2f}  (target >= 0.8)")
    print(f"paperbot peak RSS: {rss_kb / 1024:8.1f} MB  (target <= 150 MB at 100,000 subscribers)")
    print(f"MIME per recipient: template {template_us:.0f} us, EmailMessage each time {naive_us:.0f} us "
          f"({naive_us / template_us:.0f}x)")


if __name__ == "__main__":
    main()
