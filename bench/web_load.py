"""The reader's web under load, in one run: issue #24's figures (the feed; pages and unsubscribes while feeds and
searches run) and issue #29's (search and an edition page against a static aiohttp server answering the same
bytes), then a profile of the server under the same loads.

Run: .venv/bin/python bench/web_load.py [--editions 500] [--n 500] [--rounds 5] [--no-profile]

A real `paperbot serve` process over an archive of `--editions` published editions of 10 papers each (5,000
papers by default), words from a Zipf-like vocabulary. The limit per client on searches and feeds is raised for
the run (`[web] costly_per_client`, printed), since every request comes from 127.0.0.1. A "cold" figure comes
right after the archive's version was bumped (as a publish does), so every page and search is made anew. Only
200 answers count; the count of others is printed. Last, the GIL hand-over behind `paperbot serve`'s 1 ms
switch interval, measured both ways. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp

from bot.channels.email import subscribers as subs
from bot.channels.email.tokens import unsubscribe_token
from bot.edition.edition import Edition
from bot.store import Store
from bot.track.model import Link, Paper

KEY = "bench-key-" + "0123456789" * 4
COSTLY_PER_CLIENT = 10_000  # raised for the bench: every request comes from one address
STATIC = """
import sys
from pathlib import Path
from aiohttp import web
pages = {p.stem: p.read_bytes() for p in Path(sys.argv[2]).glob('*.html')}
async def h(request): return web.Response(body=pages[request.match_info['name']], content_type='text/html')
app = web.Application(); app.router.add_get('/{name}', h)
web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None, access_log=None)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vocabulary(rnd: random.Random, n: int = 4000) -> tuple[list[str], list[float]]:
    syllables = ["ka", "lo", "mi", "ren", "sa", "tor", "vi", "ne", "qua", "del", "par", "ix", "sol", "mur", "en"]
    words = sorted({"".join(rnd.choice(syllables) for _ in range(rnd.randint(2, 4))) for _ in range(n * 2)})[:n]
    rnd.shuffle(words)
    return words, [1 / (i + 1) for i in range(len(words))]  # Zipf: a few common words, many rare ones


def fill(tmp: Path, port: int, editions: int) -> tuple[Path, list[str], list[str]]:
    """The config and database; (config path, the words of each paper, the subscribers' addresses)."""
    cfg = tmp / "paperbot.toml"
    cfg.write_text(f'state_dir = "state"\n[web]\nbase_url = "http://127.0.0.1:{port}"\n'
                   f'listen = "127.0.0.1:{port}"\ncostly_per_client = {COSTLY_PER_CLIENT}\n', encoding="utf-8")
    rnd = random.Random(29)
    words, weights = _vocabulary(rnd)
    store = Store.open(tmp / "state" / "paperbot.db")
    now = datetime(2024, 3, 11, tzinfo=UTC)
    store.ensure_source("digest", now=now)
    texts = []
    with store.atomic():
        for w in range(editions):
            d = date.fromordinal(date(2015, 1, 5).toordinal() + 7 * w)
            key = f"{d.isoformat()}..{date.fromordinal(d.toordinal() + 6).isoformat()}"
            papers = []
            for i in range(10):
                title = " ".join(rnd.choices(words, weights, k=rnd.randint(5, 9))).capitalize()
                summary = " ".join(rnd.choices(words, weights, k=rnd.randint(25, 45))).capitalize() + "."
                texts.append(f"{title} {summary}")
                papers.append(Paper(title=title, number=i + 1, summary=summary, authors="A. Author, B. Author",
                                    links=(Link("Paper", f"https://example.org/{w}/{i}"),)))
            e = Edition("digest", key, f"Week {w}", d, date.fromordinal(d.toordinal() + 6), tuple(papers))
            store.upsert_week("digest", key, title=e.title, state="published", first_seen=now, last_changed=now,
                              first_day=e.first_day, last_day=e.last_day, n_papers=10)
            store.replace_papers("digest", key, papers)
    addresses = [f"reader{i}@example.org" for i in range(200)]
    for a in addresses:
        subs.add(store, a, origin="bench", now=now)
    store.close()
    return cfg, texts, addresses


def queries(texts: list[str], n: int) -> list[str]:
    """`n` distinct queries of one or two words of a paper drawn at random (so common words come often)."""
    rnd, out = random.Random(24), set()
    while len(out) < n:
        words = rnd.choice(texts).rstrip(".").split()
        out.add(" ".join(rnd.sample(words, rnd.choice((1, 1, 2)))).lower())
    return sorted(out)


def bump(db: Path) -> None:
    """What a publish does to the caches: the archive's version moves (written by another process)."""
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE archive_version SET version = version + 1")
    con.close()


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(url) as r:
                    await r.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


async def burst(urls: list[str], method: str = "GET", data: bytes | None = None) -> tuple[float, float, int, int]:
    """All `urls` at once: (200 answers per second, slowest 200 answer, 200s, others)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=300)) as s:
        async def one(url: str) -> tuple[float, int]:
            t = time.perf_counter()
            async with s.request(method, url, data=data) as r:
                await r.read()
                return time.perf_counter() - t, r.status
        start = time.perf_counter()
        results = await asyncio.gather(*(one(u) for u in urls))
        total = time.perf_counter() - start
    ok = [t for t, st in results if st == 200]
    return len(ok) / total, max(ok, default=0.0), len(ok), len(results) - len(ok)


async def slowest_one_by_one(urls: list[tuple[str, str, bytes | None]]) -> tuple[float, int]:
    """Each request after the one before: (slowest 200 answer, answers that were not 200)."""
    slow, bad = 0.0, 0
    async with aiohttp.ClientSession() as s:
        for method, url, data in urls:
            t = time.perf_counter()
            form = {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}
            async with s.request(method, url, data=data, headers=form) as r:
                await r.read()
            if r.status == 200:
                slow = max(slow, time.perf_counter() - t)
            else:
                bad += 1
    return slow, bad


def line(name: str, fig: tuple[float, float, int, int], base: tuple[float, float, int, int] | None = None) -> str:
    rps, slow, ok, bad = fig
    out = f"  {name:34s} {rps:7.0f} req/s  slowest {slow * 1000:6.0f} ms  {ok} ok" + (f", {bad} not 200" if bad else "")
    if base:
        out += f"  ratio {rps / base[0]:.2f}x req/s, {slow / base[1]:.2f}x slowest"
    return out


EDITION = "/editions/digest/2015-01-05..2015-01-11"


async def grab(tmp: Path, url: str, texts: list[str]) -> None:
    """Each kind of page asked once (a server just started), then the bytes the static server answers: a search
    page and the edition page, as paperbot serves them."""
    async with aiohttp.ClientSession() as s:
        for page in ("/", "/editions/", "/feed.xml", "/search?q=warm", EDITION):  # templates compiled, threads up
            async with s.get(url + page) as r:
                await r.read()
        async with s.get(f"{url}/search?q={queries(texts, 1)[0]}") as r:
            (tmp / "pages" / "search.html").write_bytes(await r.read())
        async with s.get(url + EDITION) as r:
            (tmp / "pages" / "edition.html").write_bytes(await r.read())


async def run(url: str, static: str, db: Path, texts: list[str], addresses: list[str], n: int,
              rounds: int) -> list[str]:
    """Every figure; the names of the #29 loads whose goal is not met."""
    edition = url + EDITION

    print("#24: the feed")
    bump(db)
    async with aiohttp.ClientSession() as s:
        t = time.perf_counter()
        async with s.get(f"{url}/feed.xml") as r:
            size = len(await r.read())
        cold = time.perf_counter() - t
    warm = await burst([f"{url}/feed.xml"] * 100)
    print(f"  /feed.xml: {size / 1024:.0f} KiB; {cold * 1000:.0f} ms made after a change, "
          f"{1000 / warm[0]:.2f} ms per request cached (100 at once)")

    print(f"#24: /editions/ and the unsubscribe POST, slowest of 10 each, idle and while 8 feed and 50 search "
          f"requests run (cold: the version bumped before each); {rounds} rounds")
    def probes(round_: int) -> list[tuple[str, str, bytes | None]]:
        out: list[tuple[str, str, bytes | None]] = []
        for i in range(10):
            out.append(("GET", f"{url}/editions/?page={1 + i % 2}", None))
            token = unsubscribe_token(KEY.encode(), addresses[round_ * 10 + i])
            out.append(("POST", f"{url}/unsubscribe/{token}", b"List-Unsubscribe=One-Click"))
        return out
    ratios: dict[str, list[float]] = {"GET": [], "POST": []}
    for r in range(rounds):
        bump(db)
        idle = {kind: await slowest_one_by_one([p for p in probes(2 * r) if p[0] == kind]) for kind in ratios}
        bump(db)
        load_q = queries(texts, 50 * (r + 2))[-50:]
        load = asyncio.ensure_future(asyncio.gather(burst([f"{url}/feed.xml"] * 8),
                                                    burst([f"{url}/search?q={q}" for q in load_q])))
        await asyncio.sleep(0.05)  # the feeds and searches are in flight
        busy = {kind: await slowest_one_by_one([p for p in probes(2 * r + 1) if p[0] == kind]) for kind in ratios}
        (feed_fig, search_fig) = await load
        for kind, name in (("GET", "/editions/"), ("POST", "unsubscribe POST")):
            (i_slow, i_bad), (b_slow, b_bad) = idle[kind], busy[kind]
            ratios[kind].append(b_slow / max(i_slow, 1e-9))
            bad = f", {i_bad + b_bad} not 200" if i_bad + b_bad else ""
            print(f"  round {r + 1}: {name:18s} idle {i_slow * 1000:6.1f} ms, under load {b_slow * 1000:6.1f} ms: "
                  f"{ratios[kind][-1]:.2f}x{bad}")
        print(line(f"round {r + 1}: the load: 8 feeds", feed_fig))
        print(line(f"round {r + 1}: the load: 50 searches", search_fig))
    for kind, name, goal in (("GET", "/editions/", 5), ("POST", "unsubscribe POST", 3)):
        mid = sorted(ratios[kind])[len(ratios[kind]) // 2]
        verdict = "met" if mid <= goal else "NOT met"
        print(f"  {name}: median of the rounds {mid:.2f}x idle (goal <= {goal}x): {verdict}")

    print(f"#29: {n} requests at once, against a static aiohttp server answering the same bytes; {rounds} rounds "
          "taken in turn, each figure the round with the most 200s per second (the machine is shared)")
    best: dict[str, tuple[float, float, int, int]] = {}

    def keep(name: str, fig: tuple[float, float, int, int]) -> None:
        if name not in best or fig[0] > best[name][0]:
            best[name] = fig

    for _ in range(rounds):
        keep("static search", await burst([f"{static}/search"] * n))
        keep("static edition", await burst([f"{static}/edition"] * n))
        bump(db)
        qs = [f"{url}/search?q={q}" for q in queries(texts, n)]  # cold: the version was just bumped
        keep("search cold", await burst(qs))
        keep("search cached", await burst(qs))
        bump(db)
        keep("edition cold", await burst([edition] * n))
        keep("edition cached", await burst([edition] * n))
    print(line("static aiohttp: search page", best["static search"]))
    print(line("static aiohttp: edition page", best["static edition"]))
    failed = []
    for name, base, goal, slow_goal in (("search cold", "static search", 0.5, 2.0),
                                        ("search cached", "static search", 0.5, 2.0),
                                        ("edition cold", "static edition", 0.8, None),
                                        ("edition cached", "static edition", 0.8, None)):
        fig, ref = best[name], best[base]
        met = fig[0] >= goal * ref[0] and (slow_goal is None or fig[1] <= slow_goal * ref[1])
        print(line(name, fig, ref) + f"  goal >= {goal}x" + (f", slowest <= {slow_goal}x" if slow_goal else "")
              + (": met" if met else ": NOT met"))
        if not met:
            failed.append(name)
    return failed


async def profile_loads(url: str, db: Path, texts: list[str], n: int, loads: list[str]) -> None:
    """The loads whose goal is not met, as measured: searches with new words (cold, then cached), the edition."""
    await burst([f"{url}/search?q={q}" for q in queries(texts, 10)])  # the threads and connections up
    bump(db)
    qs = [f"{url}/search?q={q}" for q in queries(texts, n)]
    if "search cold" in loads or "search cached" in loads:
        await burst(qs)
    if "search cached" in loads:
        await burst(qs)
    if "edition cold" in loads or "edition cached" in loads:
        bump(db)
        await burst([url + EDITION] * n)
    if "edition cached" in loads:
        await burst([url + EDITION] * n)


def profiled_serve(config: str, out: str) -> None:
    """`paperbot serve` with cProfile on every thread (the event loop's and the workers'); stats to `out`."""
    import cProfile
    import pstats
    import threading

    from bot.channels import load_config
    from bot.web.server import serve

    profiles: list[cProfile.Profile] = []

    def start(*_: object) -> None:
        p = cProfile.Profile()
        profiles.append(p)
        sys.setprofile(None)
        p.enable()

    threading.setprofile(start)
    main = cProfile.Profile()
    profiles.append(main)
    main.enable()
    try:
        serve(load_config(config))
    finally:
        main.disable()
        stats = pstats.Stats(profiles[0])
        for p in profiles[1:]:
            stats.add(p)
        stats.dump_stats(out)


IDLE = ("<method 'acquire' of '_thread.lock' objects>", "<method 'poll' of 'select.epoll' objects>",
        "<method 'get' of '_queue.SimpleQueue' objects>")


OURS = "paperbot (bot/, templates/)"


def _where(file: str, func: str) -> str:
    return (OURS if "/bot/" in file or "/templates/" in file else
            "SQLite (sqlite3)" if "sqlite3" in func or "sqlite3" in file else
            "aiohttp, multidict, yarl" if any(m in file for m in ("aiohttp", "multidict", "yarl")) else
            "asyncio, selectors, sockets" if "asyncio" in file or "selectors" in file or "socket" in func else
            "jinja2, markupsafe" if "jinja2" in file or "markupsafe" in file else "other (stdlib)")


def report_profile(path: Path) -> None:
    """Time by whose code it is. A builtin (str.join, re, ...) counts as paperbot's when paperbot's code
    called it (by its share of the calls); SQLite's and the sockets' time never does. cProfile times calls by the
    wall clock on each thread: with several threads running Python, a thread's wait for the GIL when a C call
    returns counts in that call (SQLite's share grows with `[web] costly_threads`), so compare runs with one."""
    import pstats

    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    share: dict[str, float] = {}
    for (file, _, func), (_, _, tottime, _, callers) in stats.items():
        if func in IDLE or "wait" in func:
            continue  # idle: waiting for work or for the network
        where = _where(file, func)
        if file == "~" and where == "other (stdlib)" and callers:
            calls = sum(c[0] for c in callers.values())
            ours = sum(c[0] for k, c in callers.items() if "/bot/" in k[0] or "/templates/" in k[0])
            share[OURS] = share.get(OURS, 0.0) + tottime * ours / calls
            tottime *= 1 - ours / calls
        share[where] = share.get(where, 0.0) + tottime
    total = sum(share.values())
    print(f"profile of the server (cProfile on every thread, idle waits left out), {total:.1f} s of CPU:"
          " (wall time in calls: a wait for the GIL inside a C call counts as that call's)")
    for where, t in sorted(share.items(), key=lambda kv: -kv[1]):
        print(f"  {where:30s} {t:6.2f} s  {100 * t / total:5.1f}%")
    top = sorted(((v[2], f"{k[0].split('site-packages/')[-1].split('/work/')[-1]}:{k[1]} {k[2]}")
                  for k, v in stats.items() if k[2] not in IDLE and "wait" not in k[2]), reverse=True)[:10]
    print("  top functions by own time:")
    for t, name in top:
        print(f"    {t:6.2f} s  {name[-100:]}")


def gil_handover() -> None:
    """Why `paperbot serve` sets a 1 ms switch interval: the event loop's round trip through a worker thread
    while two threads run search-page Python (highlights), at CPython's 5 ms and at 1 ms, taken in turn."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from bot.web import highlight

    text, query = "Sparse experts route tokens to a handful of lanterns and halve the compute " * 6, \
        highlight.terms("lantern route")
    before = sys.getswitchinterval()
    print("GIL hand-over: the event loop's round trip through a thread while 2 threads make search highlights")
    for interval in (0.005, 0.001, 0.005, 0.001):
        sys.setswitchinterval(interval)
        stop = threading.Event()

        def burn(stop: threading.Event = stop) -> None:
            while not stop.is_set():
                highlight.snippet(text, query)

        async def probe() -> list[float]:
            loop, pool, out = asyncio.get_running_loop(), ThreadPoolExecutor(1), []
            for _ in range(200):
                t = time.perf_counter()
                await loop.run_in_executor(pool, sum, range(1000))
                out.append(time.perf_counter() - t)
            pool.shutdown()
            return out

        burners = [threading.Thread(target=burn) for _ in range(2)]
        for b in burners:
            b.start()
        times = asyncio.run(probe())
        stop.set()
        for b in burners:
            b.join()
        print(f"  switch interval {interval * 1000:.0f} ms: mean {sum(times) / len(times) * 1000:6.2f} ms, "
              f"slowest {max(times) * 1000:7.2f} ms")
    sys.setswitchinterval(before)


async def main(editions: int, n: int, rounds: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "pages").mkdir()
        port, static_port = _port(), _port()
        t = time.perf_counter()
        cfg, texts, addresses = fill(tmp, port, editions)
        db = tmp / "state" / "paperbot.db"
        print(f"archive: {editions} published editions, {len(texts)} papers "
              f"(filled in {time.perf_counter() - t:.0f} s); [web] costly_per_client raised to "
              f"{COSTLY_PER_CLIENT} for the bench (one client address)")
        env = {**os.environ, "PAPERBOT_SECRET_KEY": KEY}
        procs = [subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg), "serve"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        url, static = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{static_port}"
        try:
            await wait_up(url + "/static/site.css")
            await grab(tmp, url, texts)
            procs.append(subprocess.Popen([sys.executable, "-c", STATIC, str(static_port), str(tmp / "pages")]))
            await wait_up(static + "/search")
            failed = await run(url, static, db, texts, addresses, n, rounds)
        finally:
            for p in procs:
                p.terminate()
                p.wait()
        if profile and failed:
            out = tmp / "serve.prof"
            p = subprocess.Popen([sys.executable, __file__, "--profiled-serve", str(cfg), str(out)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                await wait_up(url + "/static/site.css")
                await profile_loads(url, db, texts, n, failed)
            finally:
                p.terminate()
                p.wait()
            print(f"profiled on a server under cProfile: {', '.join(failed)} (the goals not met), as above")
            report_profile(out)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--profiled-serve":
        profiled_serve(sys.argv[2], sys.argv[3])
    else:
        ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        ap.add_argument("--editions", type=int, default=500)
        ap.add_argument("--n", type=int, default=500)
        ap.add_argument("--rounds", type=int, default=5)
        ap.add_argument("--no-profile", action="store_true")
        a = ap.parse_args()
        asyncio.run(main(a.editions, a.n, a.rounds, not a.no_profile))
        gil_handover()
