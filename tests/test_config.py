"""The config file: lookup order, durations, relative paths, and errors naming the file and the key."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.channels import load_config
from bot.cli import cli
from bot.config import DEFAULT_TOML, ConfigError, HealthSettings, parse_duration


@pytest.mark.parametrize("text,delta", [("30s", timedelta(seconds=30)), ("30m", timedelta(minutes=30)),
                                        ("2h", timedelta(hours=2)), ("1d", timedelta(days=1))])
def test_durations(text, delta):
    assert parse_duration(text) == delta


@pytest.mark.parametrize("bad", ["2", "1.5h", "h", "2 hours", "-1h", 30, None])
def test_bad_durations(bad):
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration(bad, "publish.settle")


def write(tmp_path: Path, text: str, name: str = "paperbot.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAPERBOT_CONFIG", raising=False)
    cfg = load_config()
    assert cfg.path is None
    assert cfg.publish.settle == timedelta(hours=2) and cfg.publish.max_wait == timedelta(hours=48)
    assert cfg.publish.backfill == 1 and cfg.publish.late_max_wait == timedelta(days=7)
    (src,) = cfg.sources
    assert (src.kind, src.location, src.paths) == ("github", "dair-ai/ML-Papers-of-the-Week", ("README.md",))


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = write(tmp_path, 'state_dir = "local"\n')
    env = write(tmp_path, 'state_dir = "env"\n', "env.toml")
    explicit = write(tmp_path, 'state_dir = "explicit"\n', "explicit.toml")
    monkeypatch.setenv("PAPERBOT_CONFIG", str(env))
    assert load_config(explicit).state_dir.name == "explicit"
    assert load_config().state_dir.name == "env"
    monkeypatch.delenv("PAPERBOT_CONFIG")
    assert load_config().state_dir == local.parent.resolve() / "local"


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    p = write(conf_dir, 'state_dir = "data"\n[[sources]]\nname = "local"\ngit = "repos/digest"\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_config(p)
    assert cfg.state_dir == (conf_dir / "data").resolve()
    assert cfg.sources[0].location == str((conf_dir / "repos/digest").resolve())


def test_a_full_source_and_path_list(tmp_path):
    p = write(tmp_path, """
timezone = "Europe/Berlin"
[publish]
settle = "30m"
max_wait = "1d"
backfill = 0
[[sources]]
name = "yearly"
github = "someone/papers"
path = ["README.md", "2026.md"]
branch = "trunk"
format = "digest"
every = "2h"
""")
    cfg = load_config(p)
    s = cfg.sources[0]
    assert s.paths == ("README.md", "2026.md") and s.branch == "trunk" and s.every == timedelta(hours=2)
    assert cfg.publish.timezone.key == "Europe/Berlin" and cfg.publish.backfill == 0


@pytest.mark.parametrize("text,words", [
    ("bogus = 1\n", ["paperbot.toml", "bogus"]),
    ("[publish]\nsettle = '2 hours'\n", ["paperbot.toml", "publish.settle", "not a duration"]),
    ("[publish]\nbackfil = 1\n", ["[publish]", "backfil"]),
    ("timezone = 'Mars/Olympus'\n", ["timezone", "Mars/Olympus"]),
    ("[[sources]]\nname = 'a'\n", ["sources[0]", "exactly one of"]),
    ("[[sources]]\nname = 'a'\ngithub = 'x/y'\nurl = 'https://e.org'\n", ["sources[0]", "exactly one of"]),
    ("[[sources]]\nname = 'a'\ngithub = 'not a repo'\n", ["sources[0].github", "owner/repo"]),
    ("[[sources]]\nname = 'a'\nfeed = 'ftp://x'\n", ["sources[0].feed", "http"]),
    ("[[sources]]\nname = 'a'\ngithub = 'x/y'\nformat = 'html'\n", ["sources[0].format"]),
    ("[[sources]]\nname = 'a'\ngithub = 'x/y'\nevery = 5\n", ["sources[0].every"]),
    ("[[sources]]\nname = 'a'\ngithub = 'x/y'\n[[sources]]\nname = 'a'\ngithub = 'x/z'\n", ["sources[1].name", "used"]),
    ("[email]\nsmtp_url = 'smtp://u:secret@h:587'\n", ["email.smtp_url", "PAPERBOT_SMTP_PASSWORD"]),
    ("state_dir = [\n", ["paperbot.toml", "not valid TOML"]),
    ("[[sources]]\nname = 'a'\ngithub = 'x/y'\ntimezone = 'Mars/Olympus'\n", ["sources[0].timezone", "Mars"]),
    ("[[sources]]\nname = 'a'\ngithub = 'x/y'\nexpect_papers = -1\n", ["sources[0].expect_papers", "0 to"]),
    ("[[sources]]\nname = 'a'\ngithub = 'x/y'\nexpect_papers = '10'\n", ["sources[0].expect_papers"]),
    ("[publish]\nwait_for_papers = '2 days'\n", ["publish.wait_for_papers", "not a duration"]),
])
def test_errors_name_the_file_and_the_key(tmp_path, text, words):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    for w in words:
        assert w in str(e.value)
    assert "secret" not in str(e.value)


def test_cli_reports_config_errors_without_a_traceback(tmp_path):
    p = write(tmp_path, "bogus = 1\n")
    result = CliRunner().invoke(cli, ["--config", str(p), "weeks"])
    assert result.exit_code == 1
    assert "bogus" in result.output and "Traceback" not in result.output


SRC = "[[sources]]\nname = 'a'\ngithub = 'x/y'\n"


@pytest.mark.parametrize("text,words", [
    # durations: each key has a range, so a slip (an extra digit, a zero) is an error, not an overflow or a loop
    ("[publish]\nsettle = '99999999999d'\n", ["publish.settle", "out of range", "0s to 3650d"]),
    ("[publish]\nmax_wait = '3651d'\n", ["publish.max_wait", "out of range", "0s to 3650d"]),
    ("[publish]\nmax_wait = '" + "9" * 5000 + "h'\n", ["publish.max_wait", "out of range"]),
    (SRC + "every = '0s'\n", ["sources[0].every", "out of range", "1s to 30d"]),
    (SRC + "every = '31d'\n", ["sources[0].every", "out of range", "1s to 30d"]),
    ("[publish]\nbackfill = 10001\n", ["publish.backfill", "0 to 10000"]),
    # issue #10: how long late papers wait for the next edition before they go out alone
    ("[publish]\nlate_max_wait = '366d'\n", ["publish.late_max_wait", "out of range", "0s to 365d"]),
    ("[publish]\nlate_max_wait = 'soon'\n", ["publish.late_max_wait"]),
    # numbers: finite and bounded (TOML has nan and inf)
    ("[email]\nrate = nan\n", ["email.rate", "0 to 10000"]),
    ("[email]\nrate = inf\n", ["email.rate", "0 to 10000"]),
    ("[email]\nrate = -1\n", ["email.rate", "0 to 10000"]),
    ("[email]\nconnections = 0\n", ["email.connections", "1 to 64"]),
    ("[email]\nbatch = 0\n", ["email.batch", "1 to 10000"]),  # issue #27
    # ports: 1 to 65535 wherever one can be written
    ("[web]\nlisten = '127.0.0.1:99999'\n", ["web.listen", "99999", "0 to 65535"]),
    ("[web]\nlisten = '127.0.0.1:65536'\n", ["web.listen", "0 to 65535"]),
    ("[web]\nbase_url = 'https://news.example.org:70000/'\n", ["web.base_url", "1 to 65535"]),
    ("[email]\nsmtp_url = 'smtp://mail.example.org:99999'\n", ["email.smtp_url", "1 to 65535"]),
    ("[github]\nbase_url = 'http://127.0.0.1:0'\n", ["github.base_url", "1 to 65535"]),
    ("[[sources]]\nname = 'a'\nurl = 'https://example.org:65536/x'\n", ["sources[0].url", "1 to 65535"]),
    # `$` where `\Z` was meant: a trailing newline passed every anchored check
    ("[[sources]]\nname = \"evil\\n\"\ngithub = 'x/y'\n", ["sources[0].name", "letters, digits"]),
    ("[[sources]]\nname = '" + "n" * 65 + "'\ngithub = 'x/y'\n", ["sources[0].name", "1 to 64"]),
    ("[[sources]]\nname = 'a'\ngithub = \"x/y\\n\"\n", ["sources[0].github"]),
    ("[web]\nlisten = \"127.0.0.1:8080\\n\"\n", ["web.listen", "host:port"]),
    ("[web]\nbase_url = \"https://news.example.org\\n\"\n", ["web.base_url", "http(s) URL"]),
    ("[email]\nsmtp_url = \"smtp://mail.example.org:25\\n\"\n", ["email.smtp_url"]),
    # other values that reached a traceback or a broken header, log line or command later
    ("[github]\nbase_url = 5\n", ["github.base_url", "http(s) URL"]),
    ("timezone = 'America'\n", ["timezone", "America"]),
    ("state_dir = \"state\\u0000\"\n", ["state_dir", "control character"]),
    ("[email]\nsubject = \"Hi\\nBcc: x@example.org\"\n", ["email.subject", "line break"]),
    (SRC + "path = \"README.md\\nx\"\n", ["sources[0].path", "line break"]),
    (SRC + "branch = '--upload-pack=x'\n", ["sources[0].branch"]),
    ("[[sources]]\nname = 'a'\ngit = '--upload-pack=touch x'\n", ["sources[0].git", "'-'"]),
    ("[[sources]]\nname = 'Lab'\ngit = 'x'\n[[sources]]\nname = 'lab'\ngit = 'y'\n", ["sources[1].name", "used"]),
])
def test_out_of_range_and_unsafe_values_name_the_key(tmp_path, text, words):
    """issue #8: every duration, number and port is range-checked and every name anchored with fullmatch;
    the error names the file, the key and what is allowed."""
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value)
    for w in words:
        assert w in str(e.value)
    assert len(str(e.value)) < 300 and "\n" not in str(e.value)


@pytest.mark.parametrize("text", [
    "[publish]\nsettle = '0s'\nmax_wait = '3650d'\nbackfill = 0\n",
    "[publish]\nlate_max_wait = '0s'\n", "[publish]\nlate_max_wait = '365d'\n",
    SRC + "every = '1s'\n", SRC + "every = '30d'\n",
    "[email]\nrate = 0.5\nconnections = 64\nsmtp_url = 'smtps://mail.example.org:465'\n",
    "[web]\nlisten = '[::1]:65535'\nbase_url = 'https://news.example.org:8443/papers'\n",
    "[web]\nlisten = ':1'\n", "[web]\nlisten = '127.0.0.1:0'\n",
])
def test_values_at_the_edges_of_their_ranges_are_accepted(tmp_path, text):
    load_config(write(tmp_path, text))


@pytest.mark.parametrize("text", ["[publish]\nsettle = '99999999999d'\n", SRC + "every = '0s'\n",
                                  "[email]\nrate = nan\n", "[web]\nlisten = '127.0.0.1:99999'\n",
                                  "[[sources]]\nname = \"evil\\n\"\ngithub = 'x/y'\n"])
def test_the_cli_reports_a_bad_value_in_one_line_and_exits_1(tmp_path, text):
    """issue #8: `settle = "99999999999d"` ended in an OverflowError traceback; now every bad value is one
    line on stderr naming the key, and exit status 1 (the real command, in a subprocess)."""
    p = write(tmp_path, text)
    env = {k: v for k, v in os.environ.items() if k != "PAPERBOT_CONFIG"}
    proc = subprocess.run([sys.executable, "-m", "bot", "--config", str(p), "weeks"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {p}: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_init_writes_a_commented_config_that_loads(tmp_path):
    target = tmp_path / "paperbot.toml"
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(target)]).exit_code == 0
    assert "#" in target.read_text() and tomllib.loads(target.read_text())
    assert load_config(target).sources[0].name == "dair-ai"
    again = runner.invoke(cli, ["init", str(target)])
    assert again.exit_code != 0 and "exists" in again.output
    assert target.read_text() == DEFAULT_TOML


@pytest.mark.parametrize("value, ok", [("'5s'", 5.0), ("'0s'", None), ("'2h'", None), ("10", None)])
def test_web_header_timeout(tmp_path, value, ok):
    """issue #8: the web app's header-read timeout, [web] header_timeout, from 1s to 1h."""
    p = write(tmp_path, f"[web]\nheader_timeout = {value}\n")
    if ok is not None:
        assert load_config(p).web.header_timeout == ok
        return
    with pytest.raises(ConfigError, match=r"web\.header_timeout"):
        load_config(p)


def test_fetch_limits_parse_with_units_and_default_to_30s_and_50mib(tmp_path):
    """issue #8: `[fetch] timeout` (one deadline per HTTP attempt) and `max_size` (per file, HTTP and git)."""
    assert (load_config(write(tmp_path, "")).fetch.timeout, load_config(write(tmp_path, "")).fetch.max_size) == (
        30.0, 50 * 2**20)
    for size, n in (('"512KiB"', 512 * 2**10), ('"2 MiB"', 2 * 2**20), ('"1GiB"', 2**30), ("4096", 4096)):
        cfg = load_config(write(tmp_path, f'[fetch]\ntimeout = "2m"\nmax_size = {size}\n'))
        assert (cfg.fetch.timeout, cfg.fetch.max_size) == (120.0, n)
    assert load_config(write(tmp_path, DEFAULT_TOML)).fetch == load_config(write(tmp_path, "")).fetch


@pytest.mark.parametrize("text,words", [
    ('[fetch]\ntimeout = "0s"\n', ["fetch.timeout", "'0s'", "from 1s to 1h"]),
    ('[fetch]\ntimeout = "2h"\n', ["fetch.timeout", "from 1s to 1h"]),
    ("[fetch]\ntimeout = 30\n", ["fetch.timeout", "not a duration"]),
    ('[fetch]\nmax_size = "50MB"\n', ["fetch.max_size", "'50MB'", "from 1KiB to 1GiB"]),
    ("[fetch]\nmax_size = 100\n", ["fetch.max_size", "100", "from 1KiB to 1GiB"]),
    ('[fetch]\nmax_size = "2GiB"\n', ["fetch.max_size", "from 1KiB to 1GiB"]),
    ("[fetch]\nmax_size = true\n", ["fetch.max_size"]),
    ("[fetch]\nretries = 3\n", ["[fetch]", "retries", "max_size, timeout"]),
    ("fetch = 3\n", ["fetch", "must be a table"]),
])
def test_fetch_limits_out_of_range_are_errors_naming_the_key(tmp_path, text, words):
    """issue #8: every new key is range-checked, with an error that names the file and the key."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    for w in ["paperbot.toml", *words]:
        assert w in str(e.value), str(e.value)


def test_a_sources_clock_and_size_settings(tmp_path):
    """issue #10: a source's own `timezone` and `expect_papers`; `[publish] wait_for_papers` (default 48h)."""
    p = write(tmp_path, """
[publish]
wait_for_papers = "0s"
[[sources]]
name = "ny"
github = "x/y"
timezone = "America/New_York"
expect_papers = 10
[[sources]]
name = "plain"
github = "x/z"
""")
    cfg = load_config(p)
    ny, plain = cfg.sources
    assert (ny.timezone.key, ny.expect_papers) == ("America/New_York", 10)
    assert (plain.timezone, plain.expect_papers) == (None, None)
    assert cfg.publish.wait_for_papers == timedelta(0)
    assert load_config(write(tmp_path, "", "empty.toml")).publish.wait_for_papers == timedelta(hours=48)


def test_init_writes_the_default_sources_timezone_and_says_why(tmp_path):
    """issue #10: the default source (github, no commit dates) is kept in New York: `init` says so."""
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "paperbot.toml")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "paperbot.toml").read_text(encoding="utf-8")
    assert 'timezone = "America/New_York"' in text and "US Eastern" in text
    (src,) = load_config(tmp_path / "paperbot.toml").sources
    assert src.timezone.key == "America/New_York"


@pytest.mark.parametrize("text, words", [
    ('[web]\nconfirm_ttl = "0s"\n', ["web.confirm_ttl"]),
    ('[web]\nconfirm_ttl = "9999d"\n', ["web.confirm_ttl"]),
    ('[web]\ntrusted_proxies = "10.0.0.1"\n', ["web.trusted_proxies", "list"]),
    ('[web]\ntrusted_proxies = ["not-an-ip"]\n', ["web.trusted_proxies", "not-an-ip"]),
    ('[web]\nsubscribe_limit = "lots"\n', ["web.subscribe_limit"]),
    ('[web]\nsubscribe_limit = "0/10m"\n', ["web.subscribe_limit"]),
    ("[web]\nconfirm_per_day = 0\n", ["web.confirm_per_day"]),
    ("[web]\nconfirm_per_day = nan\n", ["web.confirm_per_day"]),
])
def test_reader_web_keys_out_of_range_name_the_key(tmp_path, text, words):
    """issue #13: the reader's web keys are range-checked with an error naming the file and the key."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    for w in ["paperbot.toml", *words]:
        assert w in str(e.value), str(e.value)


def test_reader_web_keys_parse(tmp_path):
    cfg = load_config(write(tmp_path, '[web]\nconfirm_ttl = "2h"\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n'
                                      'subscribe_limit = "3/1m"\nconfirm_per_day = 2\ntitle = "T"\n'))
    assert cfg.web.confirm_ttl == 7200 and cfg.web.subscribe_limit == (3, 60.0) and cfg.web.confirm_per_day == 2
    assert [str(n) for n in cfg.web.trusted_proxies] == ["10.0.0.0/8", "::1/128"]


@pytest.mark.parametrize("text, words", [
    ('[x]\nenabled = "yes"\n', ["x.enabled", "true or false"]),
    ('[x]\ntimeout = "0s"\n', ["x.timeout"]),
    ('[x]\ndaily_budget = 0\n', ["x.daily_budget", "1 to 100000"]),
    ('[x]\ndelay = "2 seconds"\n', ["x.delay", "duration"]),
    ('[x]\napi_base = "ftp://x"\n', ["x.api_base", "http(s) URL"]),
    ('[x]\nhashtags = ["machine learning"]\n', ["x.hashtags", "not a hashtag"]),
    ('[x]\nhashtags = "ML"\n', ["x.hashtags", "list"]),
    ('[x]\nhead = "{{ title "\n', ["x.head", "line 1"]),
    ('[x]\nreply = false\n', ["[x]", "reply"]),
])
def test_x_keys_name_the_key(tmp_path, text, words):
    """issue #11: every `[x]` key is checked at start-up with an error naming the file and the key."""
def test_discord_keys_parse_with_their_defaults(tmp_path):
    """issue #12: `[discord]`: on by default (a trial without credentials); ids as integers or strings of digits;
    durations with units."""
    assert load_config(write(tmp_path, "")).discord.enabled is True  # like [x]: a trial without credentials
    cfg = load_config(write(tmp_path, '[discord]\nenabled = true\napi_base = "http://127.0.0.1:9/api/v10/"\n'
                                      'timeout = "5s"\nmax_wait = "0s"\nchannel_id = "123456789012345678"\n'
                                      'role_id = 123456789012345679\nforum = true\nthread_name = "{title}"\n'
                                      'edit_on_correction = true\nintro = "New: {{ title }}"\n'))
    d = cfg.discord
    assert (d.enabled, d.api_base, d.timeout, d.max_wait) == (True, "http://127.0.0.1:9/api/v10", 5.0, 0.0)
    assert (d.channel_id, d.role_id, d.forum, d.thread_name) == (123456789012345678, 123456789012345679, True,
                                                                  "{title}")
    assert d.edit_on_correction and d.intro == "New: {{ title }}"


@pytest.mark.parametrize("text,words", [
    ("[discord]\nenabled = 1\n", ["discord.enabled", "true or false"]),
    ('[discord]\napi_base = "discord.com"\n', ["discord.api_base", "http(s) URL"]),
    ('[discord]\ntimeout = "0s"\n', ["discord.timeout", "1s to 5m"]),
    ('[discord]\nmax_wait = "10m"\n', ["discord.max_wait", "0s to 5m"]),
    ("[discord]\nchannel_id = 42\n", ["discord.channel_id", "17 to 20 digits"]),
    ('[discord]\nrole_id = "@everyone"\n', ["discord.role_id", "17 to 20 digits"]),
    ('[discord]\nthread_name = "{week}"\n', ["discord.thread_name", "unknown: {week}"]),
    ('[discord]\nintro = "{% if %}"\n', ["discord.intro", "line 1"]),
    ('[discord]\nwebhook_url = "https://discord.com/api/webhooks/1/x"\n', ["[discord]", "webhook_url"]),
])
def test_discord_keys_out_of_range_name_the_key(tmp_path, text, words):
    """issue #12: a bad `[discord]` value is one line naming the file and the key (and never a secret key:
    the webhook URL and bot token come from the environment only)."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    for w in ["paperbot.toml", *words]:
        assert w in str(e.value), str(e.value)


def test_x_keys_parse(tmp_path):
    cfg = load_config(write(tmp_path, '[x]\nenabled = false\napi_base = "http://127.0.0.1:9/"\ntimeout = "5s"\n'
                                      'daily_budget = 3\ndelay = "0s"\nreplies = false\nhead = "{{ title }}"\n'
                                      'hashtags = ["ML", "#AI"]\nextra_link = true\n'))
    x = cfg.x
    assert (x.enabled, x.api_base, x.timeout, x.daily_budget, x.delay, x.replies, x.head, x.hashtags,
            x.extra_link) == (False, "http://127.0.0.1:9", 5.0, 3, 0.0, False, "{{ title }}", ("#ML", "#AI"), True)
    assert load_config(write(tmp_path, "")).x.enabled is True


@pytest.mark.parametrize("text, words", [
    ('[health]\nmax_heartbeat_age = "0s"\n', ["health.max_heartbeat_age", "1s to 1d"]),
    ('[health]\nmax_heartbeat_age = 60\n', ["health.max_heartbeat_age", "duration"]),
    ('[health]\nmax_failing_age = "6 hours"\n', ["health.max_failing_age", "duration"]),
    ('[health]\nmax_failing_age = "400d"\n', ["health.max_failing_age", "1s to 365d"]),
    ('[health]\nheartbeat = "1m"\n', ["[health]", "heartbeat", "max_failing_age"]),
    ('health = "on"\n', ["health", "table"]),
])
def test_health_keys_name_the_key(tmp_path, text, words):
    """issue #15: `[health]` is checked at start-up with an error naming the file, the key and what is allowed."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    for w in ["paperbot.toml", *words]:
        assert w in str(e.value), str(e.value)


def test_health_keys_parse_with_their_defaults(tmp_path):
    assert load_config(write(tmp_path, "")).health == HealthSettings(120.0, 6 * 3600.0)
    cfg = load_config(write(tmp_path, '[health]\nmax_heartbeat_age = "2s"\nmax_failing_age = "1d"\n'))
    assert (cfg.health.max_heartbeat_age, cfg.health.max_failing_age) == (2.0, 86400.0)
