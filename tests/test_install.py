"""Issue #9: paperbot installs the way users install it (a wheel, not the checkout) and runs from anywhere.

The wheel is built offline (`pip wheel --no-deps --no-build-isolation`) and installed with `--no-deps` into a
fresh venv in a temp dir; that venv sees the dependencies `make test` installed through a `.pth` line (a path
line, not a site dir, so the checkout's editable install is *not* activated there). Every command runs from a
folder outside the repository, and the test checks it imported the wheel's `bot`, not the checkout's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT
from publish_support import KEY, SECRET, ready_week, write_config

from bot.store import Store


def _run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(venv, wheel): the wheel built from this checkout, installed into a new venv."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy of what git would clone: a stale build/ in the checkout must not leak in
    files = _run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=tmp)
    for name in filter(None, files.stdout.split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(tmp / "dist"), str(src)], cwd=tmp)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp / "dist").glob("paperbot-*.whl"))
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp).stdout.strip())
    (site / "_paperbot_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    inst = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                 str(wheel)], cwd=tmp)
    assert inst.returncode == 0, inst.stderr
    return venv, wheel


def test_the_wheel_holds_every_subpackage_and_the_templates(installed):
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (ROOT / "bot").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names, f"{init} missing from the wheel"
    for t in (ROOT / "templates").iterdir():
        if t.suffix in (".mjml", ".txt"):
            assert f"bot/templates/{t.name}" in names


def test_the_installed_commands_run_from_outside_the_repository(installed, tmp_path):
    venv, _ = installed
    where = _run([str(venv / "bin" / "python"), "-c", "import bot, bot.channels.email.render as r; "
                  "print(bot.__file__); print(r.BUILTIN_TEMPLATES)"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.splitlines():
        assert Path(line).resolve().is_relative_to(venv.resolve()), f"not the wheel's: {line}"
    for args in ([str(venv / "bin" / "paperbot"), "--help"], [str(venv / "bin" / "python"), "-m", "bot", "--help"]):
        r = _run(args, cwd=tmp_path)
        assert r.returncode == 0 and "Usage:" in r.stdout and "publish" in r.stdout, r.stderr
    parsed = _run([str(venv / "bin" / "paperbot"), "parse", str(FIXTURES / "digest_2023.md"), "--as-of", "2023-12-31"],
                  cwd=tmp_path)
    assert parsed.returncode == 0, parsed.stderr
    assert "format: digest; 3 weeks, 9 papers" in parsed.stdout


def test_an_installed_preview_renders_with_the_built_in_templates(installed, tmp_path):
    venv, _ = installed
    cfg = write_config(tmp_path, None)
    ready_week(Store.open(cfg.db_path), cfg)
    out = tmp_path / "out"
    r = _run([str(venv / "bin" / "paperbot"), "--config", str(cfg.path), "preview", KEY, "--out", str(out)],
             cwd=tmp_path, env={"PAPERBOT_SECRET_KEY": SECRET, "PAPERBOT_TEMPLATES_DIR": ""})
    assert r.returncode == 0, r.stdout + r.stderr
    html = (out / "email" / "dair" / KEY / "edition.html").read_text(encoding="utf-8")
    text = (out / "email" / "dair" / KEY / "edition.txt").read_text(encoding="utf-8")
    assert "Sparse Lanterns" in html and "<table" in html  # MJML became HTML
    assert "1. Sparse Lanterns" in text and "Unsubscribe: https://papers.weekly.test/" in text
