"""Reading a file's history out of a git repository, through the git command line.

One `git log` lists the commits that touched the file; one long-lived `git cat-file --batch` reads every
version, so a replay of hundreds of commits starts two processes, not hundreds.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class GitError(Exception):
    pass


@dataclass(frozen=True)
class Commit:
    sha: str
    date: datetime  # committer date, with its offset


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} in {repo}: {proc.stderr.strip() or 'failed'}")
    return proc.stdout


def file_history(repo: Path, path: str, first_parent: bool = False, rev: str = "HEAD") -> list[Commit]:
    """Commits that changed `path`, oldest first."""
    args = ["log", "--format=%H%x09%cI", "--reverse"]
    if first_parent:
        args.append("--first-parent")
    out = _git(repo, *args, rev, "--", path)
    commits = []
    for line in out.splitlines():
        sha, _, when = line.partition("\t")
        commits.append(Commit(sha, datetime.fromisoformat(when)))
    return commits


def read_blobs(repo: Path, specs: list[str]) -> Iterator[bytes | None]:
    """Contents of `rev:path` specs, in order; None where the path does not exist at that revision."""
    proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    try:
        for spec in specs:
            proc.stdin.write(spec.encode() + b"\n")
            proc.stdin.flush()
            header = proc.stdout.readline().split()
            if len(header) < 3 or header[1] != b"blob":
                yield None
                continue
            data = proc.stdout.read(int(header[2]))
            proc.stdout.read(1)  # the newline after each object
            yield data
    finally:
        proc.stdin.close()
        proc.wait()
