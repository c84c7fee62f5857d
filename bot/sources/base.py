"""What checking a source yields, whatever its kind: the versions that arrived since the last poll.

A checker (check_git, check_http) only fetches: it compares cheap identities (blob ids, ETags, content
hashes) with the validators stored on the source and returns the raw bytes of what changed. Parsing,
validating and recording are the poll's job (poll.py), so every kind is judged by the same rules.

Validators, stored as JSON on the source row:
    {"commit": "<sha>" (git only),
     "files": {"<path or redacted URL>": {"id": "<blob id or sha256>", "etag": ..., "last_modified": ...,
                                          "content_type": ..., "url": "<final URL, no credentials or query>",
                                          "weeks": <weeks it parsed to>}}}
Nothing secret is ever stored here: an HTTP file is known by its URL as `fetch_http.redact` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.config import SourceConfig


class SourceError(Exception):
    """Checking a source failed; the poll records the message on the source and tries again next time."""

    def __init__(self, message: str, requests: int = 0, bytes_read: int = 0):
        super().__init__(message)
        self.requests = requests
        self.bytes_read = bytes_read


@dataclass(frozen=True)
class FileVersion:
    name: str  # the path in the repository, or the URL as configured, redacted
    content_id: str  # git blob id, or sha256 of the body
    data: bytes
    url: str = ""  # where it was finally fetched from, without credentials or query (feeds resolve against it)
    content_type: str = ""


@dataclass(frozen=True)
class SourceVersion:
    version: str  # commit id, or a hash of the files' content ids
    at: datetime  # when it changed: the commit date, or the fetch time
    files: tuple[FileVersion, ...]  # every file of the source, changed or not, in configured order
    final: bool = True  # the newest version of this poll: if it is unusable, the poll fails


@dataclass(frozen=True)
class Check:
    versions: tuple[SourceVersion, ...]  # oldest first; empty when nothing changed
    validators: dict = field(default_factory=dict)  # to store if the poll succeeds
    requests: int = 0
    bytes_read: int = 0
    history: tuple = ()  # git, first poll: (sha, date) of the year before the tip, for the clock (issue #25)


def repo_paths(src: SourceConfig) -> tuple[str, ...]:
    """The configured paths as a repository names them: no leading `./` or `/`."""
    out = []
    for p in src.paths:
        while p.startswith("./"):
            p = p[2:]
        out.append(p.lstrip("/"))
    return tuple(out)
