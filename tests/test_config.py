"""The config file: lookup order, durations, relative paths, and errors naming the file and the key."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import DEFAULT_TOML, ConfigError, load_config, parse_duration


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
    assert cfg.publish.backfill == 1
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


def test_init_writes_a_commented_config_that_loads(tmp_path):
    target = tmp_path / "paperbot.toml"
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(target)]).exit_code == 0
    assert "#" in target.read_text() and tomllib.loads(target.read_text())
    assert load_config(target).sources[0].name == "dair-ai"
    again = runner.invoke(cli, ["init", str(target)])
    assert again.exit_code != 0 and "exists" in again.output
    assert target.read_text() == DEFAULT_TOML


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
