"""A bare mirror of a watched git repository under state_dir/git/<source>, kept current with `git fetch`.

Why a mirror and not the working copy: paperbot must only see what is committed on the followed branch, and
`git fetch` of an unchanged remote is one cheap exchange of refs. Blob ids tell whether a file changed
without reading it; only changed blobs are read (one `git cat-file --batch` for all of them).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from bot.sources.fetch_http import redact
from bot.track.gitrepo import Commit, read_blobs

log = logging.getLogger(__name__)

_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true", "LC_ALL": "C",
        "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")}


class GitFetchError(Exception):
    """git failed; the message names the command and git's own words, with credentials removed."""


MESSAGE_MAX = 600  # characters of git's message kept in an error (a poll's error is one line, stored and printed)


def git_message(stderr: str) -> str:
    """All of git's message on one line, credentials removed: its first line says what went wrong (`'/x' does
    not appear to be a git repository`), the last only how to go on (`... and the repository exists.`)."""
    lines = [" ".join(line.split()) for line in stderr.splitlines()]
    text = ""
    for line in filter(None, lines):
        sep = "; " if line.split(":", 1)[0] in ("fatal", "error", "warning", "hint", "remote") else " "
        text = f"{text}{sep}{line}" if text else line
    text = redact(text) or "failed"
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX - 1] + "…"


def ls_remote(url: str, branch: str, timeout: float = 60.0) -> str:
    """The commit id at the tip of `branch` in the repository at `url`, asked without fetching anything
    (`paperbot check`). GitFetchError says what failed, in git's words."""
    cmd = ["git", "ls-remote", "--heads", "--", url, f"refs/heads/{branch}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **_ENV},
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise GitFetchError(f"git ls-remote {redact(url)}: no answer after {timeout:g}s") from e
    if proc.returncode != 0:
        raise GitFetchError(f"git ls-remote {redact(url)}: {git_message(proc.stderr)}")
    sha = proc.stdout.split("\t", 1)[0].strip()
    if not sha:
        raise GitFetchError(f"git ls-remote {redact(url)}: branch {branch!r} not found")
    return sha


class Mirror:
    def __init__(self, path: Path, url: str, timeout: float = 300.0):
        self.path = path
        self.url = url
        self.timeout = timeout

    def _git(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["git", "-C", str(self.path), *args]
        feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout,
                                  env={**os.environ, **_ENV}, **feed)
        except subprocess.TimeoutExpired as e:
            raise GitFetchError(f"git {args[0]} {redact(self.url)}: no answer after {self.timeout:g}s") from e
        if check and proc.returncode != 0:
            raise GitFetchError(f"git {args[0]} {redact(self.url)}: {git_message(proc.stderr)}")
        return proc

    def ensure(self) -> None:
        """Create the bare mirror on first use; follow the config if the URL was changed."""
        if not (self.path / "HEAD").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", "--bare")
            self._git("remote", "add", "origin", self.url)
        elif self._git("remote", "get-url", "origin", check=False).stdout.strip() != self.url:
            self._git("remote", "set-url", "origin", self.url)

    def fetch(self, branch: str) -> str:
        """Fetch `branch` and return its tip commit id."""
        ref = f"refs/remotes/origin/{branch}"
        try:
            self._git("fetch", "--quiet", "--no-tags", "--prune", "origin", f"+refs/heads/{branch}:{ref}")
        except GitFetchError as e:
            if "couldn't find remote ref" in str(e):
                raise GitFetchError(f"git fetch {redact(self.url)}: branch {branch!r} not found") from e
            raise
        proc = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if proc.returncode != 0:
            raise GitFetchError(f"git fetch {redact(self.url)}: branch {branch!r} not found")
        return proc.stdout.strip()

    def has_commit(self, sha: str) -> bool:
        return self._git("cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0

    def is_ancestor(self, old: str, new: str) -> bool:
        return self._git("merge-base", "--is-ancestor", old, new, check=False).returncode == 0

    def commits_between(self, old: str | None, tip: str, paths: Sequence[str]) -> list[Commit]:
        """First-parent commits after `old` up to `tip` that touched any of `paths`, oldest first.

        With no `old`, just the last commit that touched them (the version a first poll starts from).
        """
        fmt = "--format=%H%x09%cI"
        if old is None:
            out = self._git("log", "-1", "--first-parent", fmt, tip, "--", *paths).stdout
        else:
            out = self._git("log", "--first-parent", "--reverse", fmt, f"{old}..{tip}", "--", *paths).stdout
        commits = []
        for line in out.splitlines():
            sha, _, when = line.partition("\t")
            commits.append(Commit(sha, datetime.fromisoformat(when)))
        return commits

    def year_before(self, tip: str, paths: Sequence[str], limit: int = 1000) -> list[Commit]:
        """The first-parent commits that touched `paths` in the year before `tip`'s last one, newest first, dated
        with their UTC offsets as the versions are: what a source's clock learns at its first poll (issue #25)."""
        fmt = "--format=%H%x09%cI"
        out = self._git("log", "--first-parent", f"--max-count={limit}", fmt, tip, "--", *paths).stdout
        commits = [Commit(sha, datetime.fromisoformat(when))
                   for sha, _, when in (line.partition("\t") for line in out.splitlines()) if when]
        if not commits:
            return []
        newest = commits[0].date
        return [c for c in commits if newest - c.date <= timedelta(days=365)]

    def blob_ids(self, commit: str, paths: Sequence[str]) -> dict[str, str | None]:
        """The blob id of each path at `commit`; None where the path is missing (or is not a file)."""
        out = self._git("ls-tree", "-z", commit, "--", *paths).stdout
        found: dict[str, str] = {}
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, _, name = entry.partition("\t")
            _mode, kind, oid = meta.split()
            if kind == "blob":
                found[name] = oid
        return {p: found.get(p) for p in paths}

    def blob_sizes(self, blob_ids: Sequence[str]) -> dict[str, int]:
        """The size in bytes of each blob, asked of git without reading any of them."""
        out = self._git("cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                        stdin="".join(f"{oid}\n" for oid in blob_ids)).stdout
        sizes = {}
        for line in out.splitlines():
            oid, kind, size = (line.split() + ["", ""])[:3]
            if kind != "blob":
                raise GitFetchError(f"git cat-file {redact(self.url)}: blob {oid} missing from the mirror")
            sizes[oid] = int(size)
        return sizes

    def read(self, blob_ids: Sequence[str]) -> list[bytes]:
        """Contents of blobs, in order."""
        out = []
        for oid, data in zip(blob_ids, read_blobs(self.path, list(blob_ids)), strict=True):
            if data is None:
                raise GitFetchError(f"git cat-file {redact(self.url)}: blob {oid} missing from the mirror")
            out.append(data)
        return out
