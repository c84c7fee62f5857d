"""What an idle poll costs: requests, bytes read and parse calls, and its time against a changed poll.

Run: .venv/bin/python bench/idle_poll.py [--rounds N]

Watches one document two ways, over a real HTTP server on 127.0.0.1 (conditional GET) and through a real local
git repository (bare mirror + `git fetch`), in a temporary folder with a real SQLite state file. The document
is the real 974 KB dair-ai README from ../shared/corpus when it exists, else a generated digest of the same
shape. "idle" polls find nothing new; "changed" polls find new bytes each time (fetch, parse, diff, record).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bot.channels import load_config
from bot.sources.poll import poll_source
from bot.store import Store

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "corpus" / "dair-ai-latest" / "README.md"


def document() -> tuple[bytes, str]:
    if REAL.exists():
        return REAL.read_bytes(), f"{REAL} (real)"
    rows = "\n".join(f"| {i}) **Paper {i}** -- A generated summary of paper {i}, long enough to be typical. "
                     f"| [Paper](https://arxiv.org/abs/2401.{i:05d}) |" for i in range(1, 11))
    weeks = []
    for n in range(130):
        day = datetime.fromordinal(datetime(2025, 7, 14).toordinal() - 7 * n)
        end = datetime.fromordinal(day.toordinal() + 6)
        weeks.append(f"## Top ML Papers of the Week ({day:%B} {day.day} - {end:%B} {end.day}) - {end.year}\n\n"
                     f"| **Paper** | **Links** |\n| --- | --- |\n{rows}\n")
    return ("# Generated digest\n\n" + "\n".join(weeks)).encode(), "generated (../shared not found)"


class Files:
    """What the HTTP server serves, with an ETag per body, answering If-None-Match with 304."""

    def __init__(self, body: bytes):
        self.body = body

    def serve(self) -> ThreadingHTTPServer:
        files = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = files.body
                etag = '"' + hashlib.sha1(body).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Type", "text/markdown; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        return httpd


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "bench", "GIT_COMMITTER_NAME": "bench",
           "GIT_AUTHOR_EMAIL": "bench@example.org", "GIT_COMMITTER_EMAIL": "bench@example.org"}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10, help="polls of each kind per source (default 10)")
    args = ap.parse_args()
    body, origin = document()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = Files(body)
        httpd = files.serve()
        repo = tmp / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "README.md").write_bytes(body)
        git(repo, "add", "README.md")
        git(repo, "commit", "-q", "-m", "v0")
        (tmp / "paperbot.toml").write_text(
            'state_dir = "state"\n\n'
            f'[[sources]]\nname = "http"\nurl = "http://127.0.0.1:{httpd.server_address[1]}/README.md"\n\n'
            f'[[sources]]\nname = "git"\ngit = {json.dumps(str(repo))}\n', encoding="utf-8")
        cfg = load_config(tmp / "paperbot.toml")
        store = Store.open(cfg.db_path)
        revision = 0

        def change(kind: str) -> None:
            nonlocal revision
            revision += 1
            files.body = body + f"\n<!-- revision {revision} -->\n".encode()
            if kind == "git":
                (repo / "README.md").write_bytes(files.body)
                git(repo, "commit", "-q", "-am", f"v{revision}")

        print(f"document: {origin}, {len(body)} bytes; {args.rounds} polls of each kind per source\n")
        print(f"{'source':6}  {'poll':7}  {'requests':>8}  {'bytes read':>10}  {'parsed':>6}  {'median ms':>9}")
        ratios = {}
        for src in cfg.sources:
            poll_source(store, cfg, src, datetime.now(UTC))  # the first poll: baseline, not measured
            timings: dict[str, list[float]] = {"idle": [], "changed": []}
            last = {}
            for _ in range(args.rounds):
                for kind in ("idle", "changed"):
                    if kind == "changed":
                        change(src.name)
                    t0 = time.perf_counter()
                    r = poll_source(store, cfg, src, datetime.now(UTC))
                    timings[kind].append(time.perf_counter() - t0)
                    if r.error or r.changed != (kind == "changed"):
                        sys.exit(f"{src.name}: unexpected {kind} poll result: {r}")
                    last[kind] = r
            for kind in ("idle", "changed"):
                r = last[kind]
                print(f"{src.name:6}  {kind:7}  {r.requests:>8}  {r.bytes_read:>10}  {r.parsed:>6}  "
                      f"{statistics.median(timings[kind]) * 1000:>9.2f}")
            ratios[src.name] = statistics.median(timings["idle"]) / statistics.median(timings["changed"])
        store.close()
        httpd.shutdown()
        httpd.server_close()
    print()
    for name, ratio in ratios.items():
        print(f"{name}: an idle poll takes {ratio:.3f} of the time of a changed poll ({1 / ratio:.0f}x cheaper)")


if __name__ == "__main__":
    main()
