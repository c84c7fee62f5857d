"""Edition pages under load: `paperbot serve` against a static aiohttp handler, same bytes, same run.

    .venv/bin/python bench/web_editions.py [--papers 500] [--requests 500] [--rounds 3]

Builds a database holding one published week of `--papers` papers, starts a real `paperbot serve` on a free
port, and fires `--requests` concurrent GETs of that edition (aiohttp client, one connection each), timing
a 404 probe sent while they are in flight. The first round finds the cache cold (one render); later rounds
are served from the cache. The baseline is the same load against a trivial aiohttp app (another process)
answering every GET with the same page from memory. Prints requests per second, the slowest answer and the
probe's time for each round, and paperbot's warm throughput as a ratio of the baseline's. Figures only:
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
KEY = "2024-03-04..2024-03-10"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(tmp: Path, port: int, papers: int) -> Path:
    """A config and a database with one published week of `papers` papers."""
    from bot.channels import load_config
    from bot.store import Store
    from bot.track.model import Link, Paper

    cfg_path = tmp / "paperbot.toml"
    cfg_path.write_text(f'state_dir = "state"\n[web]\nlisten = "127.0.0.1:{port}"\n'
                        f'base_url = "http://127.0.0.1:{port}"\n', encoding="utf-8")
    cfg = load_config(cfg_path)
    store = Store.open(cfg.db_path)
    now = datetime(2024, 3, 11, tzinfo=UTC)
    store.ensure_source("bench", now=now)
    store.upsert_week("bench", KEY, title="Top ML Papers of the Week (Mar 4-10)", state="published",
                      first_seen=now, last_changed=now, first_day=date(2024, 3, 4), last_day=date(2024, 3, 10),
                      n_papers=papers)
    store.replace_papers("bench", KEY, [Paper(
        title=f"Paper number {i}: a fairly long title about scaling laws and sparse experts", number=i,
        summary="A summary of the kind editors write, two or three sentences about what the paper found and "
                "why it matters to practitioners.",
        links=(Link("Paper", f"https://arxiv.org/abs/2403.{i:05d}"), Link("Tweet", f"https://x.com/e/status/{i}")),
    ) for i in range(1, papers + 1)])
    store.close()
    return cfg_path


def wait_up(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers (404): up
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.stdout.read().decode() if proc.stdout else ""
                raise SystemExit(f"server did not start:\n{output}") from None
            time.sleep(0.1)


def static_server(port: int, page: str) -> None:
    """The baseline process: every GET of /editions/... answers the same bytes from memory."""
    from aiohttp import web

    body = Path(page).read_bytes()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/editions/{source}/{key}", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def load(base: str, n: int) -> tuple[float, float, float, int, int]:
    """(seconds for all, slowest answer, 404 probe's time, bytes of one page, answers that were not 200)."""
    import aiohttp

    url = f"{base}/editions/bench/{KEY}"
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                     timeout=timeout) as session:
        async def one() -> tuple[float, int, int]:
            t = time.perf_counter()
            async with session.get(url) as r:
                body = await r.read()
            return time.perf_counter() - t, r.status, len(body)

        async def probe() -> float:
            await asyncio.sleep(0.05)  # the GETs are in flight by now
            t = time.perf_counter()
            async with session.get(f"{base}/nothing-here") as r:
                await r.read()
            return time.perf_counter() - t

        t0 = time.perf_counter()
        results, probe_time = await asyncio.gather(asyncio.gather(*(one() for _ in range(n))), probe())
        total = time.perf_counter() - t0
    return (total, max(r[0] for r in results), probe_time, results[0][2],
            sum(1 for r in results if r[1] != 200))


def report(label: str, n: int, figures: tuple[float, float, float, int, int]) -> float:
    total, slowest, probe, size, bad = figures
    rps = n / total
    print(f"{label:34s} {rps:8.0f} req/s   slowest {slowest:6.2f} s   404 probe {probe:6.3f} s"
          + (f"   {bad} not 200!" if bad else ""))
    return rps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--papers", type=int, default=500)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port = free_port()
        cfg_path = setup(tmp, port, args.papers)
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg_path), "serve"], cwd=tmp,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_up(base, proc)
            rounds = [asyncio.run(load(base, args.requests)) for _ in range(args.rounds)]
            page = tmp / "page.html"
            page.write_bytes(urllib.request.urlopen(f"{base}/editions/bench/{KEY}", timeout=30).read())
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        print(f"{args.requests} concurrent GETs of a published {args.papers}-paper edition "
              f"({rounds[0][3] / 1024:.0f} KB each)")
        report("paperbot serve, cold cache", args.requests, rounds[0])
        warm = [report(f"paperbot serve, warm (round {i + 2})", args.requests, r) for i, r in enumerate(rounds[1:])]
        sport = free_port()
        static = subprocess.Popen([sys.executable, __file__, "--static-server", str(sport), str(page)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_up(f"http://127.0.0.1:{sport}", static)
            baseline = [report(f"baseline: static aiohttp (round {i + 1})", args.requests,
                               asyncio.run(load(f"http://127.0.0.1:{sport}", args.requests)))
                        for i in range(max(1, args.rounds - 1))]
        finally:
            static.terminate()
            static.wait(timeout=15)
        if warm:
            print(f"ratio: paperbot warm / static baseline = {max(warm) / max(baseline):.2f} (best rounds)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--static-server":
        static_server(int(sys.argv[2]), sys.argv[3])
    else:
        main()
