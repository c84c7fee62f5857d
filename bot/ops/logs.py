"""Log output: readable lines by default, one JSON object per line with `--log-format json`.

Either way every line passes through `scrub` on its way out: the values of the secret environment variables
(the SMTP password, the signing key, API tokens, webhook URLs) are replaced by `***`. paperbot never logs
them on purpose (tests/test_logs.py checks a whole poll-and-publish); this is the net under that rule, so a
library's error message quoting a URL with a token still cannot write it to the journal.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Secrets by name: the known ones, and any PAPERBOT_* variable whose name says it holds one.
SECRET_ENV = ("PAPERBOT_SMTP_PASSWORD", "PAPERBOT_SECRET_KEY", "PAPERBOT_ALERTS_DISCORD_WEBHOOK_URL")
_SECRET_NAME = re.compile(r"PAPERBOT_\w*(PASSWORD|SECRET|TOKEN|KEY|WEBHOOK\w*)")
MIN_SECRET = 6  # shorter values are not masked: they would blank out ordinary words


def secrets_in_env(env: dict[str, str] | None = None) -> list[str]:
    """The secret values set in the environment, longest first (so a value containing another goes whole)."""
    env = os.environ if env is None else env
    values = {v.strip() for k, v in env.items() if k in SECRET_ENV or _SECRET_NAME.fullmatch(k)}
    # A webhook URL's secret is its path (/api/webhooks/<id>/<token>): an HTTP library's debug line names
    # only that ("POST /api/webhooks/…"), so it is masked on its own too.
    values |= {urlsplit(v).path for v in values if "://" in v}
    return sorted((v for v in values if len(v) >= MIN_SECRET), key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


class _Scrubbing(logging.Formatter):
    def __init__(self, fmt: str | None, secrets: list[str]):
        super().__init__(fmt)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record), self.secrets)


class JsonFormatter(_Scrubbing):
    """`{"time", "level", "logger", "message"}` (and `"exception"` with a traceback), one object per line."""

    def __init__(self, secrets: list[str]):
        super().__init__(None, secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return scrub(json.dumps(entry, ensure_ascii=False), self.secrets)


def configure(level: int, fmt: str = "text") -> None:
    """Send log records to standard error in `fmt` at `level`. Like logging.basicConfig it leaves alone a
    root logger that someone else (a test harness) has already given handlers; a second call replaces only
    its own handler."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_paperbot", False)]
    if root.handlers and not ours:
        return
    for h in ours:
        root.removeHandler(h)
    secrets = secrets_in_env()
    handler = logging.StreamHandler(sys.stderr)
    handler._paperbot = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else _Scrubbing(TEXT_FORMAT, secrets))
    root.addHandler(handler)
    root.setLevel(level)


SENDING_LOGGERS = ("bot.publish", "bot.channels", "bot.daemon", "bot.web")  # whose lines are about sending


@contextmanager
def marked(prefix: str, loggers: tuple[str, ...] = SENDING_LOGGERS, others: tuple[str, ...] = ()) -> Iterator[None]:
    """While inside, every record of `loggers` (and their children) starts with `prefix: ` (issue #25: each line
    about sending in a local trial says so). A record factory, so modules imported later are marked too, and
    every handler (text, JSON, a test's capture) sees the same words; restored on the way out. A line about
    another channel (its message starting with a name in `others` and a space) is left as it is."""
    before = logging.getLogRecordFactory()

    def factory(name: str, *args: object, **kwargs: object) -> logging.LogRecord:
        record = before(name, *args, **kwargs)
        if name.startswith(loggers) and not (others and _about(record, others)):
            record.msg = f"{prefix}: {record.msg}"
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(before)


def _about(record: logging.LogRecord, names: tuple[str, ...]) -> bool:
    try:
        text = record.getMessage()
    except Exception:  # a record whose arguments do not fit its message: logging reports it later
        return False
    return text.startswith(tuple(f"{n} " for n in names))
