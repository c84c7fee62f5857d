"""cProfile over every thread of one `paperbot publish`: where the send path spends its time (issue #27).

    .venv/bin/python bench/profile_publish.py --config paperbot.toml [--top 25] [--out publish.prof]

cProfile sees only the thread that enables it, and paperbot sends from worker threads; so each thread started
in this process gets its own profiler and the stats are merged at the end. The command is the real CLI,
`paperbot --config FILE publish`; nothing in it is replaced. bench/email_send.py --profile runs it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out")
    a = ap.parse_args()
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    start = threading.Thread.run

    def run(self: threading.Thread) -> None:  # each thread profiled on its own
        p = cProfile.Profile()
        with lock:
            profiles.append(p)
        p.enable()
        try:
            start(self)
        finally:
            p.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    from bot.cli import cli

    main_profile = cProfile.Profile()
    profiles.append(main_profile)
    main_profile.enable()
    try:
        cli.main(["--config", a.config, "publish"], standalone_mode=False, obj={})
    finally:
        main_profile.disable()
    stats = pstats.Stats(profiles[0], stream=(out := io.StringIO()))
    for p in profiles[1:]:
        stats.add(p)
    if a.out:
        stats.dump_stats(a.out)
    stats.sort_stats("tottime").print_stats(a.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
