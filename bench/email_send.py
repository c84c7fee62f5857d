"""Email sending speed and scale: paperbot's real send path against a raw smtplib loop, same server, same run.

    .venv/bin/python bench/email_send.py [--subscribers 100000] [--connections 1,4] [--repeat 2]
    .venv/bin/python bench/email_send.py --subscribers 1000000 --no-ratios --kill --rss-at 100000

The server is Postfix's `smtp-sink` on 127.0.0.1 when installed (fast enough that the client is the bottleneck),
else aiosmtpd, and then the bench says the ratio is not comparable (aiosmtpd is slower than either client).
For each number of connections, side by side and repeated (alternating which goes first): a real
`paperbot publish` (a subprocess: planning, rendering, the ledger, per-recipient MIME) sends one ready week to
every generated subscriber, and a plain smtplib loop sends one pre-built copy of the same message as many times
over as many reused connections. Prints messages per second, each ratio and their spread, and the paperbot
process's peak RSS. `--kill`: a fresh run killed (SIGKILL) once the server has half the messages, then resumed:
time, peak RSS, database size, and that every subscriber got the week with no copy beyond a row in flight at
the kill. `--profile`: one more run under cProfile (bench/profile_publish.py). Figures only: nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import smtplib
import sqlite3
import statistics
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
sys.path.insert(0, str(ROOT / "bench"))

from email_sink import start_sink  # noqa: E402

SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
KEY = "2023-02-20..2023-02-26"


def digest(papers: int = 10) -> str:
    rows = "\n".join(
        f"| {i}) **Paper number {i}: a fairly long title about scaling laws and sparse experts** - "
        + "A summary of the kind editors write, two or three sentences about what the paper found and why it "
        + f"matters to practitioners. | [Paper](https://arxiv.org/abs/2302.{i:05d}), "
        + f"[Tweet](https://twitter.com/example/status/{i}) |"
        for i in range(1, papers + 1))
    return ("# Papers\n\n## Top ML Papers of the Week (Feb 20-26)\n\n| **Paper** | **Links** |\n| --- | --- |\n"
            + rows + "\n")


def setup(tmp: Path, port: int, n: int, connections: int, batch: int | None) -> Path:
    """A state folder with one ready week and `n` active subscribers reader0@… reader{n-1}@…."""
    from bot.channels import load_config
    from bot.store import Store
    from bot.track.parsing import parse_document
    from bot.track.tracker import observe, release

    tmp.mkdir(parents=True, exist_ok=True)
    cfg_path = tmp / "paperbot.toml"
    cfg_path.write_text(f"""state_dir = "state"
[email]
smtp_url = "smtp://127.0.0.1:{port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
list_id = "papers.weekly.test"
connections = {connections}
{f"batch = {batch}" if batch else ""}
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


def _env() -> dict[str, str]:
    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
    env.pop("PAPERBOT_SMTP_PASSWORD", None)
    return env


def start_publish(cfg_path: Path, profile: bool = False) -> subprocess.Popen:
    cmd = ([sys.executable, str(ROOT / "bench" / "profile_publish.py"), "--config", str(cfg_path)] if profile
           else [sys.executable, "-m", "bot", "--config", str(cfg_path), "publish"])
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE if profile else subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_publish(proc: subprocess.Popen, *, check: bool = True) -> tuple[int, float, int, str]:
    """(exit code, CPU seconds, peak RSS in KB, stdout) of a publish process, read as it ends."""
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if check and code != 0:
        raise SystemExit(f"paperbot publish failed:\n{err.decode()}")
    return code, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out


def send_phase(db: Path) -> float:
    """Seconds from the first message's `sending` mark to the last `sent_at`."""
    conn = sqlite3.connect(db)
    first, last = conn.execute("SELECT min(sent_at), max(sent_at) FROM deliveries").fetchone()
    conn.close()
    return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


def run_paperbot(cfg_path: Path, profile: bool = False) -> dict:
    t0 = time.perf_counter()
    proc = start_publish(cfg_path, profile)
    _, cpu, rss, out = wait_publish(proc)
    whole = time.perf_counter() - t0
    return {"send": send_phase(cfg_path.parent / "state" / "paperbot.db"), "whole": whole, "cpu": cpu,
            "rss_kb": rss, "profile": out}


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
    """(wall seconds, CPU seconds of this process while it ran): smtplib.sendmail of one pre-built message
    over `connections` reused connections, one thread each (as paperbot's workers)."""
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


class _Lines(list):
    """Lines of figures, each printed as it is measured (a long run shows its progress)."""

    def append(self, line: str) -> None:
        print(line, flush=True)
        super().append(line)


def ratios(a, port: int, sink, tmp: Path) -> list[str]:
    """Paperbot against raw smtplib at each number of connections, `a.repeat` times, side by side."""
    n = a.subscribers
    lines, rss, data, rendition, sender = _Lines(), [], b"", None, ""
    for c in a.connections:
        found = []
        for rep in range(a.repeat):
            cfg_path = setup(tmp / f"c{c}-r{rep}", port, n, c, a.batch)
            if not data:
                data, rendition, sender = one_message(cfg_path)
            order = ("paperbot", "raw") if rep % 2 == 0 else ("raw", "paperbot")
            for who in order:
                before = sink.received()
                if who == "paperbot":
                    ours = run_paperbot(cfg_path)
                else:
                    raw, raw_cpu = run_raw(port, data, n, c)
                got = sink.received(before + n) - before
                if got < n:
                    raise SystemExit(f"the server got {got} of {n} messages from {who}")
            rss.append(ours["rss_kb"])
            found.append(ratio := (n / ours["send"]) / (n / raw))
            lines.append(f"  {c} connection(s), run {rep + 1} ({order[0]} first): paperbot {n / ours['send']:7.0f} "
                         f"msg/s (send phase {ours['send']:.1f} s, whole process {ours['whole']:.1f} s, CPU "
                         f"{ours['cpu'] / n * 1e6:.0f} us/msg, peak RSS {ours['rss_kb'] / 1024:.0f} MB); raw "
                         f"{n / raw:7.0f} msg/s ({raw:.1f} s, CPU {raw_cpu / n * 1e6:.0f} us/msg): ratio {ratio:.3f}")
        spread = f"{min(found):.3f}-{max(found):.3f}" if len(found) > 1 else "one run"
        lines.append(f"ratio at {n:,} subscribers, {c} connection(s) vs {c} raw: median {statistics.median(found):.3f}"
                     f" (spread {spread}; goal >= 0.95)")
    lines.append(f"paperbot peak RSS at {n:,}: {max(rss) / 1024:.1f} MB (goal <= 100 MB at 100,000)")
    template_us, naive_us = mime_cost(rendition, sender)
    lines.append(f"message {len(data) / 1024:.1f} KB; MIME per recipient: template {template_us:.0f} us, "
                 f"EmailMessage each time {naive_us:.0f} us ({naive_us / template_us:.0f}x)")
    return lines


def kill_run(a, port: int, sink, tmp: Path) -> list[str]:
    """A fresh run of `a.subscribers`, killed once the server has half of them, then resumed."""
    import sqlite3

    n = a.subscribers
    cfg_path = setup(tmp / "kill", port, n, 1, a.batch)
    db = cfg_path.parent / "state" / "paperbot.db"
    sink.got[:] = bytes(len(sink.got))  # only this run's messages count per recipient
    base = sink.received()
    at = base + n // 2
    t0 = time.perf_counter()
    proc = start_publish(cfg_path)
    while sink.received() < at:
        if proc.poll() is not None:
            raise SystemExit(f"paperbot publish ended before the kill: {proc.stderr.read().decode()}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, cpu1, rss1, _ = wait_publish(proc, check=False)
    first = time.perf_counter() - t0
    conn = sqlite3.connect(db)
    flight = {int(u[len("reader"):u.index("@")]) for (u,) in
              conn.execute("SELECT unit FROM deliveries WHERE state = 'sending'")}
    conn.close()
    got_at_kill = sink.received() - base
    t1 = time.perf_counter()
    proc = start_publish(cfg_path)
    _, cpu2, rss2, _ = wait_publish(proc)
    second = time.perf_counter() - t1
    total = sink.received(base + n + len(flight)) - base
    got = sink.got
    missing = sum(1 for i in range(n) if got[i] == 0)
    extra = {i: got[i] - 1 for i in range(n) if got[i] > 1}
    beyond = {i: k for i, k in extra.items() if i not in flight or k > 1}
    conn = sqlite3.connect(db)
    states = dict(conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall())
    marked = conn.execute("SELECT count(*) FROM deliveries WHERE possible_duplicate IS NOT NULL").fetchone()[0]
    week = conn.execute("SELECT state FROM weeks WHERE key = ?", [KEY]).fetchone()[0]
    conn.close()
    size = sum(p.stat().st_size for p in db.parent.glob("paperbot.db*"))
    return [
        f"kill run, {n:,} subscribers, 1 connection: killed at {got_at_kill:,} received "
        f"({first:.0f} s, peak RSS {rss1 / 1024:.0f} MB), resumed and finished in {second:.0f} s (peak RSS "
        f"{rss2 / 1024:.0f} MB); time {first + second:.0f} s ({n / (first + second):.0f} msg/s incl. planning), "
        f"CPU {(cpu1 + cpu2) / n * 1e6:.0f} us/msg",
        f"  database {size / 2**20:.0f} MB (paperbot.db and its WAL); ledger {states}; week {week}",
        f"  server got {total:,} messages; subscribers without the week: {missing}; rows in flight at the kill: "
        f"{len(flight)}; second copies: {sum(extra.values())} (marked possible duplicates: {marked}); copies "
        f"beyond a row in flight: {len(beyond)}" + ("  <-- LOST OR UNEXPLAINED" if missing or beyond else ""),
    ], max(rss1, rss2)


def rss_only(port: int, n: int, tmp: Path, batch: int | None) -> int:
    """Peak RSS (KB) of a whole publish to `n` subscribers over one connection."""
    return run_paperbot(setup(tmp / f"rss-{n}", port, n, 1, batch))["rss_kb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4],
                    help="comma-separated, e.g. 1,4 (each compared with as many raw connections)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each comparison (spread reported)")
    ap.add_argument("--batch", type=int, help="[email] batch for paperbot (default: its own default)")
    ap.add_argument("--no-ratios", action="store_true", help="skip the comparisons with raw smtplib")
    ap.add_argument("--kill", action="store_true", help="a run killed at half the subscribers, then resumed")
    ap.add_argument("--rss-at", type=int, help="also the peak RSS of a whole publish to this many subscribers")
    ap.add_argument("--profile", action="store_true", help="one more run under cProfile; prints its top entries")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from publish_support import free_port

    port = free_port()
    sink = start_sink(port, recipients=a.subscribers if a.kill else 0)
    print(f"server: {sink.name} on 127.0.0.1:{port}")
    if not sink.comparable:
        print("  WARNING: fell back to aiosmtpd, which takes fewer messages a second than either client: the ratios "
              "below measure aiosmtpd, not paperbot, and are NOT comparable with the issue's (install postfix)")
    out: list[str] = []
    try:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp_name:
            tmp = Path(tmp_name)
            if not a.no_ratios:
                out += ratios(a, port, sink, tmp)
            rss_small = None
            if a.rss_at:
                rss_small = rss_only(port, a.rss_at, tmp, a.batch)
                line = f"paperbot peak RSS at {a.rss_at:,} subscribers: {rss_small / 1024:.1f} MB"
                print(line, flush=True)
                out.append(line)
            if a.kill:
                lines, rss_big = kill_run(a, port, sink, tmp)
                out += lines
                print("\n".join(lines), flush=True)
                if rss_small:
                    line = (f"peak RSS at {a.subscribers:,} / at {a.rss_at:,}: {rss_big / rss_small:.2f} "
                            "(goal <= 1.20)")
                    print(line, flush=True)
                    out.append(line)
            if a.profile:
                prof = run_paperbot(setup(tmp / "profile", port, a.subscribers, 1, a.batch), profile=True)
                print(f"profile of one publish to {a.subscribers:,} (1 connection, under cProfile):\n"
                      + prof["profile"], flush=True)
    finally:
        sink.close()


if __name__ == "__main__":
    main()
