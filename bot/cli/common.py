"""What every command module shares: loading the config, reading files, parsing dates and times."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import click

from bot.channels import NAMES, load_config
from bot.channels.email.settings import LOCAL_TRIAL, local_trial
from bot.config import Config, ConfigError
from bot.ops import logs
from bot.store import Store

log = logging.getLogger(__name__)


NOW_ENV = "PAPERBOT_NOW"  # for tests: the clock of `run`, `publish`, `approve` starts at this instant


def clock() -> Callable[[], datetime]:
    """The wall clock; with $PAPERBOT_NOW (an ISO datetime, meant for tests of send windows and the like) a clock
    that starts there and runs on at the real pace."""
    start = os.environ.get(NOW_ENV, "").strip()
    if not start:
        return lambda: datetime.now(UTC)
    try:
        t = datetime.fromisoformat(start)
    except ValueError as e:
        raise click.ClickException(f"${NOW_ENV}: {start!r} is not an ISO datetime") from e
    offset = (t if t.tzinfo else t.replace(tzinfo=UTC)) - datetime.now(UTC)
    log.warning("the clock is shifted by $%s: it is %s now", NOW_ENV, t.isoformat())
    return lambda: datetime.now(UTC) + offset


def _today(cfg: Config) -> date:
    return datetime.now(cfg.publish.timezone).date()


def _load(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj.get("config_path"))
    except ConfigError as e:
        raise click.ClickException(str(e)) from e


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise click.ClickException(f"{path}: {e.strerror or e}") from e


def _as_of(ctx: click.Context, value: str | None) -> date:
    if value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError as e:
            raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--as-of") from e
    return _today(_load(ctx))


def _parse_time(value: str, option: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} is not an ISO date or datetime", param_hint=option) from e
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@contextlib.contextmanager
def trial_marks(cfg: Config) -> Iterator[bool]:
    """In a local trial (issue #25: mail server and web app on this machine), say so once, and mark every log
    line about sending with it while inside; otherwise nothing. Yields whether it is one."""
    if not local_trial(cfg):
        yield False
        return
    with logs.marked(LOCAL_TRIAL, others=tuple(n for n in NAMES if n != "email")):
        logging.getLogger("bot.publish").warning(
            "mail goes to the server on this machine (%s), links point at %s: nothing reaches anyone else",
            cfg.email.smtp_url, cfg.web.base_url)
        yield True


def check_state_folder(cfg: Config) -> None:
    """Before a command writes (issue #25, finding 7): with no config file found and no state database, refuse
    rather than start a throwaway state folder in whatever directory this is; with a config, say so when a new
    state folder is started."""
    if cfg.db_path.exists():
        return
    if cfg.path is None:
        raise click.ClickException(
            f"no config file here (./paperbot.toml, $PAPERBOT_CONFIG or --config) and no state database at "
            f"{cfg.db_path}: not starting a new state folder in {Path.cwd()}; run this where your paperbot.toml "
            "is, pass --config FILE, or write one with `paperbot init`")
    click.echo(f"note: starting a new state folder at {cfg.state_dir} (from {cfg.path})", err=True)


def writing_store(cfg: Config) -> Store:
    """The state database for a command that writes, after `check_state_folder`."""
    check_state_folder(cfg)
    return Store.open(cfg.db_path)
