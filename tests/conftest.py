"""Shared test helpers: where the real corpus lives, and real git repositories built in temp dirs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = Path(os.environ.get("PAPERBOT_SHARED", ROOT.parent / "shared"))
ARTIFACTS = ROOT / "test-artifacts"  # screenshots the browser tests keep for a person to look at
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-domain-reliability",
                 "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate",
                 # Google's own background requests (sign-in, updates) go nowhere; loopback is always direct
                 "--proxy-server=http://127.0.0.1:9"]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, driven by Playwright (never `playwright install`); skips if missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def shared_path(*parts: str) -> Path:
    """A file or folder under ../shared/, or skip the test saying why."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found: the real seeds and corpus live in ../shared/ beside the project (CI has it)")
    return p


def read_tsv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def json_cell(value: str):
    return json.loads(value) if value else []


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    full_env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_SYSTEM": "/dev/null", **(env or {})}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=full_env).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test Editor")
    git(path, "config", "user.email", "editor@example.org")
    git(path, "config", "commit.gpgsign", "false")
    return path


def commit_file(repo: Path, name: str, data: bytes | str, when: str, message: str = "update") -> str:
    """Commit `data` as `name` with author and committer date `when` (ISO 8601); returns the sha."""
    target = repo / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    git(repo, "add", name)
    dates = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    git(repo, "commit", "-q", "--allow-empty", "-m", message, env=dates)
    return git(repo, "rev-parse", "HEAD").strip()


def build_corpus_repo(path: Path, corpus: Path) -> list[dict]:
    """One commit per version of the 2023 corpus, dated from versions.tsv; returns its rows (+ `repo_sha`)."""
    rows = read_tsv(corpus / "versions.tsv")
    make_repo(path)
    for r in rows:
        r["repo_sha"] = commit_file(path, "README.md", (corpus / r["file"]).read_bytes(), r["commit_date"],
                                    f"step {r['step']}")
    return rows


def pytest_terminal_summary(terminalreporter) -> None:
    """Requests a test meant for the internet (tests/offline_guard.py), then the chaos tests' seeds
    (tests/test_chaos.py), printed even when they pass: a CI run's seed can be replayed with PAPERBOT_CHAOS_SEED."""
    from chaos_support import SEEDS

    if _GUARD is not None and _GUARD.tried:
        terminalreporter.section("requests meant for the internet (tests must use local peers)")
        for line in sorted(set(_GUARD.tried)):
            terminalreporter.write_line(line)
    if SEEDS:
        terminalreporter.section("chaos seeds")
        for line in SEEDS:
            terminalreporter.write_line(line)


_GUARD = None


def pytest_configure(config) -> None:
    """Every request meant for the internet, from any test or process it starts, is refused at once and noted
    (tests/offline_guard.py)."""
    global _GUARD
    from offline_guard import OfflineGuard

    config.addinivalue_line("markers", "reaches_internet(*hosts): the test may try these hosts; the request is "
                                       "refused (tests/offline_guard.py)")
    _GUARD = OfflineGuard()
    _GUARD.start()


def pytest_runtest_setup(item) -> None:
    marker = item.get_closest_marker("reaches_internet")
    if marker is not None and _GUARD is not None:
        _GUARD.allowed[item.nodeid] = set(marker.args)


def pytest_sessionfinish(session, exitstatus) -> None:
    """A run in which a test tried to reach the internet fails, whatever its tests said."""
    if _GUARD is not None and _GUARD.tried and session.exitstatus == 0:
        session.exitstatus = 1
