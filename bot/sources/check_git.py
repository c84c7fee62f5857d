"""Checking a `git` source: fetch the mirror, compare blob ids, return each commit that changed the files.

An idle poll is one `git fetch` and, only if the branch moved, one `git ls-tree`: nothing is read. When
several commits arrived since the last poll, each is returned in order with its commit date, so every week
gets the time it really appeared (as `paperbot replay` does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from bot.config import SourceConfig
from bot.sources.base import Check, FileVersion, SourceError, SourceVersion, repo_paths
from bot.sources.fetch_git import GitFetchError, Mirror
from bot.sources.fetch_http import redact
from bot.track.gitrepo import Commit

log = logging.getLogger(__name__)


def _versions(mirror: Mirror, commits: Sequence[Commit], paths: tuple[str, ...],
              before: dict[str, str | None], source: str) -> list[tuple[Commit, dict[str, str | None]]]:
    """Each commit's blob ids, dropping commits that changed nothing we read or lack a file."""
    out: list[tuple[Commit, dict[str, str | None]]] = []
    prev = before
    for i, c in enumerate(commits):
        ids = mirror.blob_ids(c.sha, paths)
        missing = [p for p, oid in ids.items() if oid is None]
        if missing:
            if i == len(commits) - 1:
                raise SourceError(f"{', '.join(missing)} not found at commit {c.sha[:10]}", 1)
            log.warning("%s: commit %s has no %s; skipped", source, c.sha[:10], ", ".join(missing))
            continue
        if ids != prev:
            out.append((c, ids))
            prev = ids
    return out


def _within_size(mirror: Mirror, changed: list[tuple[Commit, dict[str, str | None]]], max_size: int,
                 source: str) -> list[tuple[Commit, dict[str, str | None]]]:
    """Refuse before reading: a blob over `max_size` would cost its size in memory and more to parse. An
    oversized commit in between is skipped (else it would block the source for good); at the tip it fails."""
    sizes = mirror.blob_sizes(sorted({oid for _, ids in changed for oid in ids.values() if oid}))
    out = []
    for i, (c, ids) in enumerate(changed):
        big = [(p, sizes[oid]) for p, oid in ids.items() if oid and sizes[oid] > max_size]
        if not big:
            out.append((c, ids))
            continue
        what = ", ".join(f"{p} at commit {c.sha[:10]} is {n} bytes" for p, n in big)
        if i == len(changed) - 1:
            raise SourceError(f"{what}, more than [fetch] max_size ({max_size} bytes); not read", 1)
        log.warning("%s: %s, more than [fetch] max_size (%d bytes); commit skipped", source, what, max_size)
    return out


def check_git(src: SourceConfig, validators: dict, mirror_dir: Path, timeout: float = 300.0, *,
              max_size: int = 50 * 2**20) -> Check:
    """The commits of `src.branch` that changed `src.paths` since the commit stored in `validators`.

    No blob larger than `max_size` is read (`_within_size`)."""
    paths = repo_paths(src)
    mirror = Mirror(mirror_dir, src.location, timeout)
    try:
        mirror.ensure()
        tip = mirror.fetch(src.branch)
        old_commit = validators.get("commit")
        old_files: dict = validators.get("files", {})
        if tip == old_commit:
            return Check((), validators, requests=1)
        tip_ids = mirror.blob_ids(tip, paths)
        missing = [p for p, oid in tip_ids.items() if oid is None]
        if missing:
            raise SourceError(f"{', '.join(missing)} not found on branch {src.branch!r} of "
                              f"{redact(src.location)} (commit {tip[:10]})", 1)
        old_ids = {p: old_files.get(p, {}).get("id") for p in paths}
        files = {p: {**old_files.get(p, {}), "id": tip_ids[p]} for p in paths}
        new_validators = {"commit": tip, "files": files}
        if tip_ids == old_ids:
            return Check((), new_validators, requests=1)
        base = None
        if old_commit and mirror.has_commit(old_commit) and mirror.is_ancestor(old_commit, tip):
            base = old_commit
        elif old_commit:
            log.warning("%s: branch %s was rewritten (%s is no longer an ancestor of %s); taking its tip",
                        src.name, src.branch, old_commit[:10], tip[:10])
        commits = mirror.commits_between(base, tip, paths)
        changed = _versions(mirror, commits, paths, old_ids if base else {}, src.name)
        if not changed or changed[-1][1] != tip_ids:  # defensive: the tip's files are what we end on
            changed.append((mirror.commits_between(None, tip, ())[0], tip_ids))
        changed = _within_size(mirror, changed, max_size, src.name)
        needed = sorted({oid for _, ids in changed for oid in ids.values() if oid})
        blobs = dict(zip(needed, mirror.read(needed), strict=True))
    except GitFetchError as e:
        raise SourceError(str(e), 1) from e
    versions = tuple(
        SourceVersion(
            version=c.sha, at=c.date, final=i == len(changed) - 1,
            files=tuple(FileVersion(p, oid, blobs[oid]) for p in paths if (oid := ids[p])),
        )
        for i, (c, ids) in enumerate(changed)
    )
    history = ()
    if old_commit is None:  # the first poll: the year before teaches the clock at once (issue #25)
        try:
            history = tuple((c.sha, c.date) for c in mirror.year_before(tip, paths) if c.sha != changed[-1][0].sha)
        except GitFetchError as e:
            log.warning("%s: the commit dates before the first poll could not be read (%s); the clock is learned "
                        "from the commits polled", src.name, e)
    return Check(versions, new_validators, requests=1, bytes_read=sum(len(b) for b in blobs.values()),
                 history=history)
