"""Trying a source without polling it (`paperbot check`): can it be reached, and does it answer as a poll needs?

Nothing is recorded: no version, no validators, no mirror, no error count. An HTTP source gets one conditional
GET per file with the validators of its last good poll (so an unchanged file costs a 304, as an idle poll
does), and a changed one is parsed to count its weeks; a git source gets `git ls-remote`, which asks for the
branch's tip without fetching anything.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.config import CheckResult, Config, SourceConfig
from bot.sources.check_http import ACCEPT_FEED, ACCEPT_TEXT, source_urls
from bot.sources.fetch_git import GitFetchError, ls_remote
from bot.sources.fetch_http import FetchError, HttpOptions, conditional_get, public_url, redact
from bot.store import Store
from bot.track.parsing import parse_document


def _validators(store: Store | None, name: str) -> dict:
    row = store.source(name) if store is not None else None
    try:
        return json.loads((row or {}).get("validators") or "{}")
    except ValueError:
        return {}


def probe(cfg: Config, src: SourceConfig, store: Store | None = None, *, retries: int = 1) -> CheckResult:
    """Try `src` once (one retry for a transient failure, not a poll's two) and say what it answered.
    `store` (read only) gives the validators of its last good poll, if there was one."""
    what = f"source {src.name}"
    if src.kind == "git":
        try:
            sha = ls_remote(src.location, src.branch, timeout=min(300.0, max(30.0, cfg.fetch.timeout)))
        except GitFetchError as e:
            return CheckResult(what, False, str(e))
        return CheckResult(what, True, f"git {redact(src.location)}: branch {src.branch} at {sha[:10]}")
    options = HttpOptions(timeout=cfg.fetch.timeout, retries=retries, backoff=0.5, max_bytes=cfg.fetch.max_size)
    accept = ACCEPT_FEED if src.kind == "feed" or src.format == "feed" else ACCEPT_TEXT
    stored = _validators(store, src.name).get("files", {})
    answers = []
    for url in source_urls(src, cfg.github_base_url):
        old = stored.get(redact(url)) or {}
        known = bool(old.get("id"))
        try:
            r = conditional_get(url, etag=old.get("etag") if known else None,
                                last_modified=old.get("last_modified") if known else None,
                                options=options, accept=accept)
        except FetchError as e:
            return CheckResult(what, False, str(e))
        if r.status == 304:
            answers.append(f"GET {redact(url)}: 304 not modified since the last poll")
            continue
        today = datetime.now(UTC).astimezone(cfg.publish.timezone).date()
        doc = parse_document(r.body, today, src.format, url=public_url(r.url), content_type=r.content_type)
        if not doc.weeks:
            return CheckResult(what, False, f"GET {redact(url)}: {r.status}, {len(r.body)} bytes, but no weeks "
                                            f"in it as {src.format} (wrong path or format?)")
        answers.append(f"GET {redact(url)}: {r.status}, {len(r.body)} bytes, {len(doc.weeks)} weeks "
                       f"({doc.format})")
    return CheckResult(what, True, "; ".join(answers))
