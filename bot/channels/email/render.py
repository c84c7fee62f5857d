"""The newsletter for one week: MJML + Jinja2 templates in, an HTML and a plain-text part out.

Pure apart from reading templates (and `save_web_edition`, which writes the "view in browser" copy).
Templates live in the project's `templates/` folder (installed as `bot.templates`); an operator can point
$PAPERBOT_TEMPLATES_DIR (or the `templates_dir` argument) at a folder of their own, and any template missing
there falls back to the built-in one. The per-subscriber unsubscribe link is the fixed string
`UNSUBSCRIBE_PLACEHOLDER`, so sending N messages costs one render plus N `str.replace` calls.
"""

from __future__ import annotations

import html
import logging
import os
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import jinja2

from bot.channels.base import RenderError
from bot.channels.email import view
from bot.channels.email.view import paper_view
from bot.config import Config
from bot.edition.edition import Edition
from bot.edition.edition import edition_from_store as edition_from_store  # where the channels have found it
from bot.edition.safetext import clean, format_subject, keep_lines
from bot.store.files import write_private

log = logging.getLogger(__name__)

UNSUBSCRIBE_PLACEHOLDER = "https://unsubscribe.paperbot.invalid/__TOKEN__"
# The repository's top-level templates/ folder, shipped in the wheel as the package `bot.templates`
# (pyproject.toml maps it); found through importlib.resources, so an installed paperbot needs no checkout.
BUILTIN_TEMPLATES = Path(str(resources.files("bot.templates")))
TEMPLATES_ENV = "PAPERBOT_TEMPLATES_DIR"
HTML_TEMPLATE = "newsletter.mjml"
TEXT_TEMPLATE = "newsletter.txt"
SIZE_LIMIT = 100 * 1024  # Gmail clips messages whose HTML is over ~102 KB
SUBJECT_EDGE = " :·-–—|,;"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    preheader: str
    size_warning: str | None


def edition_url(cfg: Config, source: str, key: str) -> str:
    return f"{cfg.web.base_url}/editions/{_edition_path_part(source, key)}"


@lru_cache(maxsize=8192)
def _edition_path_part(source: str, key: str) -> str:
    """`source/key`, each quoted: a search page links every hit's editions (issue #29)."""
    return f"{quote(source, safe='')}/{quote(key, safe='')}"


def templates_path(templates_dir: Path | None = None) -> list[Path]:
    """Template folders, first match wins: the argument or $PAPERBOT_TEMPLATES_DIR, then the built-in one."""
    chosen = templates_dir or (Path(os.environ[TEMPLATES_ENV]) if os.environ.get(TEMPLATES_ENV) else None)
    return [p for p in (chosen, BUILTIN_TEMPLATES) if p is not None]


def _env(dirs: tuple[Path, ...], autoescape: bool) -> jinja2.Environment:
    """A fresh environment per render (once per edition), so an edited or added template is always seen."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]), autoescape=autoescape,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=not autoescape, lstrip_blocks=not autoescape,
        finalize=None if autoescape else keep_lines,  # text part: no control characters from any value
    )
    env.filters["quoted"] = quoted
    return env


LINK_MARK = "→"  # starts paperbot's link lines in the text part; never appears in quoted digest text
QUOTE_INDENT = "   "


def quoted(text: object, first: str | None = None, width: int = 72) -> str:
    """Digest text for the plain-text part: wrapped, every line indented, so none can pass for ours.

    Our own lines (the footer after `-- `, `Unsubscribe:`) start in column 0 and link lines with `→`; a line
    of digest text always starts with `first` (paperbot's own numbering) or the indent, and never holds `→`,
    so a summary saying `-- Unsubscribe: https://phish…` shows as indented text inside its paper (issue #7).
    `first=""` starts the first line in column 0 (the edition's heading, the message's very first line).
    """
    body = clean(text).replace(LINK_MARK, "->")
    indent = " " * max(len(first or ""), len(QUOTE_INDENT))
    if not body:
        return (first or "").rstrip()
    return "\n".join(textwrap.wrap(body, width=width, initial_indent=indent if first is None else first,
                                   subsequent_indent=indent, break_long_words=False, break_on_hyphens=False))


_paper_view = paper_view  # where the web reader has found it


def _preheader(edition: Edition) -> str:
    if edition.late_only:
        n = edition.late_papers
        titles = "; ".join(clean(p.title, max_len=80) for g in edition.late for p in g.papers[:3])
        return clean(f"{n} paper{'s' if n != 1 else ''} added to earlier weeks: {titles}", max_len=150)
    n = len(edition.papers)
    titles = "; ".join(clean(p.title, max_len=80) for p in edition.papers[:3])
    return clean(f"{n} paper{'s' if n != 1 else ''} this week: {titles}" if n else "This week's papers",
                 max_len=150)


def _context(edition: Edition, cfg: Config, *, web: bool, approval: dict | None = None) -> dict:
    personal = not web and not approval  # only a subscriber's copy has an unsubscribe link
    return view.context(edition, cfg, web=web, view_url=edition_url(cfg, edition.source, edition.key),
                        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER if personal else None,
                        preheader=_preheader(edition), approval=approval)


def _render(name: str, ctx: dict, dirs: list[Path], *, autoescape: bool) -> str:
    try:
        return _env(tuple(dirs), autoescape).get_template(name).render(ctx)
    except jinja2.TemplateNotFound as e:
        raise RenderError(f"template {name} not found in {', '.join(map(str, dirs))}") from e
    except jinja2.TemplateError as e:
        where = f"{e.filename}:{e.lineno}" if getattr(e, "lineno", None) else name
        raise RenderError(f"{where}: {e}") from e


def render_mjml(edition: Edition, cfg: Config, templates_dir: Path | None = None, *,
                web: bool = False) -> str:
    """The MJML source after Jinja (before conversion): what the reference validator checks."""
    return _render(HTML_TEMPLATE, _context(edition, cfg, web=web), templates_path(templates_dir),
                   autoescape=True)


def _to_html(source: str) -> str:
    import mjml  # issue #29: loaded only by a command that renders an email or a web edition

    try:
        return mjml.mjml2html(source, disable_comments=False)
    except Exception as e:  # the Rust binding raises plain exceptions for malformed MJML
        raise RenderError(f"{HTML_TEMPLATE}: MJML could not be converted: {e}") from e


# The fields `[email] subject` may hold, all filled in below (bot/ops/config_checks.py refuses any other).
SUBJECT_FIELDS = ("title", "key", "source", "dates", "papers", "week", "headline", "credit")


APPROVAL_PREFIX = "[Approval needed] "


def render_newsletter(edition: Edition, cfg: Config, templates_dir: Path | None = None, *,
                      approval: dict | None = None) -> RenderedEmail:
    """Subject, HTML and text of the email; every subscriber gets these with their own unsubscribe URL.

    `approval` (issue #21) makes the editor's copy of a week held for approval: the subject starts with
    "[Approval needed]", a banner at the top names the `paperbot approve` and `paperbot skip` commands
    (`approval["approve"]`, `approval["skip"]`), and there is no subscriber footer, no unsubscribe link and no
    link to the web edition, which does not exist before the week goes out."""
    ctx = _context(edition, cfg, web=False, approval=approval)
    dirs = templates_path(templates_dir)
    html_part = _to_html(_render(HTML_TEMPLATE, ctx, dirs, autoescape=True))
    text_part = _render(TEXT_TEMPLATE, ctx, dirs, autoescape=False)
    fields = {"title": ctx["title"], "key": edition.key, "source": edition.source, "dates": ctx["dates"],
              "papers": ctx["count"], "week": ctx["heading"], "headline": view.headline(edition),
              "credit": ctx["credit"]["name"]}
    # A field left empty (an edition of late papers has no dates) leaves no dangling separator behind.
    subject = format_subject(cfg.email.subject, fields, ctx["title"]).strip(SUBJECT_EDGE) or ctx["title"]
    if approval:
        subject = APPROVAL_PREFIX + subject
    size = len(html_part.encode("utf-8"))
    warning = None
    if size > SIZE_LIMIT:
        warning = (f"the HTML of {edition.source}:{edition.key} is {size // 1024} KB; Gmail clips messages "
                   "over about 102 KB, hiding the footer with the unsubscribe link")
        log.warning("%s", warning)
    return RenderedEmail(subject=subject, html=html_part, text=text_part, preheader=ctx["preheader"],
                         size_warning=warning)


def personalize(email: RenderedEmail, unsubscribe_url: str) -> tuple[str, str]:
    """(html, text) for one subscriber: the placeholder replaced, HTML-escaped in the HTML part."""
    return (email.html.replace(UNSUBSCRIBE_PLACEHOLDER, html.escape(unsubscribe_url)),
            email.text.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url))


def render_web_edition(edition: Edition, cfg: Config, templates_dir: Path | None = None) -> str:
    """The "view in browser" page: the same template without anything personal (no unsubscribe link)."""
    return _to_html(render_mjml(edition, cfg, templates_dir, web=True))


def edition_path(state_dir: Path, source: str, key: str) -> Path:
    """state_dir/editions/<source>/<key>.html; ValueError for names that could leave that folder."""
    for part in (source, key):
        if not part or part.startswith(".") or any(c in part for c in "/\\\x00") or len(part) > 200:
            raise ValueError(f"{part!r} is not a valid edition name")
    return Path(state_dir) / "editions" / source / f"{key}.html"


def save_web_edition(cfg: Config, edition: Edition, templates_dir: Path | None = None) -> Path:
    """Render and store the browser copy (atomically), so the link in a sent email keeps showing it."""
    path = edition_path(cfg.state_dir, edition.source, edition.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write_private(tmp, render_web_edition(edition, cfg, templates_dir).encode("utf-8"))
    os.replace(tmp, path)
    return path
