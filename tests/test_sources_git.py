"""A real git repository as a source: commits make weeks new or edited, an idle poll reads nothing."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import commit_file, git, make_repo
from sources_support import FAST, fixture, snapshot, write_config

from bot.cli import cli
from bot.sources.poll import poll_source
from bot.store import Store

NOW = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
A, B, C = "2024-01-01..2024-01-07", "2024-01-08..2024-01-14", "2024-01-15..2024-01-21"


def _setup(tmp_path: Path, paths: str | list[str] = "README.md", **publish):
    """A repository and a config watching it; weeks stay pending unless a test asks for short gates."""
    publish = {"settle": "30d", "max_wait": "60d", **publish}
    repo = make_repo(tmp_path / "digest")
    cfg = write_config(tmp_path, [{"name": "lab", "git": str(repo), "path": paths}], **publish)
    return repo, cfg, Store.open(cfg.db_path)


def test_new_week_is_new_an_edit_is_not_and_an_idle_poll_reads_nothing(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path)
    src = cfg.source("lab")
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00", "week 1")
    first = poll_source(store, cfg, src, NOW, options=FAST)
    assert (first.changed, first.error, first.parsed) == (True, None, 1)
    assert store.week("lab", A).state == "baseline"  # there before we started watching

    added = commit_file(repo, "README.md", fixture("digest_v2.md"), "2024-01-15T10:30:00+00:00", "week 2")
    second = poll_source(store, cfg, src, NOW, options=FAST)
    assert second.new == (B,) and second.edited == () and second.pending == (B,)
    week = store.week("lab", B)
    assert week.state == "pending" and week.first_seen == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert store.versions("lab")[-1]["version"] == added

    commit_file(repo, "README.md", fixture("digest_v2_edited.md"), "2024-01-16T08:00:00+00:00", "typo")
    third = poll_source(store, cfg, src, NOW, options=FAST)
    assert third.changed and third.new == () and third.edited == (A,)
    assert store.week("lab", A).state == "baseline"

    versions = len(store.versions("lab"))
    idle = poll_source(store, cfg, src, NOW, options=FAST)
    assert (idle.changed, idle.parsed, idle.bytes_read, idle.requests, idle.error) == (False, 0, 0, 1, None)
    assert len(store.versions("lab")) == versions


def test_commits_since_the_last_poll_are_each_observed_at_their_commit_date(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path)
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    sha_b = commit_file(repo, "README.md", fixture("digest_v2.md"), "2024-01-15T10:00:00+00:00")
    commit_file(repo, "notes.txt", "not watched", "2024-01-16T10:00:00+00:00")
    sha_c = commit_file(repo, "README.md", fixture("digest_v3.md"), "2024-01-22T11:00:00+00:00")
    r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert r.new == (B, C) and r.versions == 2 and r.parsed == 2
    assert store.week("lab", B).first_seen == datetime(2024, 1, 15, 10, tzinfo=UTC)
    assert store.week("lab", C).first_seen == datetime(2024, 1, 22, 11, tzinfo=UTC)
    assert [v["version"] for v in store.versions("lab")][-2:] == [sha_b, sha_c]


def test_a_commit_to_other_files_parses_nothing(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path)
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    commit_file(repo, "CONTRIBUTING.md", "Be kind.", "2024-01-09T09:00:00+00:00")
    r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert (r.changed, r.parsed, r.bytes_read, r.error) == (False, 0, 0, None)
    assert json.loads(store.source("lab")["validators"])["commit"] == git(repo, "rev-parse", "HEAD").strip()


def test_weeks_of_several_files_form_one_source(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path, ["2024.md", "2023.md"])
    commit_file(repo, "2023.md", fixture("year_2023.md"), "2024-01-02T09:00:00+00:00")
    commit_file(repo, "2024.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    first = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert first.error is None
    assert {w.key for w in store.weeks("lab")} == {A, "2023-12-25..2023-12-31", "2023-12-18..2023-12-24"}
    commit_file(repo, "2024.md", fixture("digest_v2.md"), "2024-01-15T09:00:00+00:00")
    r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert r.new == (B,) and r.error is None
    assert all(w.present for w in store.weeks("lab"))  # the 2023 file's weeks were not "removed"


def test_a_layout_change_is_an_error_not_a_mass_removal(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path)
    commit_file(repo, "README.md", fixture("digest_v2.md"), "2024-01-15T09:00:00+00:00")
    poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    before = snapshot(store, "lab")
    commit_file(repo, "README.md", "# Moved\n\nThe list now lives on our website.\n", "2024-01-16T09:00:00+00:00")
    r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert r.error and "lab" in r.error and "no weeks" in r.error
    assert snapshot(store, "lab") == before
    assert store.source("lab")["error_count"] == 1
    commit_file(repo, "README.md", fixture("digest_v3.md"), "2024-01-22T09:00:00+00:00")
    fixed = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert fixed.error is None and fixed.new == (C,)
    assert store.source("lab")["error_count"] == 0 and all(w.present for w in store.weeks("lab"))


def test_a_broken_commit_in_between_is_skipped(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path)
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    commit_file(repo, "README.md", b"\xff\xfe\x00garbage", "2024-01-15T09:00:00+00:00")
    commit_file(repo, "README.md", fixture("digest_v2.md"), "2024-01-15T09:05:00+00:00")
    r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert r.error is None and r.new == (B,) and r.versions == 1
    assert store.week("lab", A).present


def test_binary_content_is_an_error(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path)
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    before = snapshot(store, "lab")
    commit_file(repo, "README.md", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xd8", "2024-01-15T09:00:00+00:00")
    r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert r.error and "not UTF-8" in r.error
    assert snapshot(store, "lab") == before


def test_missing_file_missing_branch_and_missing_repo_are_clear_errors(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path, "DIGEST.md")
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert r.error and "DIGEST.md not found" in r.error
    cfg2 = write_config(tmp_path, [{"name": "lab", "git": str(repo), "branch": "release"},
                                   {"name": "gone", "git": str(tmp_path / "nowhere")}])
    assert "branch 'release' not found" in poll_source(store, cfg2, cfg2.source("lab"), NOW, options=FAST).error
    gone = poll_source(store, cfg2, cfg2.source("gone"), NOW, options=FAST)
    assert gone.error and "git fetch" in gone.error and "nowhere" in gone.error
    assert store.source("gone")["error_count"] == 1 and store.source("gone")["last_error"] == gone.error


def test_a_git_error_shows_all_of_gits_message(tmp_path: Path) -> None:
    """issue #14: `git = "/nonexistent/repo"` printed `git fetch /nonexistent/repo: and the repository exists.`,
    only the last line of git's message; the line that says what is wrong came first."""
    cfg = write_config(tmp_path, [{"name": "gone", "git": str(tmp_path / "nonexistent" / "repo")}])
    result = CliRunner().invoke(cli, ["--config", str(cfg.path), "poll"])
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith(f"gone: error: git fetch {tmp_path}/nonexistent/repo: fatal: '{tmp_path}/nonexistent/repo'"
                           " does not appear to be a git repository; fatal: Could not read from remote repository.")
    assert line.endswith("Please make sure you have the correct access rights and the repository exists.")


def test_a_rewritten_branch_is_followed_from_its_tip(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path)
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    commit_file(repo, "README.md", fixture("digest_v2.md"), "2024-01-15T09:00:00+00:00")
    poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    commit_file(repo, "README.md", fixture("digest_v3.md"), "2024-01-22T09:00:00+00:00", "force-pushed")
    r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert r.error is None and r.new == (C,) and r.versions == 1


def test_poll_command_prints_json_for_each_source(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path, backfill=1, settle="1h", max_wait="48h")
    store.close()
    commit_file(repo, "README.md", fixture("digest_v2.md"), "2024-01-15T09:00:00+00:00")
    args = ["--config", str(cfg.path), "poll", "--now", "2024-02-01T12:00:00+00:00", "--json"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == [{"source": "lab", "changed": True, "new": [B], "edited": [],
                                         "pending": [], "ready": [B], "error": None}]
    commit_file(repo, "README.md", fixture("digest_v3.md"), "2024-02-01T11:30:00+00:00")
    text = CliRunner().invoke(cli, ["--config", str(cfg.path), "poll", "--source", "lab", "--now",
                                    "2024-02-01T12:00:00"])
    assert text.exit_code == 0
    assert text.stdout.strip() == f"lab: changed; new: {C}; edited: -; pending: {C}; ready: -"
    later = CliRunner().invoke(cli, ["--config", str(cfg.path), "poll", "--now", "2024-02-01T14:00:00Z"])
    assert later.stdout.strip() == f"lab: unchanged; pending: -; ready: {C}"
    unknown = CliRunner().invoke(cli, ["--config", str(cfg.path), "poll", "--source", "nope"])
    assert unknown.exit_code != 0 and "no source named 'nope'" in unknown.output


def test_one_file_of_several_losing_its_weeks_is_an_error(tmp_path: Path) -> None:
    repo, cfg, store = _setup(tmp_path, ["2024.md", "2023.md"])
    commit_file(repo, "2023.md", fixture("year_2023.md"), "2024-01-02T09:00:00+00:00")
    commit_file(repo, "2024.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    before = snapshot(store, "lab")
    commit_file(repo, "2023.md", "# 2023\n\nSee the archive site.\n", "2024-01-09T09:00:00+00:00")
    r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert r.error and "2023.md: parsed to no weeks where 2 were known" in r.error
    assert snapshot(store, "lab") == before


def test_a_blob_over_max_size_is_refused_before_it_is_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """issue #8: git sources had no size limit (a 49 MB digest cost 22.9 s and 528 MB in one poll). With
    `[fetch] max_size`, git is asked each blob's size first; a tip over it fails naming the file, the commit
    and the size, reading nothing and changing nothing; an oversized commit in between is skipped."""
    repo = make_repo(tmp_path / "digest")
    cfg = write_config(tmp_path, [{"name": "lab", "git": str(repo)}], settle="30d", max_wait="60d",
                       extra='\n[fetch]\nmax_size = "1KiB"\n')
    store = Store.open(cfg.db_path)
    src = cfg.source("lab")
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    assert poll_source(store, cfg, src, NOW).error is None  # 589 bytes: under the cap
    before = snapshot(store, "lab")

    big = fixture("digest_v2.md") + b"\n" + b"<!-- padding, as a huge digest would have -->\n" * 40
    sha = commit_file(repo, "README.md", big, "2024-01-15T10:00:00+00:00", "huge")
    r = poll_source(store, cfg, src, NOW)
    assert r.error == (f"README.md at commit {sha[:10]} is {len(big)} bytes, more than [fetch] max_size "
                       "(1024 bytes); not read")
    assert (r.bytes_read, r.parsed) == (0, 0) and snapshot(store, "lab") == before

    commit_file(repo, "README.md", fixture("digest_v2.md"), "2024-01-15T11:00:00+00:00", "trimmed")
    with caplog.at_level(logging.WARNING):
        fixed = poll_source(store, cfg, src, NOW)
    assert fixed.error is None and fixed.new == (B,) and fixed.bytes_read == len(fixture("digest_v2.md"))
    assert f"commit {sha[:10]} is {len(big)} bytes" in caplog.text and "commit skipped" in caplog.text


def test_an_upper_case_http_git_url_is_redacted_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """issue #8 finding 7: `HTTP://…?token=` (upper case) escaped the query redaction, so its token reached
    the source's stored location, its error and the log."""
    url = "HTTP://reader:SECRET123@127.0.0.1:9/digest.git?token=SECRET123"  # port 9: nothing listens
    cfg = write_config(tmp_path, [{"name": "lab", "git": url}])
    store = Store.open(cfg.db_path)
    with caplog.at_level(logging.DEBUG):
        r = poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    row = store.source("lab")
    assert r.error and row["location"] == "HTTP://***@127.0.0.1:9/digest.git?…"
    assert "SECRET123" not in json.dumps(row) and "SECRET123" not in r.error and "SECRET123" not in caplog.text

    store.update_source("lab", location=url)  # as an earlier version stored it: the next poll rewrites it
    poll_source(store, cfg, cfg.source("lab"), NOW, options=FAST)
    assert store.source("lab")["location"] == "HTTP://***@127.0.0.1:9/digest.git?…"


def test_a_git_source_learns_its_maintainers_clock_from_the_commit_dates(tmp_path: Path) -> None:
    """issue #10: commits written at -05:00 (New York in winter): the week of Jan 8-14 ends at midnight there,
    05:00 UTC, not at midnight UTC; `paperbot weeks` says which zone and where it came from."""
    repo, cfg, store = _setup(tmp_path, settle="1h", max_wait="48h")
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00-05:00")
    poll_source(store, cfg, cfg.source("lab"), datetime(2024, 1, 8, 15, tzinfo=UTC), options=FAST)
    commit_file(repo, "README.md", fixture("digest_v2.md"), "2024-01-12T10:00:00-05:00")
    commit_file(repo, "README.md", fixture("digest_v2.md") + b"\n", "2024-01-14T21:30:00-05:00")
    r = poll_source(store, cfg, cfg.source("lab"), datetime(2024, 1, 15, 4, 59, tzinfo=UTC), options=FAST)
    assert r.new == (B,) and r.ready == ()  # still Jan 14 in New York
    assert [v["utc_offset"] for v in store.versions("lab")] == [-300, -300, -300]
    r = poll_source(store, cfg, cfg.source("lab"), datetime(2024, 1, 15, 5, 0, tzinfo=UTC), options=FAST)
    assert r.ready == (B,)
    store.close()
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "weeks"])
    assert "lab: weeks end at midnight UTC-05:00 (learned from 3 commits)" in out.output
    rows = json.loads(CliRunner().invoke(cli, ["--config", str(cfg.path), "weeks", "--json"]).output)
    assert {(w["timezone"], w["timezone_from"]) for w in rows} == {("UTC-05:00", "learned from 3 commits")}


def test_a_sources_timezone_setting_wins_over_its_commit_dates(tmp_path: Path) -> None:
    """issue #10: `timezone` on the source wins over what the commits teach."""
    repo = make_repo(tmp_path / "digest")
    cfg = write_config(tmp_path, [{"name": "lab", "git": str(repo), "timezone": "Asia/Tokyo"}], settle="1h")
    store = Store.open(cfg.db_path)
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00-05:00")
    poll_source(store, cfg, cfg.source("lab"), datetime(2024, 1, 8, 15, tzinfo=UTC), options=FAST)
    commit_file(repo, "README.md", fixture("digest_v2.md"), "2024-01-12T10:00:00-05:00")
    commit_file(repo, "README.md", fixture("digest_v2.md") + b"\n", "2024-01-13T10:00:00-05:00")
    r = poll_source(store, cfg, cfg.source("lab"), datetime(2024, 1, 14, 15, 0, tzinfo=UTC), options=FAST)
    assert r.ready == (B,)  # midnight in Tokyo: Jan 14 15:00 UTC
    store.close()
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "weeks"])
    assert "lab: weeks end at midnight Asia/Tokyo (config)" in out.output
