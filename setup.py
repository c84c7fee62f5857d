"""Only what pyproject.toml cannot say: discover every `bot` subpackage and add `bot.templates`.

The built-in templates stay in the repository's top-level `templates/` folder; `package-dir` in
pyproject.toml maps that folder to the package `bot.templates`, which package discovery alone cannot find.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["bot", "bot.*"]), "bot.templates"])
