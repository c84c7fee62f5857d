"""The SMTP servers bench/email_send.py sends to: Postfix's `smtp-sink` when installed, else aiosmtpd.

`smtp-sink` (Debian package `postfix`; the Postfix service itself is never started) is fast enough that the
client is the bottleneck, so a ratio against raw smtplib measures paperbot. aiosmtpd takes about 250 messages a
second, slower than either client: a ratio measured against it says how fast aiosmtpd is, not paperbot.
Both count messages; with `recipients` the sink also counts what each `reader<N>@...` got (the kill run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

_MESG = re.compile(rb"mesg=(\d+)")
_EVENT = re.compile(rb"rcpt TO:<reader(\d+)@|smtp-sink: \.(?=[\r\n])")


class SmtpSink:
    """`smtp-sink` on 127.0.0.1: `-c` prints a running count of messages; with `recipients` (`-v`, one
    connection at a time) each finished DATA is credited to the last RCPT seen, in a bytearray of counts."""

    name = "Postfix smtp-sink"
    comparable = True

    def __init__(self, port: int, recipients: int = 0):
        self.port = port
        self.count = 0
        self.got = bytearray(recipients)
        cmd = [self.path(), "-c", *(["-v"] if recipients else []), "-t", "600"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        self.proc = subprocess.Popen([*cmd, f"127.0.0.1:{port}", "256"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _wait_port(port, self.proc)

    @staticmethod
    def path() -> str | None:
        return shutil.which("smtp-sink") or next((p for p in ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/"
                                                              "smtp-sink") if Path(p).exists()), None)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        last, rest = -1, b""
        while chunk := self.proc.stdout.read1(1 << 16):
            data = rest + chunk
            cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
            data, rest = data[:cut], data[cut:]
            if not self.got:
                if found := _MESG.findall(data):
                    self.count = int(found[-1])
                continue
            for m in _EVENT.finditer(data):  # RCPT and end of DATA, in the order the one connection sent them
                if m.group(1) is not None:
                    last = int(m.group(1))
                elif last >= 0:
                    if self.got[last] < 255:
                        self.got[last] += 1
                    self.count += 1
                    last = -1

    def received(self, expect: int | None = None, wait: float = 10.0) -> int:
        """Messages taken so far; with `expect`, waits (up to `wait` s) for the counter's line to arrive."""
        deadline = time.monotonic() + wait
        while expect is not None and self.count < expect and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class AiosmtpdSink:
    """The fallback: aiosmtpd in a child process, counting. No per-recipient counts."""

    name = "aiosmtpd (fallback: smtp-sink not installed)"
    comparable = False

    def __init__(self, port: int, recipients: int = 0):
        if recipients:
            raise SystemExit("the kill run needs smtp-sink (apt-get install postfix): aiosmtpd is too slow to "
                             "count a large run's recipients")
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-c", _AIOSMTPD, str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout and self.proc.stdout.readline().strip() == "ready"

    def received(self, expect: int | None = None, wait: float = 10.0) -> int:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(10)


_AIOSMTPD = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"
ctl = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
ctl.start()
print("ready", flush=True)
for _ in sys.stdin:
    print(Count.n, flush=True)
ctl.stop()
"""


def _wait_port(port: int, proc: subprocess.Popen) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"smtp-sink exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"smtp-sink did not listen on 127.0.0.1:{port}")


def start_sink(port: int, recipients: int = 0) -> SmtpSink | AiosmtpdSink:
    """smtp-sink when installed, else aiosmtpd (whose ratio is then not comparable: it is the bottleneck)."""
    return SmtpSink(port, recipients) if SmtpSink.path() else AiosmtpdSink(port, recipients)
