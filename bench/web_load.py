"""500 concurrent requests to an edition page and to /search on a real `paperbot serve` process.

Prints requests per second and the slowest answer for each, against a static aiohttp server (the same page
bytes from memory, one process) measured in the same run: the ratio says what paperbot's page costs on top
of aiohttp itself. Run: .venv/bin/python bench/web_load.py [--n 500]
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
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp

from bot.channels.email.render import Edition
from bot.store import Store
from bot.track.model import Link, Paper

KEY = "bench-key-" + "0123456789" * 4
BASELINE = """
import sys
from aiohttp import web
body = open(sys.argv[2], 'rb').read()
async def h(request): return web.Response(body=body, content_type='text/html')
app = web.Application(); app.router.add_get('/{tail:.*}', h)
web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None, access_log=None)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fill(tmp: Path, port: int) -> None:
    (tmp / "paperbot.toml").write_text(f'state_dir = "state"\n[web]\nbase_url = "http://127.0.0.1:{port}"\n'
                                       f'listen = "127.0.0.1:{port}"\n', encoding="utf-8")
    store = Store.open(tmp / "state" / "paperbot.db")
    now = datetime(2024, 3, 11, tzinfo=UTC)
    store.ensure_source("digest", now=now)
    for w in range(30):
        d = date.fromordinal(date(2024, 1, 1).toordinal() + 7 * w)
        key = f"{d.isoformat()}..{date.fromordinal(d.toordinal() + 6).isoformat()}"
        papers = tuple(Paper(title=f"Model {w}-{i}: GPT-4o and Llama-3.1 compared", number=i + 1,
                             summary=f"Paper {i} of week {w} studies sparse experts and long context.",
                             links=(Link("Paper", f"https://example.org/{w}/{i}"),)) for i in range(10))
        e = Edition("digest", key, f"Week {w}", d, date.fromordinal(d.toordinal() + 6), papers)
        store.upsert_week("digest", key, title=e.title, state="published", first_seen=now, last_changed=now,
                          first_day=e.first_day, last_day=e.last_day, n_papers=10)
        store.replace_papers("digest", key, papers)
    store.close()


async def _wait(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            try:
                async with s.get(url) as r:
                    await r.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


async def _load(url: str, n: int) -> tuple[float, float, int]:
    """(requests per second, slowest answer in seconds, how many answered 200) for n requests at once."""
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as s:
        async def one() -> tuple[float, int]:
            t = time.perf_counter()
            async with s.get(url) as r:
                await r.read()
                return time.perf_counter() - t, r.status
        start = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(n)))
        total = time.perf_counter() - start
    return n / total, max(t for t, _ in results), sum(1 for _, st in results if st == 200)


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port, base_port = _port(), _port()
        _fill(tmp, port)
        env = {**os.environ, "PAPERBOT_SECRET_KEY": KEY}
        serve = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(tmp / "paperbot.toml"), "serve"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = None
        try:
            url = f"http://127.0.0.1:{port}"
            await _wait(url + "/static/site.css")
            edition = f"{url}/editions/digest/2024-01-01..2024-01-07"
            async with aiohttp.ClientSession() as s, s.get(edition) as r:
                (tmp / "page.html").write_bytes(await r.read())
            base = subprocess.Popen([sys.executable, "-c", BASELINE, str(base_port), str(tmp / "page.html")])
            await _wait(f"http://127.0.0.1:{base_port}/")
            b_rps, b_slow, b_ok = await _load(f"http://127.0.0.1:{base_port}/", n)
            print(f"baseline static aiohttp: {b_rps:7.0f} req/s, slowest {b_slow * 1000:6.0f} ms, {b_ok}/{n} ok")
            for name, target in (("edition page", edition), ("search", f"{url}/search?q=GPT-4o")):
                await _load(target, 50)  # warm the cache and the threads
                rps, slow, ok = await _load(target, n)
                print(f"paperbot {name:12s}: {rps:7.0f} req/s, slowest {slow * 1000:6.0f} ms, {ok}/{n} ok; "
                      f"ratio to baseline {rps / b_rps:.2f}x req/s, {slow / b_slow:.2f}x slowest")
        finally:
            serve.terminate()
            serve.wait()
            if base is not None:
                base.terminate()
                base.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500)
    asyncio.run(main(p.parse_args().n))
