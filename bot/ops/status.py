"""`paperbot status`: what paperbot is doing, from the state database and the config, at one glance.

`status(cfg, store, now)` reads (never writes) and returns the JSON form documented in the README; `lines`
turns it into the human form, every line wrapped within 80 columns. Per source: the last poll, the last change, the
errors in a row, its clock and usual size, the next poll; the weeks pending (and what each waits for), ready
and published; per channel the deliveries in progress, failed and uncertain, and a rate limit in force
(read from `channel_state` when the database has that table); the subscribers; the next poll and release.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

from bot import locks
from bot.channels import windows
from bot.channels.email.settings import LOCAL_TRIAL, local_trial
from bot.config import Config, PublishSettings, SourceConfig
from bot.publish.first import CHANNEL, WAITING, is_waiting
from bot.store import Store, WeekRow, iso, parse_time
from bot.track.dates import end_of_day
from bot.track.gate import is_short
from bot.track.tracker import SourceRules, source_rules

WIDTH = 80
PUBLISHED_SHOWN = 3  # the newest published weeks listed
HELD_SHOWN = 5  # held weeks listed one by one in the human form (issue #21: 60 of them must not fill the screen)
OPEN_STATES = ("planned", "sending")  # deliveries under way


def _duration(d: timedelta) -> str:
    s = int(d.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


def _later(*times: str | None) -> str | None:
    found = [t for t in times if t]
    return max(found, key=lambda t: parse_time(t)) if found else None


def waiting_for(w: WeekRow, rules: SourceRules, settings: PublishSettings, now: datetime) -> tuple[str, str]:
    """(what a pending week waits for, a short explanation): `end of week`, `papers`, `placeholders`,
    `settle`, `next poll` (its gate is open: the next poll releases it) or `gone` (not in the source now)."""
    g = rules.gate(w, settings)
    if g is None:
        return "gone", "no longer in the source; it waits until it is back"
    over = end_of_day(w.last_day, rules.clock.zone) if w.last_day else w.first_seen
    if now < over:
        return "end of week", f"its last day ends {_short(over)} ({rules.clock.name})"
    if g.at <= now:
        return "next poll", "ready now: the next poll releases it"
    if settings.wait_for_papers and rules.expected and is_short(w.n_papers, rules.expected):
        return "papers", f"{w.n_papers} of the usual {rules.expected}; waits for the rest until {_short(g.at)}"
    if w.placeholders:
        return "placeholders", f"rows still say XXX; goes out by {_short(g.at)} (max_wait) at the latest"
    return "settle", (f"changed {_short(w.last_changed)}; ready once unchanged for {_duration(settings.settle)}, "
                      f"at {_short(g.at)}")


def _short(t: datetime | str | None) -> str:
    """`2026-12-01 09:30 UTC`: minutes are enough to read at a glance."""
    if t is None:
        return "-"
    if isinstance(t, str):
        t = parse_time(t)
    return iso(t)[:16].replace("T", " ") + " UTC"


def _has_table(store: Store, name: str) -> bool:
    return store.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone() \
        is not None


def _source(store: Store, cfg: Config, name: str, src: SourceConfig | None, row: dict | None,
            now: datetime) -> dict:
    row = row or {}
    rules = source_rules(store, name, cfg.publish, src)
    last = _later(row.get("last_polled"), row.get("last_error_at"))
    versions = store.db.execute("SELECT changed_at FROM versions WHERE source = ? ORDER BY id DESC LIMIT 1",
                                [name]).fetchone()
    next_poll = None
    if src is not None:
        next_poll = iso(parse_time(last) + src.every) if last else iso(now)
    return {
        "name": name, "kind": src.kind if src else row.get("kind") or None, "configured": src is not None,
        "last_poll": last, "last_poll_ok": bool(last) and not row.get("error_count"),
        "last_change": versions[0] if versions else None,
        "errors_in_a_row": row.get("error_count") or 0, "last_error": row.get("last_error"),
        "timezone": rules.clock.name, "timezone_from": rules.clock.describe_origin(),
        "expect_papers": rules.expected, "expect_papers_from": rules.expected_from,
        "every": _duration(src.every) if src else None, "next_poll": next_poll,
    }


def _publication_states(store: Store, source: str, key: str) -> dict[str, str]:
    rows = store.db.execute("SELECT channel, state FROM publications WHERE source = ? AND week_key = ?",
                            [source, key]).fetchall()
    return {c: s for c, s in rows}


def _channel(store: Store, cfg: Config, name: str, now: datetime) -> dict:
    from bot import channels as registry  # the registry: only when asked

    live = registry.live(cfg, name)  # from the settings: no channel library imported (issue #29)
    counts = dict(store.db.execute("SELECT state, count(*) FROM deliveries WHERE channel = ? GROUP BY state",
                                   [name]).fetchall())
    until = reason = None
    if _has_table(store, "channel_state"):
        r = store.db.execute("SELECT until, reason FROM channel_state WHERE channel = ?", [name]).fetchone()
        if r and r[0] and parse_time(r[0]) > now:
            until, reason = iso(parse_time(r[0])), r[1]
    weeks = store.db.execute("SELECT count(*) FROM publications WHERE channel = ? AND state = 'sending'",
                             [name]).fetchone()[0]
    found = getattr(getattr(cfg, name, None), "send_at", ())  # issue #25: when it may send next
    at = windows.next_window(found, cfg.publish.timezone, now) if found else None
    local = live and name == "email" and local_trial(cfg)
    return {"live": live, "mode": LOCAL_TRIAL if local else "live" if live else "trial" if live is False else None,
            "weeks_sending": weeks, "send_at": [str(x) for x in found],
            "next_window": iso(at.astimezone(UTC)) if at else None,
            "in_progress": sum(counts.get(s, 0) for s in OPEN_STATES), "failed": counts.get("failed", 0),
            "uncertain": counts.get("uncertain", 0), "rate_limited_until": until, "rate_limited_reason": reason}


def status(cfg: Config, store: Store, now: datetime) -> dict:
    """The README's `paperbot status --json` shape. Reads only."""
    from bot import channels as registry

    configs = {s.name: s for s in cfg.sources}
    rows = {r["name"]: r for r in store.sources()}
    names = [s.name for s in cfg.sources] + sorted(n for n in rows if n not in configs)
    sources = [_source(store, cfg, n, configs.get(n), rows.get(n), now) for n in names]
    counts = dict(store.db.execute("SELECT state, count(*) FROM weeks GROUP BY state").fetchall())
    pending, ready, held, awaiting, rules = [], [], [], [], {}
    everyone = store.weeks()
    capped = _capped(cfg, store, everyone, now)
    for w in everyone:
        if w.state == "held":
            held.append({"source": w.source, "key": w.key, "title": w.title, "papers": w.n_papers,
                         "held_at": iso(w.ready_at) if w.ready_at else None, "why": w.held})
            continue
        if w.state == "awaiting-approval":  # issue #25: named, with the commands that answer it
            name = f"{w.source}:{w.key}"
            awaiting.append({"source": w.source, "key": w.key, "title": w.title, "papers": w.n_papers,
                             "approve": f"paperbot approve {name}", "skip": f"paperbot skip {name}"})
            continue
        if w.state not in ("pending", "ready"):
            continue
        if w.state == "ready":
            ready.append({"source": w.source, "key": w.key, "title": w.title, "papers": w.n_papers,
                          "ready_at": iso(w.ready_at) if w.ready_at else None, "flagged": w.flagged,
                          "channels": {**({CHANNEL: WAITING} if is_waiting(store, w.source, w.key) else {}),
                                       **_publication_states(store, w.source, w.key)},
                          "waits_for_cap": {c: iso(t) for c, t in capped.get((w.source, w.key), {}).items()},
                          "waits_for_window": window_waits(cfg, store, w, now)})
            continue
        if w.source not in rules:
            rules[w.source] = source_rules(store, w.source, cfg.publish, configs.get(w.source))
        what, detail = waiting_for(w, rules[w.source], cfg.publish, now)
        g = rules[w.source].gate(w, cfg.publish)
        pending.append({"source": w.source, "key": w.key, "title": w.title, "papers": w.n_papers,
                        "waiting_for": what, "detail": detail, "ready_by": iso(g.at) if g else None})
    published = [{"source": s, "key": k, "title": t, "published_at": at} for s, k, t, at in store.db.execute(
        "SELECT w.source, w.key, w.title, max(p.published_at) AS at FROM weeks w JOIN publications p "
        "ON p.source = w.source AND p.week_key = w.key WHERE w.state = 'published' "
        "GROUP BY w.source, w.key ORDER BY at DESC LIMIT ?", [PUBLISHED_SHOWN]).fetchall()]
    subscribers = dict(store.db.execute("SELECT state, count(*) FROM subscribers GROUP BY state").fetchall())
    polls = [(s["next_poll"], s["name"]) for s in sources if s["next_poll"]]
    releases = [(p["ready_by"], p["source"], p["key"]) for p in pending if p["ready_by"]]
    pid = locks.holder(cfg.state_dir / "paperbot.lock")
    return {
        "now": iso(now),
        "daemon": {"running": pid is not None, "pid": pid or None},
        "sources": sources,
        "weeks": {"counts": counts, "pending": pending, "ready": ready, "held": held, "awaiting_approval": awaiting,
                  "published": published},
        "channels": {name: _channel(store, cfg, name, now) for name in registry.NAMES},
        "subscribers": subscribers,
        "arxiv": _arxiv(cfg, store),
        "next": {"poll": dict(zip(("at", "source"), min(polls), strict=True)) if polls else None,
                 "release": dict(zip(("at", "source", "key"), min(releases), strict=True)) if releases else None},
    }


def _arxiv(cfg: Config, store: Store) -> dict:
    """How many papers that link arXiv have its record, and when its API last answered (#32)."""
    c = store.arxiv_counts()
    return {"enabled": cfg.arxiv.enabled, "papers": c.papers, "enriched": c.enriched,
            "last_answer_at": c.last_answer_at, "last_error": c.last_error, "last_error_at": c.last_error_at}


def window_waits(cfg: Config, store: Store, w: WeekRow, now: datetime) -> dict[str, str]:
    """Per channel not yet started on a ready week, when its next send window opens, if it must wait for one
    (issue #25: a week waiting for `send_at` was shown as if nothing held it)."""
    from bot import channels as registry

    started = _publication_states(store, w.source, w.key)
    out = {}
    for name in registry.NAMES:
        found = getattr(getattr(cfg, name, None), "send_at", ())
        if found and started.get(name) in (None, "trial") and not windows.may_send(
                found, cfg.publish.timezone, w.ready_at, now) and (at := windows.next_window(
                    found, cfg.publish.timezone, now)):
            out[name] = iso(at.astimezone(UTC))
    return out


def _capped(cfg: Config, store: Store, weeks: list[WeekRow], now: datetime) -> dict:
    """The ready weeks the daily cap holds back, per channel (issue #21; bot/publish/cap.py)."""
    from bot.publish import cap  # imports the channel registry: only when asked

    ready = sorted((w for w in weeks if w.state == "ready"), key=lambda w: (w.last_day or w.first_seen.date(),
                                                                              w.key, w.source))
    return cap.waiting(cfg, store, ready, now) if ready else {}


def _wrap(text: str, width: int = WIDTH) -> list[str]:
    """A line longer than `width` wrapped under its own indent (issue #25: cutting it lost the useful end, an
    error's cause or a time); a word longer than the width (a URL) keeps its own line whole."""
    if len(text) <= width:
        return [text]
    indent = " " * (len(text) - len(text.lstrip(" ")) + 4)
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def lines(st: dict) -> list[str]:
    """The human form: one screen, lines wrapped at 80 columns (a single word longer than that, a URL, whole)."""
    d = st["daemon"]
    daemon = (f"running (pid {d['pid']})" if d["pid"] else "running") if d["running"] \
        else "not running (`paperbot run` starts it)"
    out = [f"paperbot status at {_short(st['now'])}", f"daemon: {daemon}", "sources:"]
    if not st["sources"]:
        out.append("  none configured")
    for s in st["sources"]:
        if not s["last_poll"]:
            out.append(f"  {s['name']}: never polled")
        else:
            health = f"FAILING ({s['errors_in_a_row']} in a row)" if s["errors_in_a_row"] else "ok"
            out.append(f"  {s['name']}: {health}; polled {_short(s['last_poll'])}; "
                       f"changed {_short(s['last_change'])}")
        usual = f"{s['expect_papers']} papers" if s["expect_papers"] is not None else "size unknown"
        due = " (due)" if s["next_poll"] and s["next_poll"] <= st["now"] else ""
        nxt = f"; next poll {_short(s['next_poll'])}{due}" if s["next_poll"] else "; not in the config"
        out.append(f"    {s['timezone']} ({s['timezone_from']}); {usual}{nxt}")
        if s["last_error"]:
            out.append(f"    error: {s['last_error']}")
    next_polls = {s["name"]: s["next_poll"] for s in st["sources"] if s["next_poll"]}
    w = st["weeks"]
    counts = ", ".join(f"{n} {state}" for state, n in sorted(w["counts"].items())) or "none yet"
    out.append(f"weeks: {counts}")
    for p in w["pending"]:
        out.append(f"  pending {p['source']}:{p['key']}: waits for {p['waiting_for']}")
        out.append(f"    {p['detail']}")
    for r in w["ready"]:
        tried = ", ".join(f"{c} {s}" for c, s in sorted(r["channels"].items()) if s != WAITING) or "not sent yet"
        out.append(f"  ready {r['source']}:{r['key']} since {_short(r['ready_at'])}; {tried}")
        if not r["channels"] and not r.get("waits_for_window") and not r.get("waits_for_cap"):
            at = next_polls.get(r["source"])  # issue #25 (13i): a week a manual poll released waits for this
            out.append(f"    goes out after the daemon's next poll of {r['source']}"
                       + (f", at {_short(at)}" if at else "") + ", or now with `paperbot publish`")
        if r["channels"].get(CHANNEL) == WAITING:
            out.append(f"    {CHANNEL}: {WAITING} (the welcome email carries the newest waiting week)")
        for c, at in sorted(r.get("waits_for_window", {}).items()):
            out.append(f"    {c}: waits for its send window, next {_short(at)}")
        for c, until in sorted(r.get("waits_for_cap", {}).items()):
            out.append(f"    {c}: waits for the daily cap (max_per_day) until {_short(until)}")
    for h in w.get("held", [])[:HELD_SHOWN]:
        out.append(f"  HELD {h['source']}:{h['key']}: paperbot approve, or skip, it")
        out += [f"    {part}" for part in textwrap.wrap(h["why"] or "-", WIDTH - 4)]
    if len(w.get("held", [])) > HELD_SHOWN:
        names = sorted({h["source"] for h in w["held"]})
        out.append(f"  … and {len(w['held']) - HELD_SHOWN} more held: `paperbot approve --held SOURCE` or "
                   f"`paperbot skip --held SOURCE` ({', '.join(names)})")
    for a in w.get("awaiting_approval", []):
        out.append(f"  AWAITING APPROVAL {a['source']}:{a['key']}: {a['approve']} (or {a['skip']})")
    for p in w["published"]:
        out.append(f"  published {p['source']}:{p['key']} at {_short(p['published_at'])}")
    out.append("channels:")
    for name, c in st["channels"].items():
        mode = ("local trial (mail to a server on this machine only)"
                if c.get("mode") == LOCAL_TRIAL else "live" if c["live"]
                else "trial (outbox)" if c["live"] is False else "not set up")
        line = (f"  {name}: {mode}; {c['in_progress']} in progress, {c['failed']} failed, "
                f"{c['uncertain']} uncertain")
        out.append(line)
        if c.get("next_window"):
            out.append(f"    sends only in its windows ({', '.join(c['send_at'])}): next "
                       f"{_short(c['next_window'])}")
        if c["rate_limited_until"]:
            out.append(f"    rate-limited until {_short(c['rate_limited_until'])}: {c['rate_limited_reason'] or '-'}")
    ax = st["arxiv"]
    if ax["enabled"] or ax["enriched"]:
        answered = f"last answer {_short(ax['last_answer_at'])}" if ax["last_answer_at"] else "never asked yet"
        out.append(f"arXiv: {ax['enriched']} of {ax['papers']} linked papers enriched; {answered}"
                   + ("" if ax["enabled"] else " (disabled)"))
        if ax["last_error"] and (not ax["last_answer_at"] or ax["last_error_at"] > ax["last_answer_at"]):
            out.append(f"    last error {_short(ax['last_error_at'])}: {ax['last_error']}")
    subs = st["subscribers"]
    out.append("subscribers: " + (", ".join(f"{n} {state}" for state, n in sorted(subs.items())) or "none"))
    nxt = st["next"]
    if nxt["poll"]:
        due = " (due)" if nxt["poll"]["at"] <= st["now"] else ""
        out.append(f"next poll: {nxt['poll']['source']} at {_short(nxt['poll']['at'])}{due}"
                   + ("" if st["daemon"]["running"] else " (once the daemon runs)"))
    if nxt["release"]:
        out.append(f"next release: {nxt['release']['source']}:{nxt['release']['key']} at "
                   f"{_short(nxt['release']['at'])}")
    return [part for line in out for part in _wrap(line)]
