"""`paperbot mailcatcher`: a mail server for trying paperbot on one machine (issue #26), with no account anywhere.

It accepts every message on a local SMTP port (aiosmtpd), keeps each one as a file (`0001.eml`, ...) in its
folder, prints a line per message, and shows them on a small local page: the list, newest first, and each
message as its reader would see it. Nothing is relayed. The messages are paperbot's own, but they are still
shown as untrusted: headers are escaped, and a message's HTML is served under a Content-Security-Policy that
allows no script, no fetch and no form of its own (its links still open, which is what a confirmation needs).
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import re
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

NAME = re.compile(r"^(\d{4,})\.eml$")
MESSAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
               "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation")
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'"
STYLE = ("body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
         "td,th{padding:.3rem .6rem;text-align:left;border-bottom:1px solid #ddd}pre{white-space:pre-wrap}")


class Mailbox:
    """The folder of caught messages: `0001.eml`, `0002.eml`, ... in the order they came."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def numbers(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := NAME.match(p.name)))

    def store(self, data: bytes) -> int:
        """Writes one message whole (a temporary file renamed into place); returns its number."""
        number = max(self.numbers(), default=0) + 1
        tmp = self.folder / f".{number:04d}.eml.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.folder / f"{number:04d}.eml")
        return number

    def raw(self, number: int) -> bytes | None:
        """Message `number` as it came, or None."""
        path = self.folder / f"{number:04d}.eml"
        return path.read_bytes() if path.is_file() else None

    def read(self, number: int) -> EmailMessage | None:
        data = self.raw(number)
        return None if data is None else BytesParser(policy=policy.default).parsebytes(data)  # type: ignore[return-value]


class Catcher:
    """aiosmtpd's handler: every message is kept, whoever it is for; `on_message` hears of each."""

    def __init__(self, mailbox: Mailbox, on_message: Callable[[int, EmailMessage], None]) -> None:
        self.mailbox, self.on_message = mailbox, on_message

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd)
        data = envelope.original_content or envelope.content
        raw = data if isinstance(data, bytes) else str(data).encode("utf-8")
        number = self.mailbox.store(raw)
        message = self.mailbox.read(number)
        if message is not None:
            self.on_message(number, message)
        return "250 OK: caught"


def _header(message: EmailMessage, name: str) -> str:
    return html.escape(str(message.get(name, "")))


def _with_bar(body: str, message: EmailMessage) -> str:
    """The message's HTML with a bar on top: the way back to the list, and who sent what to whom (escaped)."""
    bar = ('<div style="font:14px/1.5 system-ui,sans-serif;background:#fff8dc;color:#222;padding:.5rem 1rem;'
           'border-bottom:1px solid #ccc"><a href="/" style="color:#0645ad">&larr; all mail</a> &middot; '
           + " &middot; ".join(f"<b>{h}:</b> {_header(message, h)}" for h in ("From", "To", "Subject")) + "</div>")
    at = re.search(r"<body[^>]*>", body, re.IGNORECASE)
    return body[:at.end()] + bar + body[at.end():] if at else bar + body


def _page(title: str, body: str, refresh: bool = False) -> web.Response:
    meta = '<meta http-equiv="refresh" content="3">' if refresh else ""
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>")
    return web.Response(text=text, content_type="text/html", headers={"Content-Security-Policy": PAGE_CSP})


def make_app(mailbox: Mailbox) -> web.Application:
    """The page of caught messages: `/` lists them (it reloads itself every 3 s), `/m/N` shows message N as its
    reader would see it (its HTML part, else its text), `/m/N.eml` gives it as it came."""

    async def index(request: web.Request) -> web.Response:
        rows = []
        for n in reversed(mailbox.numbers()):
            m = mailbox.read(n)
            if m is None:
                continue
            rows.append(f'<tr><td><a href="/m/{n}">{n}</a></td><td>{_header(m, "Date")}</td>'
                        f'<td>{_header(m, "To")}</td><td><a href="/m/{n}">{_header(m, "Subject") or "(no subject)"}'
                        "</a></td></tr>")
        table = ("<table><tr><th>#</th><th>date</th><th>to</th><th>subject</th></tr>" + "".join(rows) + "</table>"
                 if rows else "<p>No mail yet. This page reloads itself.</p>")
        return _page("paperbot mail catcher", f"<h1>Mail caught on this machine</h1>{table}", refresh=True)

    async def show(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raw = name.endswith(".eml")
        number = int(name[:-4] if raw else name)
        m = mailbox.read(number)
        if m is None:
            raise web.HTTPNotFound(text=f"no message {number}")
        if raw:
            return web.Response(body=mailbox.raw(number), content_type="text/plain", charset="utf-8",
                                headers={"Content-Security-Policy": PAGE_CSP})
        part = m.get_body(preferencelist=("html", "plain"))
        if part is not None and part.get_content_type() == "text/html":
            return web.Response(text=_with_bar(part.get_content(), m), content_type="text/html",
                                headers={"Content-Security-Policy": MESSAGE_CSP})
        text = part.get_content() if part is not None else ""
        head = "".join(f"<div><b>{h}:</b> {_header(m, h)}</div>" for h in ("From", "To", "Subject", "Date"))
        return _page(str(m.get("Subject", "")), f'<p><a href="/">all mail</a></p>{head}<pre>{html.escape(text)}</pre>')

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get(r"/m/{name:\d+(\.eml)?}", show)
    return app


async def serve(mailbox: Mailbox, smtp: tuple[str, int], page: tuple[str, int],
                on_message: Callable[[int, EmailMessage], None],
                on_ready: Callable[[tuple[str, int], tuple[str, int]], None]) -> None:
    """Runs the SMTP server and the page until cancelled; `on_ready` gets the addresses really bound (port 0:
    any free one)."""
    loop = asyncio.get_running_loop()
    catcher = Catcher(mailbox, on_message)
    server = await loop.create_server(lambda: SMTP(catcher, hostname="mailcatcher.localhost", enable_SMTPUTF8=True),
                                      smtp[0], smtp[1])
    runner = web.AppRunner(make_app(mailbox), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, page[0], page[1])
    try:
        await site.start()
        smtp_bound = server.sockets[0].getsockname()[:2]
        page_bound = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
        on_ready((smtp_bound[0], smtp_bound[1]), (page_bound[0], page_bound[1]))
        await asyncio.Event().wait()
    finally:
        server.close()
        await runner.cleanup()
