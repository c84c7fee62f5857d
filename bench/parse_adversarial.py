"""Hostile input against the parsers (issue #20): growth per doubling, the daemon's /healthz under a hostile poll.

    .venv/bin/python bench/parse_adversarial.py [--repeat 5] [--mib 50] [--skip-daemon]

1. For each crafted line of tests/adversarial_lines.py: the time of one line at 2k … 64k characters (best of
   `--repeat`, each over 64k characters of work), printed as the growth per doubling (linear: 2.0x; quadratic:
   4x; cubic: 8x) and the growth of the time per character from 2k to 64k (the test allows 4x).
2. The 974 KB dair-ai README (../shared/corpus/dair-ai-latest, else a generated digest): paperbot's parse time
   against markdown-it-py's tokeniser in the same run (issue #20: not slower than the 0.46 measured before).
3. `paperbot run` (a real process, its web app on 127.0.0.1) with one source: a local HTTP server serving a
   hostile document of `--mib` MiB (every crafted line at 60k characters, over and over, in weeks, and one
   line of 1 MiB). `/healthz` is probed every 50 ms: first for 5 s while the server holds the response (the
   daemon idle, waiting on its socket), then while the daemon reads, parses and records the document, and 3 s
   after (its after-poll hooks). Printed:
   the longest gap between answers and the slowest answer in each phase, and their ratios (goal: under 10x).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from adversarial_lines import CASES, PARSERS, WEEK, Case  # noqa: E402

from bot.track.parse_digest import parse_digest  # noqa: E402

SHARED = Path(os.environ.get("PAPERBOT_SHARED", ROOT.parent / "shared"))
SIZES = (2048, 4096, 8192, 16384, 32768, 65536)


def poll_line(log: str) -> str | None:
    """The daemon's line saying its poll of the hostile source is over (done, skipped or failed)."""
    for line in log.splitlines():
        if "hostile: " in line and (" parsed)" in line or "skipped" in line or "failed" in line):
            return line[:300]
    return None
WORK = 65536


def per_char(case: Case, n: int, repeat: int) -> float:
    parse, text, reps = PARSERS[case.parser], case.text(n), max(1, WORK // n)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(reps):
            parse(text)
        best = min(best, (time.perf_counter() - t0) / (reps * n))
    return best


def growth_table(repeat: int) -> None:
    print(f"{'case':34}  {'64k line ms':>11}  {'per doubling':>12}  {'per char 2k→64k':>15}")
    worst = ("", 0.0)
    for case in CASES:
        times = [per_char(case, n, repeat) for n in SIZES]
        per_char_growth = times[-1] / times[0]
        per_doubling = 2 * per_char_growth ** (1 / (len(SIZES) - 1))
        worst = max(worst, (case.label, per_char_growth), key=lambda w: w[1])
        line_ms = times[-1] * SIZES[-1] * 1000
        print(f"{case.label:34}  {line_ms:>11.2f}  {per_doubling:>11.2f}x  {per_char_growth:>14.2f}x")
    print(f"largest growth of the time per character: {worst[0]} {worst[1]:.2f}x (the test allows 4x)\n")


def readme_ratio(repeat: int) -> None:
    latest = SHARED / "corpus" / "dair-ai-latest" / "README.md"
    if latest.exists():
        text, label = latest.read_text(), str(latest)
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from parse_speed import synthetic_versions

        text, label = synthetic_versions()[-1][0], "generated digest (../shared not found)"
    md = MarkdownIt("commonmark").enable("table")

    def best(fn) -> float:
        out = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - t0)
        return out

    ours = best(lambda: parse_digest(text, date(2025, 7, 20)))
    theirs = best(lambda: md.parse(text))
    print(f"{label} ({len(text.encode()) / 1024:.0f} KiB): paperbot parse {ours * 1000:.1f} ms, markdown-it-py "
          f"tokenise {theirs * 1000:.1f} ms, ratio {ours / theirs:.2f} (0.46 before issue #20; target <= 1.0)\n")


def hostile_document(mib: int) -> bytes:
    """Weeks of crafted lines at 60k characters, and one line of 1 MiB (over the cap), up to `mib` MiB."""
    rows = [c.text(60000).rsplit("\n", 1)[-1] for c in CASES if c.parser == "digest" and c.head.startswith(WEEK)]
    heads = [c.text(60000) for c in CASES if c.parser == "digest" and "\n" not in c.head]
    limit = mib * 1024 * 1024 - 4096
    parts, size, week = ["# A hostile digest", " " * (1024 * 1024)], 1024 * 1024, 0
    while size < limit:
        week += 1
        block = "\n".join([WEEK.rstrip("\n").replace("2024", str(1900 + week)), *rows, *heads])
        parts.append(block)
        size += len(block) + 1
    body = "\n".join(parts).encode()[:limit]
    return body[: body.rfind(b"\n") + 1]


class HeldServer:
    """Serves one body, holding every response until `release` is set."""

    def __init__(self, body: bytes):
        self.body, self.release = body, threading.Event()
        held = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                held.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Type", "text/markdown; charset=utf-8")
                self.send_header("Content-Length", str(len(held.body)))
                self.end_headers()
                self.wfile.write(held.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


def probe(url: str, until, answers: list[tuple[float, float]]) -> None:
    """GET `url` every 50 ms until `until()`, recording (answered at, took) of each answer."""
    while not until():
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=120) as r:
                r.read()
        except urllib.error.HTTPError as e:  # 503 is an answer too
            e.read()
        answers.append((time.perf_counter(), time.perf_counter() - t0))
        time.sleep(max(0.0, 0.05 - (time.perf_counter() - t0)))


def summary(answers: list[tuple[float, float]]) -> tuple[float, float]:
    gaps = [b[0] - a[0] for a, b in zip(answers, answers[1:], strict=False)]
    return max(gaps, default=0.0), max((t for _, t in answers), default=0.0)


def daemon_under_attack(mib: int) -> None:
    body = hostile_document(mib)
    server = HeldServer(body)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "paperbot.toml").write_text(
            f'state_dir = "state"\n\n[web]\nlisten = "127.0.0.1:{port}"\n\n[[sources]]\nname = "hostile"\n'
            f'url = "http://127.0.0.1:{server.httpd.server_address[1]}/README.md"\nevery = "1h"\n', encoding="utf-8")
        log = tmp / "daemon.log"
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(tmp / "paperbot.toml"), "run"],
                                cwd=tmp, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/healthz"
        try:
            deadline = time.monotonic() + 60
            while "paperbot running" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the daemon did not start:\n{log.read_text()}")
                time.sleep(0.1)
            idle: list[tuple[float, float]] = []
            end = time.monotonic() + 5
            probe(url, lambda: time.monotonic() > end, idle)
            busy: list[tuple[float, float]] = []
            started = time.perf_counter()
            server.release.set()

            done: list[float] = []

            def polled() -> bool:
                """The poll's log line, then 3 s more (the after-poll hooks render what the poll found)."""
                if not done and (poll_line(log.read_text(errors="replace")) or proc.poll() is not None):
                    done.append(time.perf_counter())
                return bool(done) and time.perf_counter() > done[0] + 3

            probe(url, polled, busy)
            took = done[0] - started
        finally:
            proc.terminate()
            proc.wait(30)
            server.httpd.shutdown()
        found = poll_line(log.read_text(errors="replace"))
    idle_gap, idle_slowest = summary(idle)
    gap, slowest = summary(busy)
    poll_gap, poll_slowest = summary([a for a in busy if a[0] <= done[0]])
    print(f"daemon: a hostile document of {len(body) / 2**20:.1f} MiB polled in {took:.1f} s "
          f"({len(busy)} /healthz answers meanwhile)")
    print(f"  {found or 'no poll line in the log'}")
    print(f"  idle (5 s, the response held): slowest answer {idle_slowest * 1000:.1f} ms, longest gap between "
          f"answers {idle_gap * 1000:.1f} ms")
    print(f"  during the poll (to its log line): slowest answer {poll_slowest * 1000:.1f} ms, longest gap between "
          f"answers {poll_gap * 1000:.1f} ms; ratios {poll_gap / idle_gap:.1f}x the idle gap, "
          f"{poll_gap / idle_slowest:.1f}x the slowest idle answer")
    print(f"  during the poll and 3 s after (the after-poll hooks: publishing trials): slowest answer "
          f"{slowest * 1000:.1f} ms, longest gap between answers {gap * 1000:.1f} ms")
    print(f"  longest gap, poll and hooks / longest gap idle: {gap / idle_gap:.1f}x; "
          f"/ slowest idle answer: {gap / idle_slowest:.1f}x (goal: under 10x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--mib", type=int, default=50, help="size of the hostile document (default 50, [fetch] max_size)")
    ap.add_argument("--skip-daemon", action="store_true")
    args = ap.parse_args()
    growth_table(args.repeat)
    readme_ratio(args.repeat)
    if not args.skip_daemon:
        daemon_under_attack(args.mib)
    print(f"\nmeasured {time.strftime('%Y-%m-%dT%H:%M:%S')}, best of {args.repeat}")


if __name__ == "__main__":
    main()
