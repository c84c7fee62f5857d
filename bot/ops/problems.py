"""The problems an operator hears about, found in the database after each poll: a source failing or quiet, a
layout that lost weeks, a week held too long, deliveries failed, bounces, possible duplicates, weeks the guard
held. Reads only; bot/ops/alerts.py sends each once per `[alerts] every`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import Config
from bot.ops import alert_text
from bot.ops.status import waiting_for
from bot.store import Store, WeekRow, iso, parse_time
from bot.track.dates import end_of_day
from bot.track.tracker import source_rules

BOUNCES_MIN = 2  # one bounce is never an alert, whatever the share


@dataclass(frozen=True)
class Problem:
    key: str  # stable while the problem lasts: "failing:dair-ai", "held:dair-ai:2024-01-01..2024-01-07"
    kind: str  # failing | quiet | layout | held | deliveries | bounces | duplicates | guard
    subject: str  # one line
    body: str  # what was found, then what to do: paperbot's words (Markdown on Discord: `commands`)
    # What a source or a server said (an error), shown exactly as typed after the body's first line, never as
    # markup (issue #21; bot/ops/alert_text.py)
    quote: str = ""
    once: bool = False  # an event, not a state: sent once to each destination, never repeated every `every`

    def _parts(self) -> tuple[str, str]:
        first, _, rest = self.body.partition("\n")
        return first, rest

    def text(self) -> str:
        """The alert as plain text: the email's body."""
        first, rest = self._parts()
        return alert_text.plain(self.subject, first, self.quote, rest)

    def discord(self) -> str:
        """The alert as one Discord message, within Discord's limit, the quote in a code block."""
        first, rest = self._parts()
        return alert_text.discord(self.subject, first, self.quote, rest)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _days(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours / 24:.0f} days" if hours >= 48 else f"{hours:.0f} hours"


def _failing(cfg: Config, store: Store, now: datetime) -> list[Problem]:
    out = []
    configured = {s.name for s in cfg.sources}
    for r in store.sources():
        n = r.get("error_count") or 0
        if r["name"] not in configured or n < cfg.alerts.failures:
            continue
        out.append(Problem(
            f"failing:{r['name']}", "failing", f"source {r['name']}: {_count(n, 'poll')} in a row failed",
            f"The last, at {r['last_error_at']}, said:\n"
            + (f"Its last good poll was at {r['last_polled']}." if r.get("last_polled") else
               "No poll of it has worked yet.") + " Nothing of a failed poll is recorded, and every poll tries "
            "again.\n"
            f"What to do: `paperbot check` tries the source and says what it answers. If it moved, point "
            f"[[sources]] {r['name']} at its new place; if the server is down, wait (this alert repeats every "
            f"{_days(cfg.alerts.every)} while it lasts).", alert_text.quoted(r["last_error"] or "-")))
    return out


def _quiet(cfg: Config, store: Store, now: datetime) -> list[Problem]:
    out = []
    rows = {r["name"]: r for r in store.sources()}
    for src in cfg.sources:
        row = rows.get(src.name)
        if row is None or (row.get("error_count") or 0) >= cfg.alerts.failures:
            continue  # never polled, or failing: the first poll, or the failing alert, speaks for it
        newest = store.db.execute("SELECT max(first_seen) FROM weeks WHERE source = ? AND late_of IS NULL",
                                  [src.name]).fetchone()[0]
        since = parse_time(newest or row["created_at"])
        if now - since <= cfg.alerts.quiet:
            continue
        out.append(Problem(
            f"quiet:{src.name}", "quiet", f"source {src.name}: no new week for {_days(now - since)}",
            (f"The newest week was first seen at {iso(since)}" if newest else f"It has had no week since it was "
             f"added at {iso(since)}") + (f"; the last good poll was at {row['last_polled']}.\n"
                                          if row.get("last_polled") else "; no poll of it has worked yet.\n") +
            "What to do: look at the source. If it moved, point the config at its new place; if its headings "
            "changed, `paperbot parse` on a copy of it shows what paperbot reads; if the maintainer is on a "
            f"break, nothing (quiet = \"{_days(cfg.alerts.quiet)}\" in [alerts] sets how long is too long)."))
    return out


def _layout(cfg: Config, store: Store, now: datetime) -> list[Problem]:
    out = []
    if cfg.alerts.layout_drop <= 0:
        return out
    for src in cfg.sources:
        rows = store.db.execute("SELECT version, n_weeks, fetched_at FROM versions WHERE source = ? "
                                "ORDER BY id DESC LIMIT 2", [src.name]).fetchall()
        if len(rows) < 2:
            continue
        (version, n, at), (_, before, _) = rows
        if not before or n >= cfg.alerts.layout_drop * before:
            continue
        out.append(Problem(
            f"layout:{src.name}:{version}", "layout",
            f"source {src.name}: its newest version has {_count(n, 'week')} where the one before had {before}",
            f"Version {version[:12]} (read at {at}) parses to far fewer weeks: its layout has probably changed "
            "(headings paperbot no longer recognises). The weeks missing from it are kept, marked absent.\n"
            f"What to do: `paperbot parse` on a copy of the source shows which weeks and defects paperbot sees; "
            f"if the headings changed, set the source's `format` or report the new layout. "
            f"`paperbot weeks --source {src.name}` lists what is known."))
    return out


def _held(cfg: Config, store: Store, now: datetime) -> list[Problem]:
    out = []
    configs = {s.name: s for s in cfg.sources}
    rules: dict = {}
    max_wait = cfg.publish.max_wait
    for w in store.weeks():
        if w.state in ("baseline", "published", "skipped", "held"):  # a held week has its own alert (_guard)
            continue
        if w.source not in rules:
            rules[w.source] = source_rules(store, w.source, cfg.publish, configs.get(w.source))
        r = rules[w.source]
        if w.state == "pending":
            over = end_of_day(w.last_day, r.clock.zone) if w.last_day else w.first_seen
            start = max(over, w.first_seen)
            if not w.present or now <= start + max_wait:
                continue
            what, detail = waiting_for(w, r, cfg.publish, now)
            todo = ("it goes out by itself then; if the source's weeks are smaller now for good, set its "
                    "`expect_papers`" if what == "papers" else
                    "the next poll releases it: check that `paperbot run` is running (`paperbot status`)"
                    if what == "next poll" else f"see `paperbot status`; `paperbot weeks --source {w.source}`")
            out.append(_held_problem(w, f"pending, waiting for {what}: {detail}", start, max_wait, todo))
            continue
        if w.ready_at is None or now <= w.ready_at + max_wait:
            continue
        pubs = store.db.execute("SELECT state, trial FROM publications WHERE source = ? AND week_key = ?",
                                [w.source, w.key]).fetchall()
        if w.state == "ready" and pubs and all(trial for _, trial in pubs):
            continue  # only tried in the outbox: it goes out when the channel is live, by design
        if w.state == "ready":
            how = ", ".join(f"{state}" for state, _ in pubs) or "not planned on any channel"
            todo = (f"`paperbot history {w.source}:{w.key}` shows what is left and why; `paperbot publish` "
                    "sends it (the daemon tries after every poll)")
            out.append(_held_problem(w, f"ready but not out ({how})", w.ready_at, max_wait, todo))
        else:  # a state of a later step (an approval, say)
            out.append(_held_problem(w, w.state, w.ready_at, max_wait, "see `paperbot status`"))
    return out


def _held_problem(w: WeekRow, state: str, since: datetime, max_wait: timedelta, todo: str) -> Problem:
    return Problem(f"held:{w.source}:{w.key}", "held",
                   f"week {w.source}:{w.key} held past max_wait",
                   f"It could have gone out from {iso(since)} and is still {state}; max_wait is "
                   f"{_days(max_wait)}.\nWhat to do: {todo}.")


def _deliveries(cfg: Config, store: Store, now: datetime) -> list[Problem]:
    out = []
    cutoff = iso(now - cfg.alerts.failed_after)
    rows = store.db.execute(
        "SELECT d.source, d.week_key, d.channel, "
        "sum(d.state = 'uncertain'), "
        "sum(d.state = 'failed' AND p.planned_at < ?), "
        "sum(d.state = 'refused' OR (d.state = 'bounced' AND d.channel != 'email')), "
        "max(CASE WHEN d.state IN ('failed', 'bounced', 'uncertain', 'refused') THEN d.last_error END) "
        "FROM deliveries d JOIN publications p ON p.source = d.source AND p.week_key = d.week_key "
        "AND p.channel = d.channel GROUP BY d.source, d.week_key, d.channel", [cutoff]).fetchall()
    for source, key, channel, uncertain, failed, refused, error in rows:
        uncertain, failed, refused = uncertain or 0, failed or 0, refused or 0
        if not (uncertain or failed or refused):
            continue
        found = ", ".join(part for part in (
            f"{failed} still failed {_days(cfg.alerts.failed_after)} after it was planned" if failed else "",
            f"{refused} refused for good" if refused else "",
            f"{uncertain} uncertain (sent or not, nobody knows)" if uncertain else "") if part)
        todo = [f"`paperbot history {source}:{key}` lists each one with its error"]
        if failed:
            todo.append("fix what the error names (the server, the credentials), then `paperbot publish` sends "
                        "the failed ones (the daemon retries them after every poll)")
        if uncertain or refused:
            todo.append(f"look on {channel} whether they arrived, then settle each: `paperbot resolve {source}:{key} "
                        f"--channel {channel} --unit N --posted ID` (it went out) or `--retry` (send it again)")
        out.append(Problem(
            f"deliveries:{channel}:{source}:{key}", "deliveries",
            f"{channel} {source}:{key}: deliveries {'uncertain or ' if uncertain else ''}failed",
            f"{found}. The last error:\n"
            f"What to do: {'; '.join(todo)}.", alert_text.quoted(error or "-")))
    return out


def _bounces(cfg: Config, store: Store, now: datetime) -> list[Problem]:
    out = []
    rows = store.db.execute(
        "SELECT source, week_key, sum(state = 'bounced'), sum(state IN ('sent', 'bounced')) FROM deliveries "
        "WHERE channel = 'email' GROUP BY source, week_key").fetchall()
    for source, key, bounced, tried in rows:
        if not tried or (bounced or 0) < BOUNCES_MIN or bounced / tried <= cfg.alerts.bounce_rate:
            continue
        out.append(Problem(
            f"bounces:{source}:{key}", "bounces",
            f"email {source}:{key}: {bounced} of {tried} addresses bounced ({bounced / tried:.0%})",
            f"More than {cfg.alerts.bounce_rate:.0%} of this edition was refused for good; bounced addresses are "
            "never mailed again.\nWhat to do: `paperbot history` lists them with the servers' answers. Many at "
            "once mean a stale list (an old import) or mail the receivers take for spoofed: check the SPF, DKIM "
            "and DMARC records of the `from` domain before the next edition."))
    return out


GUARD_NAMED = 10  # weeks named one by one in a guard alert; the rest counted


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:GUARD_NAMED])
    return shown + (f" and {len(keys) - GUARD_NAMED} more" if len(keys) > GUARD_NAMED else "")


def _guard(cfg: Config, store: Store, now: datetime) -> list[Problem]:
    """Issue #21: weeks the age guard held (one alert per source, naming them), and ready weeks the daily cap
    holds back (one per source and channel)."""
    from bot.publish import cap  # imports the channel registry: only when asked

    out = []
    held: dict[str, list[WeekRow]] = {}
    ready = []
    for w in store.weeks():
        if w.state == "held":
            held.setdefault(w.source, []).append(w)
        elif w.state == "ready":
            ready.append(w)
    for source, weeks in sorted(held.items()):
        keys = [w.key for w in weeks]
        out.append(Problem(
            f"guard:held:{source}", "guard", f"source {source}: {_count(len(weeks), 'week')} held, not sent",
            f"Held by the guard on age (sent to nobody, not in the feed): {_listed(keys)}. Why, for "
            f"{source}:{weeks[-1].key}: {weeks[-1].held or '-'}.\n"
            f"What to do: look at the source. If an archive was pasted in, `paperbot skip --held {source}` gives "
            f"them all up; to send them, `paperbot approve --held {source}` (or `paperbot approve "
            f"{source}:WEEK ...` for some)."))
    waits: dict[tuple[str, str], list[tuple[str, datetime]]] = {}
    ready.sort(key=lambda w: (w.last_day or w.first_seen.date(), w.key, w.source))
    for (source, key), channels in cap.waiting(cfg, store, ready, now).items():
        for channel, until in channels.items():
            waits.setdefault((source, channel), []).append((key, until))
    for (source, channel), found in sorted(waits.items()):
        out.append(Problem(
            f"guard:cap:{channel}:{source}", "guard",
            f"{channel} {source}: {_count(len(found), 'edition')} waiting for the daily cap",
            f"[publish] max_per_day = {cfg.publish.max_per_day} editions of {source} on {channel} in any 24 hours; "
            f"waiting, oldest first: {_listed([k for k, _ in found])}; the next goes out at "
            f"{iso(min(t for _, t in found))}.\n"
            f"What to do: nothing, they go out in order; `paperbot approve {source}:WEEK` sends one now. Many at "
            f"once mean the source added many weeks: look at it (`paperbot status`)."))
    return out


def _duplicates(cfg: Config, store: Store, now: datetime) -> list[Problem]:
    """Units sent again after an uncertain outcome without being looked for (issue #21): they may show twice."""
    out = []
    rows = store.db.execute(
        "SELECT source, week_key, channel, count(*), group_concat(unit, ', '), max(possible_duplicate) "
        "FROM deliveries WHERE possible_duplicate IS NOT NULL GROUP BY source, week_key, channel").fetchall()
    for source, key, channel, n, units, why in rows:
        out.append(Problem(
            f"duplicates:{channel}:{source}:{key}:{n}", "duplicates",
            f"{channel} {source}:{key}: {_count(n, 'possible duplicate')}",
            f"{_count(n, 'unit')} may have gone out already and were sent again without a way to look first; "
            "the units and why:\n"
            f"What to do: look on {channel} whether the edition shows twice and delete the extra copy if it "
            f"does (`paperbot history {source}:{key}` names each one). "
            + ("With a bot token and [discord] channel_id, paperbot reads the channel back instead of sending "
               "again." if channel == "discord" else "A mail server that answers late is the usual cause."),
            alert_text.quoted(f"{units}: {why or ''}"), once=True))
    return out


DETECTORS = (_failing, _quiet, _layout, _held, _deliveries, _bounces, _duplicates, _guard)


def detect(cfg: Config, store: Store, now: datetime) -> list[Problem]:
    """Every problem the database shows at `now` (reads only; `now` is passed in so tests need no sleep)."""
    return [p for find in DETECTORS for p in find(cfg, store, now)]
