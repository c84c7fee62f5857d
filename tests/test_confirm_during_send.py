"""issue #24: a reader who confirms while a week's email is being sent. On main the recipients were planned once
and the welcome carried the latest *published* edition, so that reader never got the week going out. Now the
publication, before it is marked published, plans the readers who joined meanwhile, each once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from publish_support import SECRET, add_subscribers, addresses, ready_week, smtp_server, write_config

from bot.channels.email import subscribers as subs
from bot.publish import ledger
from bot.publish.pipeline import publish_week
from bot.store import Store


def test_a_reader_confirmed_while_the_week_is_sent_gets_it_once(tmp_path, monkeypatch):
    """issue #24: a real SMTP server; the reader confirms (through its own connection, as the web app does)
    while the first messages are going out; the run ends with that reader's copy sent too, once, and a second
    run sends nothing more."""
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port, connections=1, rate=20, batch=2)  # #27: progress after each batch
        store = Store.open(cfg.db_path)
        add_subscribers(store, tmp_path, addresses(10))
        week = ready_week(store, cfg)
        joined = []

        def progress(label: str, stats) -> None:  # called by the run while it sends
            if joined or stats.sent < 2:
                return
            web = Store.open(cfg.db_path)  # the web app's own connection
            try:
                now = datetime.now(UTC)
                subs.request_confirmation(web, "late@example.net", now=now, ttl=timedelta(hours=1), per_day=3,
                                          nonce="n-late")
                assert subs.confirm(web, "n-late", now=now)[0] == "confirmed"
            finally:
                web.close()
            joined.append(stats.sent)

        reports = publish_week(cfg, store, week, channels=["email"], progress=progress,
                               now=datetime(2023, 3, 10, tzinfo=UTC))
        assert joined and joined[0] < 10, "the reader must join before the run ends"
        assert reports[0].published
        got = rec.recipients()
        assert got["late@example.net"] == 1
        assert all(got[a] == 1 for a in addresses(10))
        pub = ledger.publication(store, week.source, week.key, "email")
        assert pub.state == "published" and pub.units == 11
        publish_week(cfg, store, week, channels=["email"], now=datetime(2023, 3, 10, 1, tzinfo=UTC))
        assert rec.recipients()["late@example.net"] == 1 and rec.count() == 11
        store.close()
