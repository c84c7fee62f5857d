"""Issue #15, "Done when": the whole daemon, end to end.

Real parts only (tests/e2e_support.py): `paperbot run` as a subprocess, a git repository made here as its source
(every commit is a version the daemon polls, `every = "1s"`), aiosmtpd on 127.0.0.1 with a few subscribers,
tests/x_server.py (X API v2, driven by the real tweepy client) and tests/discord_server.py (Discord REST, driven
by discord.py: a webhook posts, a bot token reads back). What is asserted is what the servers received and what
the ledger (the SQLite file) says. The same world under kills and faults is tests/test_chaos.py (#22).

- `test_each_week_arrives_once_on_every_channel_a_fix_edits_and_a_late_paper_rides_the_next_week`: a new week
  arrives once on every channel; a title fix sends nothing new (Discord edits its message); a paper added later
  to that week arrives in the next week's edition on every channel.
"""

from __future__ import annotations

import json
import time

from conftest import commit_file
from discord_server import shown
from e2e_support import (
    FIX,
    LATE,
    LATE_TITLE,
    PAPERS,
    W0,
    W1,
    W2,
    Daemon,
    digest,
    discord_by_week,
    late_embeds,
    mail_by_week,
    mastodon_threads,
    published,
    query,
    world,
    x_threads,
)
from publish_support import addresses


def test_each_week_arrives_once_on_every_channel_a_fix_edits_and_a_late_paper_rides_the_next_week(tmp_path):
    """issue #15: a week committed to the source arrives once on every channel; a commit that only fixes a title
    sends nothing new, and Discord (edit_on_correction) edits its message; a paper added to that week later
    arrives in the next week's edition on every channel: the email's text, an X "Added to" post at the end of
    the thread, a Discord embed marked as added to the earlier week."""
    people = addresses(4)
    started = time.monotonic()
    with world(tmp_path, people) as (rec, x, d, m, repo, cfg_path, db):
        daemon = Daemon(cfg_path, d)
        daemon.start()
        daemon.wait("the first poll", lambda: bool(query(db, "SELECT 1 FROM weeks WHERE key = ?", (W0,))))
        assert query(db, "SELECT count(*) FROM publications")[0][0] == 0, "the baseline week was sent"

        commit_file(repo, "README.md", digest({W1: PAPERS[W1], W0: PAPERS[W0]}), "2023-02-27T10:00:00+00:00", "W1")
        daemon.wait("W1 on every channel", lambda: published(db, (W1,)))
        mail = mail_by_week(rec, (W1,))
        assert sorted(r for r, _ in mail) == people and all(len(v) == 1 for v in mail.values()), mail.keys()
        (thread,) = x_threads(x, (W1,)).values()
        assert len(thread) == 1 + 3 and all(t in p.text for (t, _), p in zip(PAPERS[W1], thread[1:], strict=True))
        (announced,) = discord_by_week(d, (W1,))[W1]
        counts = rec.count(), len(x.ours()), len(d.messages), len(m.ours())

        fixed = [(FIX[1] if t == FIX[0] else t, n) for t, n in PAPERS[W1]]
        commit_file(repo, "README.md", digest({W1: fixed, W0: PAPERS[W0]}), "2023-02-28T10:00:00+00:00", "fix")
        daemon.wait("Discord's edit", lambda: any(s.method == "PATCH" and s.status == 200 for s in d.requests))
        time.sleep(3)  # three more polls of `every = "1s"`: a fix never sends anything new
        assert (rec.count(), len(x.ours()), len(d.messages), len(m.ours())) == counts, "the fix sent something new"
        patches = [s for s in d.requests if s.method == "PATCH"]
        assert len(patches) == 1 and patches[0].path.endswith(f"/messages/{announced.id}")
        assert FIX[1] in [shown(e["title"]) for e in d.messages[announced.id].embeds]

        late = [*fixed, LATE]
        commit_file(repo, "README.md", digest({W1: late, W0: PAPERS[W0]}), "2023-03-01T10:00:00+00:00", "late")
        daemon.wait("the late paper to be found on every channel", lambda: len(query(
            db, "SELECT channel FROM late_additions WHERE week_key = ?", (W1,))) == 4)  # Mastodon too (#31)
        assert (rec.count(), len(x.ours()), len(d.messages), len(m.ours())) == counts, "a late paper waits"
        commit_file(repo, "README.md", digest({W2: PAPERS[W2], W1: late, W0: PAPERS[W0]}),
                    "2023-03-06T10:00:00+00:00", "W2")
        daemon.wait("W2 on every channel", lambda: published(db, (W2,)))
        assert daemon.stop() == 0
        assert "Traceback" not in "".join(p.read_text() for p in tmp_path.glob("daemon-*.log"))

    mail = mail_by_week(rec, (W1, W2))
    assert sorted(mail) == sorted((p, k) for p in people for k in (W1, W2))
    assert all(len(v) == 1 for v in mail.values()), "a subscriber got a week twice"
    for p in people:
        (second,) = mail[(p, W2)]
        assert second.count(LATE[0]) == 1 and LATE_TITLE in second
        assert second.index(PAPERS[W2][-1][0]) < second.index(LATE_TITLE) < second.index(LATE[0])
        assert LATE[0] not in mail[(p, W1)][0]
    threads = x_threads(x, (W1, W2))
    assert len(threads[W1]) == 4 and len(threads[W2]) == 1 + 3 + 1
    assert threads[W2][-1].text.startswith("Added to ") and LATE[0] in threads[W2][-1].text
    assert [p.text for p in x.ours()].count(threads[W2][-1].text) == 1
    assert sum(LATE[0] in p.text for p in x.ours()) == 1
    toots = mastodon_threads(m, (W1, W2))  # issue #31: the same threads on Mastodon
    assert len(toots[W1]) == 4 and len(toots[W2]) == 5 and toots[W2][-1].text.startswith("Added to ")
    assert sum(LATE[0] in s.text for s in m.ours()) == 1
    by_week = discord_by_week(d, (W1, W2))
    assert [len(v) for v in by_week.values()] == [1, 1] and len(d.messages) == 2
    (carrier,) = by_week[W2]
    assert [shown(e["title"]) for e in late_embeds(carrier)] == [LATE[0]]
    assert sum(LATE[0] in json.dumps(m.embeds, ensure_ascii=False) for m in d.messages.values()) == 1
    print(f"\nend to end in {time.monotonic() - started:.1f} s: {rec.count()} emails, {len(x.ours())} X posts, "
          f"{len(d.messages)} Discord messages, {len(m.ours())} Mastodon statuses, {len(patches)} edit")
