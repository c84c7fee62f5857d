"""Does every paper reach readers? Replays git histories and counts, against each history's final version.

Run: .venv/bin/python bench/completeness.py [--shared DIR]

Two histories, each committed into a real git repository in a temporary folder and replayed by `paperbot
replay`'s code (bot/publish/replay.py) with the default settings, every week taken to go out the moment it is
released: the real 2023 history of the dair-ai README (../shared/corpus/dair-ai-2023, when present), and a
generated one of a maintainer in New York (-04:00) who adds each week's last paper on Sunday evening, after
midnight UTC, fills one week's placeholder a month late, and adds a paper to the last week with no week after it.

For every paper of a released week in the final version it asks: did readers get it, either in its week as
released (the papers of that week in the commit the week was released at) or as a late addition (`late` events)?
Papers are matched here by their normalised title or their first link, independently of paperbot's own matching.
The ratio "papers that reached readers / papers in the final version" must be 1.00; the baseline measured in the
same run is the share that reached readers in the week's own edition alone (what happens without late additions).

The guard on age and volume (issue #21), with the defaults: no week of these histories, nor of the corpus's feeds
(../shared/corpus/feeds: the-batch-history version by version, the four single feeds as one commit each), may be
held by the age guard; and `[publish] max_per_day` is applied to the editions as they go out (releases and
editions of late papers alone, in order): each edition it delays is listed with the delay.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bot.config import PublishSettings
from bot.publish.cap import schedule
from bot.publish.replay import replay
from bot.store import Store
from bot.track.diff import norm_title
from bot.track.late import LateEvent
from bot.track.model import Paper
from bot.track.parsing import parse_document
from bot.track.tracker import Released

ENV = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null"}


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**ENV, **(env or {})}).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@example.org")
    return path


def commit(repo: Path, data: bytes, when: str, name: str = "README.md") -> None:
    (repo / name).write_bytes(data)
    git(repo, "add", name)
    dates = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    git(repo, "commit", "-q", "--allow-empty", "-m", "update", env=dates)


def corpus_repo(corpus: Path, where: Path) -> Path:
    repo = make_repo(where / "dair-ai-2023")
    with (corpus / "versions.tsv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            commit(repo, (corpus / row["file"]).read_bytes(), row["commit_date"])
    return repo


def new_york_repo(where: Path, weeks: int = 13, papers: int = 7) -> Path:
    repo = make_repo(where / "new-york")
    content: dict[date, list[str]] = {}

    def text() -> bytes:
        out = ["# A digest kept in New York", ""]
        for first in sorted(content, reverse=True):
            last = first + timedelta(days=6)
            out += [f"## Top ML Papers of the Week ({first:%B} {first.day} - {last:%B} {last.day})", "",
                    "| **Paper** | **Links** |", "| --- | --- |"]
            link = f"https://arxiv.org/abs/{first:%y%m}.{first.day:02d}"  # one of its own per paper
            out += [f"| {i}) **{t}** - what {t.lower()} found. | [Paper]({link}{i:03d}) |"
                    for i, t in enumerate(content[first], 1)]
            out.append("")
        return "\n".join(out).encode()

    commit(repo, b"# A digest kept in New York\n", "2023-05-31T09:00:00-04:00")
    start = date(2023, 6, 5)
    for w in range(weeks):
        first = start + timedelta(weeks=w)
        content[first] = []
        for d in range(papers - 1):  # one paper a day, Monday to Saturday, 10:00 local time
            content[first].append("XXX" if (w, d) == (4, 2) else f"Paper {d + 1} of week {w + 1}")
            commit(repo, text(), f"{first + timedelta(days=d)}T10:00:00-04:00")
        content[first].append(f"Sunday paper of week {w + 1}")  # 21:30 in New York: 01:30 UTC on Monday
        commit(repo, text(), f"{first + timedelta(days=6)}T21:30:00-04:00")
    content[start + timedelta(weeks=4)][2] = "Paper 3 of week 5, a month late"
    commit(repo, text(), f"{start + timedelta(weeks=weeks + 1)}T12:00:00-04:00")
    content[start + timedelta(weeks=weeks - 1)].append("A straggler with no week after it")
    commit(repo, text(), f"{start + timedelta(weeks=weeks + 3)}T12:00:00-04:00")
    return repo


def keys(p: Paper) -> set[str]:
    """A reader who got a row titled XXX did not get the paper that later filled it, whatever its link."""
    out = {f"t:{norm_title(p.title)}"}
    if p.links and "XXX" not in p.title:
        out.add(f"u:{p.links[0].url.strip().rstrip('/')}")
    return out


def version(repo: Path, sha: str):
    """The README at `sha`, parsed as of its commit's day (yearless headings take their year from it)."""
    day = datetime.fromisoformat(git(repo, "log", "-1", "--format=%cI", sha).strip()).astimezone(UTC).date()
    return parse_document(git(repo, "show", f"{sha}:README.md").encode(), day, "auto")


def week_papers(repo: Path, sha: str, key: str, aliases: dict[str, str]) -> list[Paper]:
    doc = version(repo, sha)
    return [p for w in doc.weeks if aliases.get(w.key, w.key) == key for p in w.papers]


def capped(result, settings: PublishSettings) -> list[tuple[str, datetime, timedelta]]:
    """(edition, when it was ready, how long max_per_day delayed it) for each edition the cap delays, when every
    edition of a replay (its releases, and its editions of late papers alone) goes out as soon as the cap allows."""
    editions = [(r.at, r.key) for r in result.released if not r.held]
    alone = {e.carried_in: e.at for e in result.late if "+late" in e.carried_in}
    editions = sorted(editions + [(at, key) for key, at in alone.items()])
    out = schedule([at for at, _ in editions], settings.max_per_day)
    return [(key, at, sent - at) for (at, key), sent in zip(editions, out, strict=True) if sent > at]


def guard(name: str, repo: Path, path: str = "README.md", fmt: str = "auto") -> dict:
    """A replay of `repo` with the default settings: the weeks held, the editions and the cap's delays."""
    store = Store.open(None)
    settings = PublishSettings()
    result = replay(repo, path, store, settings, fmt=fmt)
    store.close()
    return {"name": name, "held": [(r.key, r.held) for r in result.held],
            "editions": len([r for r in result.released if not r.held]), "delayed": capped(result, settings)}


def feed_repos(feeds: Path, where: Path) -> list[tuple[str, Path]]:
    """The corpus's feeds as git histories of `feed.xml`: the-batch-history as a poller of its default branch saw
    it, and each single feed as one commit."""
    out = []
    history = feeds / "the-batch-history"
    if history.exists():
        repo = make_repo(where / "the-batch-history")
        with (history / "index.tsv").open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if row["on_first_parent"] == "True":
                    commit(repo, (history / row["file"]).read_bytes(), row["commit_date"], "feed.xml")
        out.append(("the-batch-history", repo))
    for one in sorted(p for p in feeds.iterdir() if p.is_file()):
        repo = make_repo(where / f"feed-{one.stem}")
        commit(repo, one.read_bytes(), "2026-04-10T12:00:00+00:00", "feed.xml")
        out.append((one.name, repo))
    return out


def measure(name: str, repo: Path) -> dict:
    store = Store.open(None)
    released: list[Released] = []
    late: list[LateEvent] = []
    settings = PublishSettings()
    result = replay(repo, "README.md", store, settings, emit=lambda r: r.held or released.append(r),
                    emit_late=late.append)
    aliases = store.aliases("replay")
    at_release: dict[str, set[str]] = {}
    for r in released:
        at_release[r.key] = set().union(*(keys(p) for p in week_papers(repo, r.version or "HEAD", r.key, aliases)))
    by_late: dict[str, set[str]] = {}
    for e in late:
        by_late.setdefault(e.week, set()).update(f"t:{norm_title(t)}" for t in e.papers)
    final = version(repo, "HEAD")
    total = own = reached = unreleased = 0
    for w in final.weeks:
        key = aliases.get(w.key, w.key)
        if key not in at_release:
            unreleased += len(w.papers)
            continue
        for p in w.papers:
            total += 1
            k = keys(p)
            own += bool(k & at_release[key])
            reached += bool(k & (at_release[key] | by_late.get(key, set())))
    waits = [(e.at - e.found_at).total_seconds() / 3600 for e in late]
    store.close()
    alone = sum(len(e.papers) for e in late if "+late" in e.carried_in)
    return {"name": name, "weeks": len(released), "total": total, "reached": reached, "own": own,
            "late": sum(len(e.papers) for e in late), "alone": alone,
            "unreleased": unreleased, "wait_median": statistics.median(waits) if waits else 0.0,
            "wait_max": max(waits, default=0.0), "held": [(r.key, r.held) for r in result.held],
            "editions": len(released) + len({e.carried_in for e in late if "+late" in e.carried_in}),
            "delayed": capped(result, settings)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("PAPERBOT_SHARED", "../shared")),
                    help="the folder holding corpus/dair-ai-2023 (default ../shared)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.shared / "corpus" / "dair-ai-2023"
        if corpus.exists():
            results.append(measure("dair-ai 2023 (real history)", corpus_repo(corpus, Path(tmp))))
        else:
            print(f"{corpus} not found: the real history is skipped")
        results.append(measure("New York maintainer (generated)", new_york_repo(Path(tmp))))
        feeds = args.shared / "corpus" / "feeds"
        guarded = [guard(f"feed {name}", repo, "feed.xml", "feed")
                   for name, repo in (feed_repos(feeds, Path(tmp)) if feeds.exists() else [])]
    ok = True
    for r in results:
        ratio, base = r["reached"] / r["total"], r["own"] / r["total"]
        ok &= r["reached"] == r["total"]
        print(f"{r['name']}: {r['weeks']} weeks released, {r['total']} papers in their final version")
        print(f"  papers that reached readers / papers in the final version: {r['reached']}/{r['total']} = "
              f"{ratio:.2f} (baseline, the week's own edition only: {r['own']}/{r['total']} = {base:.3f})")
        print(f"  went late: {r['late']} paper(s), {r['alone']} of them alone after late_max_wait; from being "
              f"found to reaching readers: median {r['wait_median']:.1f} h, at most {r['wait_max']:.1f} h")
        if r["unreleased"]:
            print(f"  ({r['unreleased']} papers of never-released (baseline) weeks are not counted)")
    for r in results + guarded:
        ok &= not r["held"]
        print(f"{r['name']}: guard (issue #21, defaults): {len(r['held'])} week(s) held"
              + "".join(f"\n  HELD {key}: {why}" for key, why in r["held"])
              + f"; max_per_day = {PublishSettings().max_per_day} delayed {len(r['delayed'])} of {r['editions']} "
                "edition(s)" + "".join(f"\n  {key}: ready {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, delayed {_hours(d)}"
                                       for key, at, d in r["delayed"]))
    return 0 if ok else 1


def _hours(d: timedelta) -> str:
    return f"{d.total_seconds() / 3600:.1f} h"


if __name__ == "__main__":
    sys.exit(main())
