"""Issue #26: what the local try-out ships. `paperbot mailcatcher` keeps every message as it came and shows it as
text (a header is never markup on its page; a message's HTML runs no script); `paperbot example-digest` makes the
three whole weeks before today, each week always with the same papers, parsed without a defect."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import git

from bot.ops.example_digest import PAPERS, week_days
from bot.track.parsing import parse_document


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def catcher(tmp_path):
    smtp_port, web_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bot", "mailcatcher", "--smtp", f"127.0.0.1:{smtp_port}",
                             "--web", f"127.0.0.1:{web_port}", "--dir", str(tmp_path / "mail")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield smtp_port, f"http://127.0.0.1:{web_port}", tmp_path / "mail", proc
    proc.terminate()
    proc.wait(timeout=10)


def test_mailcatcher_keeps_each_message_as_it_came_and_shows_it_as_text(catcher):
    """#26: bytes kept whole; the list escapes a subject holding markup; the message's HTML gets a CSP with no
    script; a line per message on standard output."""
    smtp_port, page, folder, proc = catcher
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@example.org", "me@example.org", "<script>alert(1)</script> hello"
    m.set_content("plain part")
    m.add_alternative('<p>Hi <a href="http://127.0.0.1:8080/confirm/x">confirm</a></p><script>alert(2)</script>',
                      subtype="html")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:
        s.send_message(m)
    kept = sorted(folder.glob("*.eml"))
    assert [p.name for p in kept] == ["0001.eml"]
    assert b"plain part" in kept[0].read_bytes() and b"Subject: <script>alert(1)</script> hello" in kept[0].read_bytes()
    listing = urllib.request.urlopen(page + "/").read().decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hello" in listing and "<script>alert(1)" not in listing
    with urllib.request.urlopen(page + "/m/1") as r:
        csp = r.headers["Content-Security-Policy"]
        body = r.read().decode()
    assert "default-src 'none'" in csp and "script-src" not in csp and "sandbox" in csp
    assert 'href="http://127.0.0.1:8080/confirm/x"' in body and "&lt;script&gt;alert(1)" in body
    assert urllib.request.urlopen(page + "/m/1.eml").read() == kept[0].read_bytes()
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert "caught 0001: to me@example.org:" in out


def test_example_digest_is_the_three_weeks_before_today(tmp_path):
    """#26: whole Monday-to-Sunday weeks, none holding today (a Sunday included), one commit per week on its
    Sunday, and every week with the same papers in every commit."""
    for today in (date(2026, 12, 7), date(2026, 12, 13), date(2026, 12, 10)):  # a Monday, a Sunday, a Thursday
        weeks = week_days(today)
        assert all(f.weekday() == 0 and (la - f).days == 6 and la < today for f, la in weeks)
        assert (today - weeks[0][1]).days <= 7
    subprocess.run([sys.executable, "-m", "bot", "example-digest", str(tmp_path / "d")], check=True,
                   capture_output=True)
    shas = git(tmp_path / "d", "log", "--format=%H %cI").split("\n")[:-1]
    assert len(shas) == 3 and all(s.split()[1].endswith("T20:00:00+00:00") for s in shas)
    seen: dict[str, list[str]] = {}
    for line in shas:
        doc = parse_document(git(tmp_path / "d", "show", f"{line.split()[0]}:README.md").encode(), date.today())
        assert not doc.defects and all(not w.defects for w in doc.weeks)
        for w in doc.weeks:
            assert seen.setdefault(w.key, [p.title for p in w.papers]) == [p.title for p in w.papers]
    assert [t for t, _ in PAPERS[0]] == seen[max(seen)]
    refused = subprocess.run([sys.executable, "-m", "bot", "example-digest", str(tmp_path / "d")],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "not empty" in refused.stderr and Path(tmp_path / "d").is_dir()
