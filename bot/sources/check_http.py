"""Checking `url`, `feed` and `github` sources: one conditional GET per file, bytes only when they changed.

`github = "owner/repo"` is watched through its raw files, `{base_url}/{owner}/{repo}/{branch}/{path}`:
one conditional request per file and poll, a 304 with no body when nothing changed, no API token and no API
rate limit. The time of a change is the fetch time. A source of several files keeps the last body of each in
state_dir/http/<source>/ so a change to one file re-reads the others without downloading them again.

Secrets in a URL (`user:token@`, `?token=…`) are sent but never kept: files are known by their redacted
URL, the final URL is stored (and relative links resolve against it) without credentials, query or fragment.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from bot.config import SourceConfig
from bot.sources.base import Check, FileVersion, SourceError, SourceVersion, repo_paths
from bot.sources.fetch_http import (
    DEFAULT_OPTIONS,
    FetchError,
    HttpOptions,
    HttpResponse,
    conditional_get,
    public_url,
    redact,
)

log = logging.getLogger(__name__)

ACCEPT_FEED = ("application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, application/xml;q=0.8, "
               "text/xml;q=0.8, */*;q=0.5")
ACCEPT_TEXT = "text/markdown, text/plain;q=0.9, */*;q=0.5"


def source_urls(src: SourceConfig, github_base_url: str) -> tuple[str, ...]:
    """The URLs a source is read from: one per path for `github`, the configured URL otherwise."""
    if src.kind != "github":
        return (src.location,)
    owner_repo = src.location.strip("/")
    base = f"{github_base_url.rstrip('/')}/{owner_repo}/{quote(src.branch, safe='')}"
    return tuple(f"{base}/{quote(p, safe='/')}" for p in repo_paths(src))


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BodyCache:
    """Last bodies of a multi-file source, named by their sha256 (so a torn write is simply a miss)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def get(self, cid: str) -> bytes | None:
        try:
            data = (self.folder / cid).read_bytes()
        except OSError:
            return None
        return data if content_id(data) == cid else None

    def put(self, cid: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{cid}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.folder / cid)

    def keep_only(self, cids: set[str]) -> None:
        if not self.folder.is_dir():
            return
        for f in self.folder.iterdir():
            if f.name not in cids:
                f.unlink(missing_ok=True)


def _entry(old: dict, r: HttpResponse) -> dict:
    """The validators to keep for one file after answer `r`."""
    if r.status == 304:
        out = dict(old)
        out.update({k: v for k, v in (("etag", r.etag), ("last_modified", r.last_modified)) if v})
        if out.get("url"):  # as an earlier version may have stored it: with its query
            out["url"] = public_url(out["url"])
        return out
    return {**old, "id": content_id(r.body), "etag": r.etag, "last_modified": r.last_modified,
            "content_type": r.content_type, "url": public_url(r.url)}


def check_http(src: SourceConfig, validators: dict, now: datetime, *, github_base_url: str, cache_dir: Path,
               options: HttpOptions = DEFAULT_OPTIONS, stop: threading.Event | None = None) -> Check:
    """One conditional GET per file; a version, timed `now` (the fetch time), only if a body changed."""
    urls = source_urls(src, github_base_url)
    keys = {url: redact(url) for url in urls}  # what a file is stored as: never its secrets
    accept = ACCEPT_FEED if src.kind == "feed" or src.format == "feed" else ACCEPT_TEXT
    stored: dict = validators.get("files", {})
    # Files stored under their full URL by earlier versions are found once more, and re-keyed.
    old_files = {keys[url]: stored.get(keys[url]) or stored.get(url) or {} for url in urls}
    requests = bytes_read = 0

    def get(url: str, conditional: bool) -> HttpResponse:
        nonlocal requests, bytes_read
        old = old_files[keys[url]] if conditional else {}
        known = bool(old.get("id"))
        try:
            r = conditional_get(url, etag=old.get("etag") if known else None,
                                last_modified=old.get("last_modified") if known else None,
                                options=options, accept=accept, stop=stop)
        except FetchError as e:
            raise SourceError(str(e), requests + e.requests, bytes_read + e.bytes_read) from e
        requests += r.requests
        bytes_read += r.bytes_read
        if r.status == 304 and not known:  # a broken server or cache: there is nothing to have "not modified"
            raise SourceError(f"GET {redact(url)}: 304 Not Modified to a request without validators",
                              requests, bytes_read)
        return r

    answers = {url: get(url, True) for url in urls}
    files = {keys[url]: _entry(old_files[keys[url]], r) for url, r in answers.items()}
    changed = [url for url, r in answers.items()
               if r.status == 200 and files[keys[url]]["id"] != old_files[keys[url]].get("id")]
    if not changed:
        return Check((), {"files": files}, requests, bytes_read)
    cache = BodyCache(cache_dir) if len(urls) > 1 else None
    out: list[FileVersion] = []
    for url in urls:
        key = keys[url]
        r = answers[url]
        data = r.body if r.status == 200 else (cache.get(files[key]["id"]) if cache else None)
        if data is None:  # a 304 for a body we no longer have: ask again, unconditionally
            log.info("%s: no cached copy of %s; fetching it again", src.name, key)
            r = get(url, False)
            files[key] = _entry(old_files[key], r)
            data = r.body
        if cache:
            cache.put(files[key]["id"], data)
        # Relative links resolve against the final URL without credentials or query (public_url).
        out.append(FileVersion(key, files[key]["id"], data, url=public_url(files[key].get("url") or url),
                               content_type=files[key].get("content_type") or ""))
    if cache:
        cache.keep_only({f.get("id") for f in old_files.values()} | {f["id"] for f in files.values()})
    ids = [f.content_id for f in out]
    version = (ids[0] if len(ids) == 1 else content_id("\n".join(ids).encode()))[:16]
    return Check((SourceVersion(version, now, tuple(out)),), {"files": files}, requests, bytes_read)
