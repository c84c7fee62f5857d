"""paperbot's parser and whole-history replay beside markdown-it-py merely tokenising the same bytes.

    .venv/bin/python bench/parse_speed.py [--repeat 3]

Prints, for the largest corpus version and for the whole 2023 corpus replay (git history → parse → diff →
gate → SQLite), paperbot's time, markdown-it-py's time, and their ratio (target <= 1.0). Both are measured in
the same run, best of N, because the machines are shared and noisy. Without ../shared/ it uses a synthetic
digest of the same shape, and says so.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import PublishSettings  # noqa: E402
from bot.publish.replay import replay  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.track.parse_digest import parse_digest  # noqa: E402

SHARED = Path(os.environ.get("PAPERBOT_SHARED", ROOT.parent / "shared"))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    md = MarkdownIt("commonmark").enable("table")
    versions, label = corpus_versions()
    latest = SHARED / "corpus" / "dair-ai-latest" / "README.md"
    big, big_label = (latest.read_text(), str(latest)) if latest.exists() else (max(versions)[0], "largest version")
    print(f"corpus: {label}")

    size = len(big.encode())
    ours = best(lambda: parse_digest(big, date(2025, 7, 20)), args.repeat)
    theirs = best(lambda: md.parse(big), args.repeat)
    print(f"largest version ({big_label}, {size / 1024:.0f} KiB): paperbot parse {ours * 1000:.1f} ms, "
          f"markdown-it-py tokenise {theirs * 1000:.1f} ms, ratio {ours / theirs:.2f} (target <= 1.0)")

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        build_repo(repo, versions)
        settings = PublishSettings()

        def run_replay() -> None:
            store = Store.open(None)
            result = replay(repo, "README.md", store, settings)
            assert result.finished
            store.close()

        ours = best(run_replay, args.repeat)
        theirs = best(lambda: [md.parse(text) for text, _ in versions], args.repeat)
    print(f"whole replay ({len(versions)} commits: git → parse → diff → gate → SQLite): paperbot {ours:.2f} s, "
          f"markdown-it-py tokenise only {theirs:.2f} s, ratio {ours / theirs:.2f} (target <= 1.0)")
    print(f"measured {datetime.now().isoformat(timespec='seconds')}, best of {args.repeat}")


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    main()
