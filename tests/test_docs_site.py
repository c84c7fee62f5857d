"""Issue #26: the documentation site builds from docs/ with Sphinx (MyST pages, the Furo theme, sphinx-click) with
warnings as errors: no broken link between pages, no missing image, no page left out of the table of contents;
and the CLI reference it holds is generated from the commands' own help, so it names every command and option."""

from __future__ import annotations

import subprocess
import sys

import click
from conftest import ROOT

from bot.cli import cli


def _all_commands(group: click.Group, prefix: str = "paperbot") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((f"{prefix} {name}", cmd))
        if isinstance(cmd, click.Group):
            out += _all_commands(cmd, f"{prefix} {name}")
    return out


def test_the_site_builds_with_warnings_as_errors_and_shows_every_command(tmp_path):
    try:
        import furo  # noqa: F401
        import myst_parser  # noqa: F401
        import sphinx  # noqa: F401
        import sphinx_click  # noqa: F401
    except ImportError as e:  # make test installs the docs extra; say how if it is missing
        raise AssertionError(f"{e.name} is not installed: pip install -e '.[docs]' (make test installs it)") from e
    out = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                          "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"sphinx -W failed:\n{run.stderr[-4000:]}"
    for page in ("index", "getting-started", "config", "cli", "channels/index", "channels/email", "channels/x",
                 "channels/discord", "web", "operations", "scaling", "deploy", "faq", "architecture"):
        assert (out / f"{page}.html").is_file(), page
    cli_html = (out / "cli.html").read_text(encoding="utf-8")
    assert ".. option::" not in cli_html and ".. program::" not in cli_html, "sphinx-click's output shown as text"
    for name, cmd in _all_commands(cli):  # the generated part: every command with its options
        assert f'id="{name.replace(" ", "-")}"' in cli_html, name
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                if opt.startswith("--"):
                    assert opt in cli_html, f"{name} {opt}"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "furo" in index.lower() and "images/email.png" in index
    assert "Your first newsletter" in (out / "getting-started.html").read_text(encoding="utf-8")
