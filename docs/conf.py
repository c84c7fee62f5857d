"""Sphinx configuration of paperbot's documentation site (issue #26): Markdown pages (MyST), the Furo theme,
and the CLI reference generated from the commands' own help (sphinx-click). Built by tests/test_docs_site.py
with warnings as errors: `python -m sphinx -W -b html docs site`."""

project = "paperbot"
author = "paperbot contributors"
extensions = ["myst_parser", "sphinx_click"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "site"]
myst_heading_anchors = 3  # `page.md#a-heading` links work, as on GitHub
myst_enable_extensions = ["colon_fence"]
html_theme = "furo"
html_title = "paperbot"
html_static_path: list[str] = []
suppress_warnings = ["myst.xref_ambiguous"]
