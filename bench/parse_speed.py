"""paperbot's digest parser beside markdown-it-py merely tokenising the same text: the three figures of issue #28.

    .venv/bin/python bench/parse_speed.py [--repeat 7] [--profile]

1. The full parse of the latest README (974 KB) against markdown-it-py's tokeniser (goal <= 0.2).
2. A poll whose new version changes one week (a row added to the newest week, so every week below it moves down a
   line), parsed incrementally from the last version's sections, against the full parse of it (goal <= 0.05).
3. The replay of the 2023 history (git history → parse → diff → gate → SQLite, every commit) against
   markdown-it-py tokenising every version (goal <= 0.2).

Each pair is measured side by side, in alternating runs, best of N: the machines are shared and noisy, so only the
ratios mean something. `--profile` adds the full parse's profile (cProfile, top entries by own time). Without
../shared/ it uses a synthetic digest of the same shape, and says so.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import PublishSettings  # noqa: E402
from bot.publish.replay import replay  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.track.parsing import parse_document, parse_document_again  # noqa: E402

SHARED = Path(os.environ.get("PAPERBOT_SHARED", ROOT.parent / "shared"))
LATEST_AS_OF = date(2025, 7, 20)


def side_by_side(ours: Callable[[], object], theirs: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best time of each over `repeat` alternating runs: a burst of load slows one run of each, not all of one."""
    a = b = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        ours()
        t1 = time.perf_counter()
        theirs()
        t2 = time.perf_counter()
        a, b = min(a, t1 - t0), min(b, t2 - t1)
    return a, b


def synthetic_versions(n: int = 120) -> list[tuple[str, str]]:
    """A digest growing by one 10-paper week per version, for machines without the corpus."""
    weeks, out = [], []
    day = date(2023, 1, 2).toordinal()
    for i in range(n):
        a, b = date.fromordinal(day + 7 * i), date.fromordinal(day + 7 * i + 6)
        rows = "\n".join(
            f"| {j}) **Paper {i}.{j}: a title of ordinary length** - a summary of a paper, long enough to look "
            f"like the real ones, with a few clauses; and numbers 12.5%. | [Paper](https://arxiv.org/abs/2301.{i:03d}{j:02d}),"
            f" [Tweet](https://twitter.com/x/status/{i}{j}) |" for j in range(1, 11))
        weeks.insert(0, f"## Top ML Papers of the Week ({a:%b} {a.day} - {b:%b} {b.day})\n| **Paper** | **Links** |\n"
                        f"| --- | --- |\n{rows}\n")
        out.append(("# Digest\n\n" + "\n".join(weeks), f"{b.isoformat()}T20:00:00+00:00"))
    return out


def corpus_versions() -> tuple[list[tuple[str, str]], str]:
    corpus = SHARED / "corpus" / "dair-ai-2023"
    if not corpus.exists():
        return synthetic_versions(), "synthetic digest (../shared/ not found)"
    with (corpus / "versions.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [((corpus / r["file"]).read_text(), r["commit_date"]) for r in rows], f"{corpus} ({len(rows)} versions)"


def build_repo(path: Path, versions: list[tuple[str, str]]) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    subprocess.run(["git", "init", "-q", str(path)], check=True, env=env)
    for text, when in versions:
        (path / "README.md").write_text(text)
        subprocess.run(["git", "-C", str(path), "add", "README.md"], check=True, env=env)
        subprocess.run(["git", "-C", str(path), "-c", "user.name=b", "-c", "user.email=b@e", "commit", "-q",
                        "--allow-empty", "-m", "v"], check=True, env={**env, "GIT_AUTHOR_DATE": when,
                                                                     "GIT_COMMITTER_DATE": when})


def one_week_changed(data: bytes, as_of: date) -> bytes:
    """The version after `data` in which the newest week gained a row (below its last paper)."""
    doc = parse_document(data, as_of, "digest")
    lines = data.decode().split("\n")
    at = doc.weeks[0].papers[-1].line  # 1-based: insert after it
    row = "| 11) **A paper added to the newest week** - what it does. | [Paper](https://arxiv.org/abs/2507.00001) |"
    return "\n".join(lines[:at] + [row] + lines[at:]).encode()


def profile(data: bytes, as_of: date, top: int = 15) -> str:
    prof = cProfile.Profile()
    prof.enable()
    parse_document(data, as_of, "digest")
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--profile", action="store_true", help="print the full parse's profile (top entries)")
    args = ap.parse_args()
    md = MarkdownIt("commonmark").enable("table")
    versions, label = corpus_versions()
    latest = SHARED / "corpus" / "dair-ai-latest" / "README.md"
    if latest.exists():
        big, big_label, as_of = latest.read_bytes(), str(latest), LATEST_AS_OF
    else:
        big, big_label, as_of = max(versions)[0].encode(), "largest version", date(2025, 7, 20)
    big_text = big.decode()
    print(f"corpus: {label}")

    full, theirs = side_by_side(lambda: parse_document(big, as_of, "digest"), lambda: md.parse(big_text), args.repeat)
    print(f"1. full parse of {big_label} ({len(big) / 1000:.0f} KB): paperbot {full * 1000:.1f} ms, "
          f"markdown-it-py tokenise {theirs * 1000:.1f} ms, ratio {full / theirs:.3f} (goal <= 0.2)")

    changed = one_week_changed(big, as_of)
    _, sections = parse_document_again(big, as_of, fmt="digest")
    assert parse_document_again(changed, as_of, sections, "digest")[0] == parse_document(changed, as_of, "digest")
    inc, full = side_by_side(lambda: parse_document_again(changed, as_of, sections, "digest"),
                             lambda: parse_document(changed, as_of, "digest"), args.repeat * 2)
    print(f"2. a poll whose new version adds a row to the newest week: incremental parse {inc * 1000:.2f} ms, "
          f"full parse {full * 1000:.1f} ms, ratio {inc / full:.3f} (goal <= 0.05)")

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        build_repo(repo, versions)
        settings = PublishSettings()

        def run_replay() -> None:
            store = Store.open(None)
            result = replay(repo, "README.md", store, settings)
            assert result.finished
            store.close()

        ours, theirs = side_by_side(run_replay, lambda: [md.parse(text) for text, _ in versions],
                                    max(3, args.repeat // 2))
    print(f"3. replay of the history ({len(versions)} versions: git → parse → diff → gate → SQLite): paperbot "
          f"{ours:.2f} s, markdown-it-py tokenising every version {theirs:.2f} s, ratio {ours / theirs:.3f} "
          f"(goal <= 0.2)")
    print(f"measured {datetime.now().isoformat(timespec='seconds')}, best of {args.repeat} (figure 2: "
          f"{args.repeat * 2}, figure 3: {max(3, args.repeat // 2)}), side by side")
    if args.profile:
        print(profile(big, as_of))


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    main()
