"""The `paperbot` command line: one module per group of commands, all registered in bot/cli/main.py.

tracker.py (init, parse, diff, replay, weeks), sources.py (poll, run), publish.py (publish, preview, history),
web.py (serve, subscribers); common.py holds what they share. Thin: each command loads what it needs and calls
the core.
"""

from bot.cli.main import cli, main

__all__ = ["cli", "main"]
