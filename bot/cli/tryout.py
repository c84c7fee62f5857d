"""`paperbot example-digest` and `paperbot mailcatcher`: what trying paperbot on one laptop needs (issue #26)."""

from __future__ import annotations

import asyncio
import contextlib
from email.message import EmailMessage
from pathlib import Path

import click


def _address(value: str, option: str) -> tuple[str, int]:
    """HOST:PORT (port 0 to 65535) as a pair, else a usage error naming the option."""
    host, _, port = value.strip().rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:1025)", param_hint=option)
    return host.strip("[]"), int(port)


@click.command("example-digest")
@click.argument("path", type=click.Path(file_okay=False), default="digest")
def example_digest(path: str) -> None:
    """Make a small example digest as a local git repository at PATH (default ./digest).

    Three made-up weeks, the three before this one, each committed on its Sunday evening: a `git` source
    pointing at PATH has its newest week ready at the first poll. For trying paperbot with no account.
    """
    from bot.ops import example_digest as example

    try:
        weeks = example.make(Path(path))
    except (FileExistsError, OSError) as e:
        raise click.ClickException(str(e)) from e
    first, last = weeks[0]
    click.echo(f"made {path}: a git repository with {len(weeks)} weeks, the newest {first} to {last}")


@click.command()
@click.option("--smtp", "smtp", default="127.0.0.1:1025", show_default=True, metavar="HOST:PORT",
              help="Where the mail server listens (port 0: any free one).")
@click.option("--web", "page", default="127.0.0.1:1080", show_default=True, metavar="HOST:PORT",
              help="Where the page of caught messages is served.")
@click.option("--dir", "folder", default="mailcatcher", show_default=True, type=click.Path(file_okay=False),
              help="The folder where each message is kept as NNNN.eml.")
def mailcatcher(smtp: str, page: str, folder: str) -> None:
    """Run a mail server that catches every message, for trying paperbot on this machine.

    Point `[email] smtp_url` at it (`smtp://127.0.0.1:1025`, with `starttls = false`): each message is kept
    in --dir as it came, announced on a line here, and shown at http://127.0.0.1:1080 (a list, newest first,
    and each message as its reader sees it). Nothing is relayed anywhere. Ctrl-C stops it.
    """
    from bot.ops import mailcatcher as mc

    smtp_at, page_at = _address(smtp, "--smtp"), _address(page, "--web")
    mailbox = mc.Mailbox(Path(folder))
    state: dict[str, str] = {}

    def ready(smtp_bound: tuple[str, int], page_bound: tuple[str, int]) -> None:
        state["page"] = f"http://{page_bound[0]}:{page_bound[1]}"
        click.echo(f"mail catcher: SMTP on {smtp_bound[0]}:{smtp_bound[1]}, messages kept in {folder}/, "
                   f"shown at {state['page']}; Ctrl-C stops", err=True)

    def caught(number: int, message: EmailMessage) -> None:
        click.echo(f"caught {number:04d}: to {message.get('To', '?')}: {message.get('Subject', '')}  "
                   f"{state.get('page', '')}/m/{number}")

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(mc.serve(mailbox, smtp_at, page_at, caught, ready))
    except OSError as e:
        raise click.ClickException(f"cannot listen: {e.strerror or e}") from e


COMMANDS = [example_digest, mailcatcher]
