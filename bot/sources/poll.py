"""Polling one source: check → parse → validate → observe → release, all recorded in one transaction.

The rules every kind shares live here: a version that is garbage (not text, not a feed) or that suddenly
has no weeks is an error recorded on the source, never a mass removal; a failure leaves the stored state
exactly as it was, and the next poll starts from the last good version. The clock (`now`) and the store are
arguments.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from bot.config import Config, SourceConfig
from bot.locks import LockBusy, held
from bot.sources.base import Check, SourceError, SourceVersion
from bot.sources.check_git import check_git
from bot.sources.check_http import check_http
from bot.sources.fetch_http import HttpOptions, redact
from bot.sources.polite import arxiv_gate
from bot.store import Store, parse_time
from bot.track.digest_cache import EMPTY
from bot.track.lines import CHUNK
from bot.track.model import Document
from bot.track.parsing import Sections, parse_document_again
from bot.track.tracker import observe, release

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollOptions:
    http: HttpOptions = field(default_factory=HttpOptions)
    git_timeout: float = 300.0  # seconds for one git command (a first clone of a big repository)
    lock_wait: float = 60.0  # how long to wait while another process polls the same source

    @classmethod
    def from_config(cls, cfg: Config) -> PollOptions:
        """The options `[fetch]` asks for: one deadline per HTTP attempt, one size cap for HTTP and git; a feed on
        arxiv.org takes its turn at arXiv's gate with the enrichment (#32)."""
        return cls(http=HttpOptions(timeout=cfg.fetch.timeout, max_bytes=cfg.fetch.max_size,
                                    gate=arxiv_gate(cfg.state_dir, cfg.arxiv.api_base)))


@dataclass(frozen=True)
class PollResult:
    source: str
    changed: bool  # a new version was recorded
    new: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()  # all pending weeks of the source after the poll
    ready: tuple[str, ...] = ()  # weeks released by this poll (not those the age guard held: issue #21)
    error: str | None = None
    requests: int = 0
    bytes_read: int = 0
    parsed: int = 0  # documents parsed: 0 for an idle poll
    versions: int = 0  # versions recorded

    def to_json(self) -> dict:
        return {"source": self.source, "changed": self.changed, "new": list(self.new),
                "edited": list(self.edited), "pending": list(self.pending), "ready": list(self.ready),
                "error": self.error}


def _check_utf8(name: str, data: bytes, chunk: int = CHUNK) -> None:
    """UTF-8 text without NUL, checked a megabyte at a time: one decode of a 50 MiB body holds the GIL, and the
    daemon's web app waits, for a tenth of a second (issue #20)."""
    decoder, nul = codecs.getincrementaldecoder("utf-8")(), False
    for at in range(0, len(data), chunk):
        part = data[at : at + chunk]
        try:
            text = decoder.decode(part, final=at + chunk >= len(data))
        except UnicodeDecodeError as e:
            offset = at - (len(e.object) - len(part)) + e.start  # e.object: bytes held from the last part, then part
            raise SourceError(f"{name}: not UTF-8 text (byte {data[offset]:#04x} at offset {offset})") from e
        nul = nul or "\0" in text
    if nul:  # after the whole body decoded: a decoding error further on is what is reported, as before
        raise SourceError(f"{name}: binary data, not a text document")


class _Parser:
    """Parses each distinct file content once per poll, and judges whether a version is usable. A digest's
    weeks whose text did not change since the file's last parse are not read again (`sections`, issue #28)."""

    def __init__(self, src: SourceConfig, cfg: Config, files_state: dict, sections: dict[str, Sections]):
        self.src, self.cfg = src, cfg
        self.weeks_per_file = {name: f.get("weeks", 0) for name, f in files_state.items()}
        self.cache: dict[str, Document] = {}
        self.sections = sections  # file name → the sections of its last parse
        self.calls = 0

    def document(self, v: SourceVersion) -> Document:
        """The merged document of a version; SourceError if it is garbage or lost all its weeks."""
        docs = []
        as_of = v.at.astimezone(self.cfg.publish.timezone).date()
        many = len(v.files) > 1
        for f in v.files:
            label = f"{self.src.name}: {redact(f.name)}" if many else self.src.name
            doc = self.cache.get(f.content_id)
            if doc is None:
                self.calls += 1
                doc, self.sections[f.name] = parse_document_again(
                    f.data, as_of, self.sections.get(f.name, EMPTY), self.src.format, url=f.url,
                    content_type=f.content_type)
                self.cache[f.content_id] = doc
            if doc.format == "feed":
                bad = [d for d in doc.defects if d.kind == "not-a-feed"]
                if bad and not doc.weeks:
                    raise SourceError(f"{label}: not an RSS/Atom feed ({bad[0].text})")
            else:
                _check_utf8(label, f.data)
            if not doc.weeks and self.weeks_per_file.get(f.name, 0) > 0:
                raise SourceError(f"{label}: parsed to no weeks where {self.weeks_per_file[f.name]} were "
                                  "known; the layout may have changed (nothing recorded)")
            docs.append(doc)
        formats = {d.format for d in docs}
        if len(formats) > 1:
            raise SourceError(f"{self.src.name}: its files parse as different formats "
                              f"({', '.join(sorted(formats))})")
        merged = Document(format=docs[0].format, weeks=tuple(w for d in docs for w in d.weeks),
                          defects=tuple(x for d in docs for x in d.defects))
        if not merged.weeks:
            raise SourceError(f"{self.src.name}: no weeks found (wrong path or format?); nothing recorded")
        for f, d in zip(v.files, docs, strict=True):
            self.weeks_per_file[f.name] = len(d.weeks)
        return merged


@contextmanager
def _writing(store: Store, lock: AbstractContextManager | None = None) -> Iterator[None]:
    """One transaction for the whole poll (store.atomic takes SQLite's write lock up front). `lock` is the
    daemon's, so its other writers (the after-poll hooks) take turns with polls in the same process."""
    with lock or nullcontext(), store.atomic():
        yield


def _check(cfg: Config, src: SourceConfig, validators: dict, now: datetime, options: PollOptions,
           stop: threading.Event | None) -> Check:
    if src.kind == "git":
        return check_git(src, validators, cfg.state_dir / "git" / src.name, options.git_timeout,
                         max_size=options.http.max_bytes)
    return check_http(src, validators, now, github_base_url=cfg.github_base_url,
                      cache_dir=cfg.state_dir / "http" / src.name, options=options.http, stop=stop)


def _last_change(store: Store, name: str) -> datetime | None:
    versions = store.versions(name)
    return parse_time(versions[-1]["changed_at"]) if versions else None


def _pending(store: Store, name: str) -> tuple[str, ...]:
    return tuple(w.key for w in store.weeks(name, state="pending"))


def poll_source(store: Store, cfg: Config, src: SourceConfig, now: datetime, *,
                options: PollOptions | None = None, stop: threading.Event | None = None,
                write_lock: AbstractContextManager | None = None,
                sections: dict[str, Sections] | None = None) -> PollResult:
    """Check `src` once at `now`, record what changed, release what is due. Never raises for a bad source.

    `stop` cuts retry waits short (a daemon shutting down); `write_lock` is held around each transaction.
    `options` default to what the config's `[fetch]` table asks for. `sections` is the caller's memory of this
    source's last parse, per file (issue #28): given, it is read and updated, so the next poll re-reads only
    the weeks that changed; without it, only the versions within this poll share it.
    """
    options = options or PollOptions.from_config(cfg)
    try:
        with held(cfg.state_dir / "locks" / f"{src.name}.lock", options.lock_wait):
            return _poll(store, cfg, src, now, options, stop, write_lock, {} if sections is None else sections)
    except LockBusy as e:
        log.warning("%s: skipped: %s", src.name, e)
        return PollResult(src.name, False, pending=_pending(store, src.name), error=f"busy: {e}")


def _poll(store: Store, cfg: Config, src: SourceConfig, now: datetime, options: PollOptions,
          stop: threading.Event | None, write_lock: AbstractContextManager | None,
          sections: dict[str, Sections]) -> PollResult:
    settings = cfg.publish
    location = redact(src.location)
    with _writing(store, write_lock):
        row = store.ensure_source(src.name, kind=src.kind, location=location, now=now)
        if row.get("location") != location:  # the config changed, or an earlier version kept a secret there
            store.update_source(src.name, location=location)
    validators = json.loads(row.get("validators") or "{}")
    requests = bytes_read = 0
    parser = _Parser(src, cfg, validators.get("files", {}), sections)
    try:
        check = _check(cfg, src, validators, now, options, stop)
        requests, bytes_read = check.requests, check.bytes_read
        good: list[tuple[SourceVersion, Document]] = []
        for v in check.versions:
            try:
                good.append((v, parser.document(v)))
            except SourceError as e:
                if v.final:
                    raise
                log.warning("%s: version %s skipped: %s", src.name, v.version[:10], e)
        new_validators = dict(check.validators)
        for name, n in parser.weeks_per_file.items():
            if name in new_validators.get("files", {}):
                new_validators["files"][name]["weeks"] = n
        new: list[str] = []
        edited: list[str] = []
        removed: list[str] = []
        with _writing(store, write_lock):
            last = _last_change(store, src.name)
            for v, doc in good:
                at = min(v.at, now)
                at = max(at, last) if last else at  # commit dates can go backwards (rebases, skewed clocks)
                content = hashlib.sha256("\n".join(f.content_id for f in v.files).encode()).hexdigest()[:16]
                obs = observe(store, src.name, doc, at, v.version, settings, fetched_at=now,
                              content_hash=content, utc_offset=v.at.utcoffset() if src.kind == "git" else None)
                new += [k for k in obs.new if k not in new]
                edited += [k for k in obs.edited if k not in edited and k not in new]
                removed += [k for k in obs.removed if k not in removed]
                last = at
            if check.history:  # a git source's first poll: its clock learned from the year before (issue #25)
                store.record_commit_history(src.name, list(check.history))
            if good:
                store.update_source(src.name, validators=json.dumps(new_validators))
            else:
                store.record_poll(src.name, row.get("last_version") or "", now, validators=new_validators)
            released = release(store, now, settings, source=src.name, sources=(src,))
    except SourceError as e:
        requests, bytes_read = max(requests, e.requests), max(bytes_read, e.bytes_read)
        return _failed(store, cfg, src, now, str(e), requests, bytes_read, parser.calls, write_lock)
    except Exception as e:  # a bug or a database problem: report it on the source, keep the daemon alive
        log.exception("%s: poll failed unexpectedly", src.name)
        return _failed(store, cfg, src, now, f"internal error: {type(e).__name__}: {e}", requests, bytes_read,
                       parser.calls, write_lock)
    result = PollResult(src.name, bool(good), tuple(new), tuple(edited), _pending(store, src.name),
                        tuple(r.key for r in released if not r.held), None, requests, bytes_read, parser.calls,
                        len(good))
    log.info("%s: %s; new: %s; edited: %s; ready: %s (%d requests, %d bytes, %d parsed)", src.name,
             "changed" if result.changed else "unchanged", ", ".join(new) or "-", ", ".join(edited) or "-",
             ", ".join(result.ready) or "-", requests, bytes_read, parser.calls)
    if removed:
        log.warning("%s: no longer in the source (kept, marked absent): %s", src.name, ", ".join(removed))
    return result


def _failed(store: Store, cfg: Config, src: SourceConfig, now: datetime, message: str, requests: int,
            bytes_read: int, parsed: int, write_lock: AbstractContextManager | None = None) -> PollResult:
    """Record the error on the source (nothing else changes) and still release weeks already due."""
    message = redact(message)
    released: list = []
    try:
        with _writing(store, write_lock):
            store.record_error(src.name, message, now)
            released = release(store, now, cfg.publish, source=src.name, sources=(src,))
        count = (store.source(src.name) or {}).get("error_count") or 1
    except Exception:  # the database itself is failing: the log is all we have
        log.exception("%s: could not record the error", src.name)
        count = 0
    log.error("%s: poll failed (%s in a row): %s; will retry at the next poll", src.name, count or "?",
              message)
    return PollResult(src.name, False, pending=_pending(store, src.name),
                      ready=tuple(r.key for r in released if not r.held), error=message, requests=requests,
                      bytes_read=bytes_read, parsed=parsed)
