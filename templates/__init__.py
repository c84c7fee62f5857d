"""paperbot's built-in templates, installed as the package `bot.templates` (see pyproject.toml)."""
