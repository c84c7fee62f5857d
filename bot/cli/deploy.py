"""Running a deployment: `paperbot health` (asks `GET /healthz`; the container's HEALTHCHECK) and `paperbot
backup PATH` (a consistent copy of the state folder, safe to take while the daemon runs).

Copying `paperbot.db` with `cp` while the daemon writes can catch the file between two pages of a commit, or
miss what still sits in its `-wal` file. The database is therefore copied with SQLite's online backup API in
one step, inside one read transaction: a snapshot of the last commit, which in WAL mode never blocks the
daemon's writers. The copy is checked (`PRAGMA integrity_check`) and turned into a single self-contained
file (journal mode DELETE; the daemon sets WAL again when it opens it). The rest of the folder (signing key,
unsubscribe journal, stored editions, outbox, git mirrors, HTTP caches) is copied file by file, without the
lock files, which mean nothing in a copy. Everything is written under a temporary name beside PATH and
renamed at the end, so PATH is either a whole backup or absent.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import click

from bot.cli.common import _load
from bot.config import Config
from bot.store.files import tighten

log = logging.getLogger(__name__)

DB_NAME = "paperbot.db"
SKIPPED_SUFFIXES = (".lock",)  # paperbot's own locks, SQLite's migrate lock, git's transient *.lock files
DB_FILES = {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + "-journal"}


class BackupError(Exception):
    """Why no backup was made, phrased for the operator."""


@dataclass
class BackupReport:
    path: Path
    db_bytes: int = 0
    files: int = 0  # other files copied
    bytes: int = 0  # their size
    vanished: list[str] = field(default_factory=list)  # files removed by the daemon while we copied


def _target(state_dir: Path, dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest}: already exists; give a new folder (or an empty one)")
    inside = dest.resolve()
    if inside == state_dir.resolve() or state_dir.resolve() in inside.parents:
        raise BackupError(f"{dest}: is inside the state folder {state_dir}; put the backup elsewhere")


def copy_database(db_path: Path, dest: Path) -> int:
    """A consistent copy of the SQLite database `db_path` at `dest` (a new file); returns its size in bytes."""
    if not db_path.is_file():
        raise BackupError(f"{db_path}: no database here (is state_dir right?)")
    src = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # pages=-1: all of it in one step, one read transaction, one snapshot
            dst.execute("PRAGMA journal_mode = DELETE")
            check = [r[0] for r in dst.execute("PRAGMA integrity_check")]
        finally:
            dst.close()
    except sqlite3.Error as e:
        raise BackupError(f"{db_path}: cannot copy the database: {e}") from e
    finally:
        src.close()
    if check != ["ok"]:
        raise BackupError(f"{dest}: the copy fails SQLite's integrity check: {'; '.join(check[:3])}")
    return dest.stat().st_size


def _copy_rest(state_dir: Path, into: Path, report: BackupReport) -> None:
    for root, dirs, files in os.walk(state_dir):
        here = Path(root)
        rel = here.relative_to(state_dir)
        dirs.sort()
        for name in sorted(files):
            if (rel == Path(".") and name in DB_FILES) or name.endswith(SKIPPED_SUFFIXES):
                continue
            source, target = here / name, into / rel / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                if source.is_symlink():
                    target.symlink_to(os.readlink(source))
                else:
                    shutil.copy2(source, target)  # keeps the mode: secret.key stays 0600
                    report.bytes += target.stat().st_size
            except FileNotFoundError:  # an outbox file sent, a git pack repacked, while we walked
                report.vanished.append(str(rel / name))
                continue
            report.files += 1


def backup(state_dir: Path, dest: Path, *, db_only: bool = False) -> BackupReport:
    """Copy the state folder `state_dir` (its database consistently) to the new folder `dest`."""
    _target(state_dir, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)  # subscriber addresses and the signing key: the owner's eyes only
    report = BackupReport(dest)
    try:
        report.db_bytes = copy_database(state_dir / DB_NAME, partial / DB_NAME)
        if not db_only:
            _copy_rest(state_dir, partial, report)
        tighten(partial, again=True)  # issue #24: copies keep their modes, and an old file may be 0644
        if dest.exists():
            dest.rmdir()  # empty, checked above
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _fsync_dir(dest.parent)
    if report.vanished:
        log.info("%d file(s) went away while being copied (the daemon moved on): %s", len(report.vanished),
                 ", ".join(report.vanished[:5]))
    return report


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB"


@click.command("backup")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--db-only", is_flag=True,
              help="Only the database, not the signing key, unsubscribe journal, editions, outbox and mirrors.")
@click.pass_context
def backup_cmd(ctx: click.Context, path: str, db_only: bool) -> None:
    """Copy the state folder to the new folder PATH; safe while `paperbot run` runs (no lock files copied)."""
    cfg = _load(ctx)
    try:
        report = backup(cfg.state_dir, Path(path), db_only=db_only)
    except BackupError as e:
        raise click.ClickException(str(e)) from e
    except OSError as e:
        raise click.ClickException(f"{e.filename or path}: {e.strerror or e}") from e
    rest = "" if db_only else f" and {report.files} other file(s) ({_kib(report.bytes)})"
    click.echo(f"backed up {cfg.db_path} ({_kib(report.db_bytes)}, integrity ok){rest} to {report.path}")


def health_url(cfg: Config) -> str:
    """`/healthz` on this machine at `[web] listen` (a wildcard address is asked on loopback)."""
    host, port = cfg.web.host_port
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}.get(host, host)
    return f"http://{host}:{port}/healthz"


@click.command("health")
@click.option("--url", help="The health check to ask (default: /healthz at [web] listen on this machine).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer's JSON.")
@click.pass_context
def health_cmd(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Ask the web app's GET /healthz: exit 0 if the daemon is healthy, 1 if not or if nothing answers."""
    url = url or health_url(_load(ctx))
    try:
        token = os.environ.get("PAPERBOT_HEALTH_TOKEN")  # the details, when the app is asked from afar
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise click.ClickException(f"{url}: no answer: {getattr(e, 'reason', None) or e}") from e
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if as_json:
        click.echo(json.dumps(body, indent=2))
    if not isinstance(body, dict) or "status" not in body:
        raise click.ClickException(f"{url}: answered {status} without a health report: is this paperbot?")
    problems = body.get("problems") or []
    if not as_json:
        click.echo(f"{body['status']} ({status})" + "".join(f"\n  {p}" for p in problems))
    if status != 200:
        ctx.exit(1)


COMMANDS = (backup_cmd, health_cmd)
