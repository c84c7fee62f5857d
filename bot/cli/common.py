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


def clock(cfg: Config | None = None) -> Callable[[], datetime]:
    """The wall clock; with $PAPERBOT_NOW (an ISO datetime, meant for tests of send windows and the like) a clock
    that starts there and runs on at the real pace. With `cfg` the command writes: a shifted clock is refused on a
    state folder holding real sends (`guard_shifted_clock`)."""
    start = os.environ.get(NOW_ENV, "").strip()
    if not start:
        if cfg is not None:
            refuse_real_on_shifted(cfg)
        return lambda: datetime.now(UTC)
    try:
        t = datetime.fromisoformat(start)
    except ValueError as e:
        raise click.ClickException(f"${NOW_ENV}: {start!r} is not an ISO datetime") from e
    if cfg is not None:
        guard_shifted_clock(cfg, f"${NOW_ENV}", t)
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
    log.warning("starting a new state folder at %s (from %s)", cfg.state_dir, cfg.path)


def writing_store(cfg: Config) -> Store:
    """The state database for a command that writes, after `check_state_folder`."""
    check_state_folder(cfg)
    return Store.open(cfg.db_path)


def guard_shifted_clock(cfg: Config, how: str, to: datetime) -> None:
    """Before a command writes under a shifted clock (issue #25, finding 12): refused on a state folder that holds
    real sends (what it wrote would be taken as real for good); a new one, or one that only ever held trials or was
    made under a shifted clock, is a throwaway, and is marked as written under a shifted clock."""
    check_state_folder(cfg)
    store = Store.open(cfg.db_path)
    try:
        sent = store.db.execute("SELECT count(*) FROM deliveries WHERE state = 'sent'").fetchone()[0]
        marked = store.db.execute("SELECT count(*) FROM shifted_clock").fetchone()[0]
        if sent and not marked:
            raise click.ClickException(
                f"{how}: the state folder {cfg.state_dir} holds real sends ({sent} sent), and times written under a "
                "shifted clock would be taken as real there for good; try it on a throwaway state folder (a copy "
                "of the config with another state_dir)")
        with store.atomic():
            store.db.execute("INSERT INTO shifted_clock (real_at, shifted_to, command) VALUES (?, ?, ?)",
                             [datetime.now(UTC).isoformat(), to.isoformat(), how])
    finally:
        store.close()


def refuse_real_on_shifted(cfg: Config) -> None:
    """A state folder once written under a shifted clock holds times that are not real: it never sends for real
    (a live channel other than a local trial) under the real clock (issue #25, finding 12)."""
    if not cfg.db_path.exists() or not cfg.email.smtp_url or local_trial(cfg):
        return
    store = Store.open(cfg.db_path)
    try:
        row = store.db.execute("SELECT min(real_at), count(*) FROM shifted_clock").fetchone()
    finally:
        store.close()
    if row[1]:
        raise click.ClickException(
            f"the state folder {cfg.state_dir} was written under a shifted clock ({NOW_ENV} or --now, first on "
            f"{row[0][:16].replace('T', ' ')} UTC): its times are not real, so it sends nothing for real; use a new "
            "state folder (another state_dir) to go live")
