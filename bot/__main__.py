"""`python -m bot` is the same as the `paperbot` command."""

from .cli import main

main()
