"""How long after a week's last day it is released, and how complete, before and after issue #10's rules.

Run: .venv/bin/python bench/release_timing.py

Replays two real git histories (built in a temporary folder) twice each, in the same run:
- "before": the rules of the previous main, i.e. every week ends at midnight UTC (`--timezone UTC`) and no week
  waits for missing papers (`wait_for_papers = "0s"`);
- "after": the defaults, i.e. the clock learned from the commit dates, and a week clearly short of the source's
  usual count waiting up to `wait_for_papers` (48h) past its last day.
The histories: the 2023 dair-ai corpus (../shared/corpus/dair-ai-2023, or $PAPERBOT_SHARED; skipped when absent)
and the generated New York maintainer of tests/clock_support.py (last papers on Sunday evening, New York time).

Hours are counted from midnight UTC at the end of each week's last day (the same instant for both runs), over
the weeks both runs release. "complete" counts the weeks released with every paper of the history's final
version (from the same store, after the run).
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the histories are built by the test helpers

from clock_support import UNTIL, new_york_history  # noqa: E402
from conftest import build_corpus_repo  # noqa: E402

from bot.config import PublishSettings  # noqa: E402
from bot.publish.replay import replay  # noqa: E402
from bot.store import Store, parse_time  # noqa: E402
from bot.track.dates import end_of_day, key_bounds  # noqa: E402
from bot.track.tracker import source_rules  # noqa: E402

SHARED = Path(os.environ.get("PAPERBOT_SHARED", ROOT.parent / "shared"))
BEFORE = (PublishSettings(wait_for_papers=timedelta(0)), ZoneInfo("UTC"))
AFTER = (PublishSettings(), None)


def run(repo: Path, rules: tuple[PublishSettings, ZoneInfo | None], until: str | None) -> dict:
    """Replay `repo` with one set of rules: per week, (hours after its last day, released papers, final papers)."""
    settings, zone = rules
    store = Store.open(None)
    try:
        result = replay(repo, "README.md", store, settings, timezone=zone,
                        until=parse_time(until) if until else None)
        final = {w.key: w.n_papers for w in store.weeks("replay")}
        clock = source_rules(store, "replay", settings).clock.describe() if zone is None else f"{zone} (forced)"
    finally:
        store.close()
    out = {}
    for r in result.released:
        hours = (r.at - end_of_day(key_bounds(r.key)[1], UTC)).total_seconds() / 3600
        out[r.key] = (hours, r.papers, final[r.key], r.flagged)
    return {"weeks": out, "clock": clock}


def report(name: str, repo: Path, until: str | None = None) -> None:
    before, after = run(repo, BEFORE, until), run(repo, AFTER, until)
    both = sorted(set(before["weeks"]) & set(after["weeks"]))
    print(f"{name}: {len(both)} weeks released by both runs "
          f"(before {len(before['weeks'])}, after {len(after['weeks'])})")
    means = {}
    for label, r in (("before", before), ("after", after)):
        hours = [r["weeks"][k][0] for k in both]
        complete = sum(1 for k in both if r["weeks"][k][1] >= r["weeks"][k][2])
        papers = sum(r["weeks"][k][1] for k in both) / max(1, sum(r["weeks"][k][2] for k in both))
        flagged = sum(1 for k in both if r["weeks"][k][3])
        means[label] = statistics.mean(hours) if hours else 0.0
        print(f"  {label:6s} clock {r['clock']}: hours after the last day (UTC midnight) mean "
              f"{means[label]:6.2f}, median {statistics.median(hours) if hours else 0:6.2f}, "
              f"max {max(hours) if hours else 0:6.2f}; complete weeks {complete}/{len(both)}; "
              f"papers released / final {papers:.3f}; flagged {flagged}")
    later = [after["weeks"][k][0] - before["weeks"][k][0] for k in both]
    if later:
        print(f"  after - before: mean {statistics.mean(later):+.2f} h, max {max(later):+.2f} h, "
              f"min {min(later):+.2f} h")
    if means["before"]:
        print(f"  ratio of mean hours after/before: {means['after'] / means['before']:.2f}")
    else:
        print("  ratio of mean hours after/before: n/a (before released every week at its last day's end)")


def main() -> None:
    logging.getLogger("bot").setLevel(logging.ERROR)  # the flagged-week warnings are expected here
    with tempfile.TemporaryDirectory() as tmp:
        corpus = SHARED / "corpus" / "dair-ai-2023"
        if corpus.exists():
            repo = Path(tmp) / "corpus"
            build_corpus_repo(repo, corpus)
            report(f"2023 corpus ({corpus})", repo)
        else:
            print(f"2023 corpus: {corpus} not found; skipped")
        report("New York maintainer (tests/clock_support.py)", new_york_history(Path(tmp) / "ny"), UNTIL)


if __name__ == "__main__":
    main()
