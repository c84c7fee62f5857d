"""A week's Discord announcement: the message payloads, in order, each within every limit Discord sets.

Pure apart from reading the intro template. The first message opens with an intro line (the Jinja2 text
template `discord_intro.txt`, found like the email's templates, or `[discord] intro` written inline), preceded
by the role ping when `[discord] role_id` is set; then every paper is one embed (its title linked to the
paper, its summary, its other links), the papers added to earlier weeks last, each with a line above it
naming the week it was added to. Embeds fill a message until the next one would break a limit (10 embeds,
6000 characters), and only then does a new message start.

A payload is the JSON body exactly as it goes on the wire (what discord.py's `handle_message_parameters`
makes of it): `content`, `embeds` (in `discord.Embed.to_dict` form), `allowed_mentions` (always: no mention
at all, or exactly the configured role), `tts`, and `thread_name` on a forum post's first message.

Untrusted text (titles, summaries, labels) is cleaned (`safetext.clean`) and escaped so it shows as typed:
markdown, `@everyone`/`@here`, and `<@…>`, `<#…>`, `<t:…>` forms are backslash-escaped. Nothing is ever cut
inside a word or a link: a summary too long for its embed ends at a word boundary with "…", and a link
either fits whole or is left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import discord
import jinja2

from bot.channels.discord.settings import DiscordSettings
from bot.channels.email.render import templates_path
from bot.edition.credit import Credit
from bot.edition.edition import Edition
from bot.edition.excerpt import week_heading
from bot.edition.safetext import clean, date_range, keep_lines, safe_url
from bot.track.late import TITLE as LATE_TITLE
from bot.track.model import Paper

CONTENT, EMBEDS, TOTAL, TITLE, DESCRIPTION = 2000, 10, 6000, 256, 4096
FIELDS, FIELD_NAME, FIELD_VALUE, FOOTER, AUTHOR, THREAD_NAME = 25, 256, 1024, 2048, 256, 100
URL = 2048  # the longest link used as an embed's `url`; a longer one is only listed in the description
AUTHORS = 300  # a paper's authors in its footer, at most (keeps any embed under the 6000 of a message)
INTRO_TEMPLATE = "discord_intro.txt"
COLOR = 0x3B82F6
ELLIPSIS = "…"

# Outside links: the @everyone/@here mentions and the <@…> <#…> <:…> <a:…> <t:…> </…> forms Discord renders.
_MENTION = re.compile(r"(?P<url>https?://[^\s<]+)|(?P<at>@(?=everyone|here))|(?P<lt><(?=[@#:/]|a:|t:))")
_ORDERED = re.compile(r"^(\d+)\.(?=\s)")  # "1. " at the start would render as a numbered list
_FIELD = re.compile(r"\{(\w+)\}")


class ComposeError(RuntimeError):
    """The intro template failed, or a payload would break a Discord limit (a bug: the message says which)."""


def length(text: str) -> int:
    """Characters as Discord counts them, taken the safe way: UTF-16 code units (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: object) -> str:
    """One clean line that Discord shows as typed: markdown escaped, nothing that renders as a mention."""
    s = discord.utils.escape_markdown(clean(text))
    s = _MENTION.sub(lambda m: m.group("url") or "\\" + m.group(0), s)
    return _ORDERED.sub(r"\1\\.", s)


def _most(n: int, ok: Callable[[int], bool]) -> int:
    """The largest k in 0..n with ok(k), for an `ok` true up to some k and false after (a binary search)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def fit(raw: object, limit: int, render: Callable[[object], str] = escape) -> str:
    """`render(raw)` if it is within `limit`; else the most whole words of it that fit, then "…". A single
    word longer than the limit (never a link: links are placed whole or not at all) is cut by characters."""
    out = render(raw)
    if length(out) <= limit:
        return out
    words = clean(raw).split(" ")
    k = _most(len(words), lambda i: length(render(" ".join(words[:i])) + ELLIPSIS) <= limit)
    if k:
        return render(" ".join(words[:k])).rstrip() + ELLIPSIS
    k = _most(len(words[0]), lambda i: length(render(words[0][:i]) + ELLIPSIS) <= limit)
    return render(words[0][:k]) + ELLIPSIS if k else ""


def _label(label: str) -> str:
    """A link's label, escaped; one that is itself a URL shows as its host name."""
    if safe_url(label):
        return escape(urlsplit(label.strip()).hostname or "link")
    return escape(clean(label, max_len=60)) or "link"


def _md_url(url: str) -> str:
    return url.replace("(", "%28").replace(")", "%29")  # a parenthesis would end the markdown link early


def paper_embed(paper: Paper, *, added_to: str | None = None, room: int = DESCRIPTION) -> dict:
    """One paper as an embed (discord.py's `Embed.to_dict` form), its description within `room`. `added_to`:
    the line above the title of a paper added to an earlier week."""
    links = [(lk.label, u) for lk in paper.links if (u := safe_url(lk.url))]
    main = links[0][1] if links and len(links[0][1]) <= URL else None
    listed = [f"[{_label(label)}]({_md_url(u)})" for label, u in (links[1:] if main else links)]
    line = " · ".join(listed)
    while listed and length(line) > room:  # too many links for the room: drop whole links from the end
        listed.pop()
        line = " · ".join(listed)
    left = room - (length(line) + 2 if line else 0)
    summary = fit(paper.summary, left) if left > 0 else ""
    description = "\n\n".join(x for x in (summary, line) if x)
    embed = discord.Embed(title=fit(paper.title, TITLE) or "(untitled)", url=main, description=description or None,
                          color=COLOR)
    if added_to:
        embed.set_author(name=fit(added_to, AUTHOR, clean))
    if clean(paper.authors):
        embed.set_footer(text=fit(paper.authors, AUTHORS, clean))
    return embed.to_dict()


def embed_length(embed: dict) -> int:
    """What counts towards a message's 6000: title, description, field names and values, footer, author."""
    parts = [embed.get("title") or "", embed.get("description") or "", (embed.get("footer") or {}).get("text") or "",
             (embed.get("author") or {}).get("name") or ""]
    parts += [str(f.get(k) or "") for f in embed.get("fields") or [] for k in ("name", "value")]
    return sum(length(p) for p in parts)


def problems(payload: dict) -> list[str]:
    """Every Discord limit `payload` breaks (empty: it fits)."""
    out = []
    embeds = payload.get("embeds") or []
    if length(payload.get("content") or "") > CONTENT:
        out.append(f"content is {length(payload['content'])} characters (at most {CONTENT})")
    if not (payload.get("content") or embeds):
        out.append("a message needs content or an embed")
    if len(embeds) > EMBEDS:
        out.append(f"{len(embeds)} embeds (at most {EMBEDS})")
    if sum(embed_length(e) for e in embeds) > TOTAL:
        out.append(f"the embeds hold {sum(embed_length(e) for e in embeds)} characters (at most {TOTAL})")
    if length(payload.get("thread_name") or "") > THREAD_NAME:
        out.append(f"thread_name is over {THREAD_NAME} characters")
    for i, e in enumerate(embeds):
        for what, text, limit in (("title", e.get("title"), TITLE), ("description", e.get("description"), DESCRIPTION),
                                  ("footer", (e.get("footer") or {}).get("text"), FOOTER),
                                  ("author", (e.get("author") or {}).get("name"), AUTHOR)):
            if length(text or "") > limit:
                out.append(f"embed {i + 1}: {what} is {length(text)} characters (at most {limit})")
        fields = e.get("fields") or []
        if len(fields) > FIELDS or any(length(f.get("name") or "") > FIELD_NAME
                                       or length(f.get("value") or "") > FIELD_VALUE for f in fields):
            out.append(f"embed {i + 1}: fields over {FIELDS}, or a name over {FIELD_NAME} or value over "
                       f"{FIELD_VALUE} characters")
    return out


def allowed_mentions(role_id: int | None) -> dict:
    """Always sent: no mention pings anyone, except the configured role where the intro names it."""
    roles = [discord.Object(role_id)] if role_id else False
    return discord.AllowedMentions(everyone=False, users=False, roles=roles, replied_user=False).to_dict()


def _context(edition: Edition, web_url: str | None, credit: Credit | None = None) -> dict:
    dates = date_range(edition.first_day, edition.last_day)  # on its own: the title without it, not twice
    return {"title": escape(week_heading(edition.title) if dates else edition.title) or edition.key, "dates": dates,
            "count": len(edition.papers), "late_count": edition.late_papers, "late_only": edition.late_only,
            "key": escape(edition.key), "source": escape(edition.source),
            "web_url": _md_url(u) if (u := safe_url(web_url)) else None,
            "credit": escape(credit.name) if credit else None,
            "credit_url": _md_url(u) if credit and (u := safe_url(credit.url)) else None}


def intro(edition: Edition, settings: DiscordSettings, *, web_url: str | None = None,
          templates_dir: Path | None = None, credit: Credit | None = None) -> str:
    """The intro line (the role ping not included), within what the content leaves for it."""
    dirs = templates_path(templates_dir)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in dirs]), autoescape=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             finalize=keep_lines)
    try:
        template = env.from_string(settings.intro) if settings.intro else env.get_template(INTRO_TEMPLATE)
        text = keep_lines(template.render(_context(edition, web_url, credit))).strip()
    except jinja2.TemplateNotFound as e:
        raise ComposeError(f"template {INTRO_TEMPLATE} not found in {', '.join(map(str, dirs))}") from e
    except jinja2.TemplateError as e:
        where = "discord.intro" if settings.intro else INTRO_TEMPLATE
        raise ComposeError(f"{where}: line {getattr(e, 'lineno', '?')}: {e}") from e
    room = CONTENT - length(_ping(settings.role_id))
    return text if length(text) <= room else fit(text, room, lambda t: str(t).strip())


def _ping(role_id: int | None) -> str:
    return f"<@&{role_id}> " if role_id else ""


def thread_name(edition: Edition, pattern: str) -> str:
    """A forum post's title from `[discord] thread_name`: plain text (Discord shows it raw), at most 100."""
    fields = {"title": clean(edition.title) or edition.key, "dates": date_range(edition.first_day, edition.last_day),
              "key": edition.key, "source": edition.source,
              "papers": str(edition.late_papers if edition.late_only else len(edition.papers))}
    name = _FIELD.sub(lambda m: fields.get(m.group(1), m.group(0)), pattern)
    name = re.sub(r"\s*\(\s*\)", "", name)  # "{title} ({dates})" for a week without dates
    return fit(name, THREAD_NAME, clean) or fit(edition.key, THREAD_NAME, clean)


def _items(edition: Edition) -> list[tuple[Paper, str | None]]:
    """Each embed's paper, and for a late one the week it was added to, in announcement order."""
    out: list[tuple[Paper, str | None]] = [(p, None) for p in edition.papers]
    for g in edition.late:
        when = date_range(g.first_day, g.last_day)
        added_to = f"{LATE_TITLE}: {clean(g.title) or g.key}" + (f" ({when})" if when else "")
        out += [(p, added_to) for p in g.papers]
    return out


def _squeeze(items: list[tuple[Paper, str | None]]) -> list[dict]:
    """The embeds of `items` in one message: if together over 6000 characters, every description is held to
    the largest common length that fits (summaries cut at a word). Only for a fixed layout (an edit)."""
    def build(cap: int) -> list[dict]:
        return [paper_embed(p, added_to=a, room=cap) for p, a in items]

    embeds = build(DESCRIPTION)
    if sum(embed_length(e) for e in embeds) > TOTAL:
        embeds = build(_most(DESCRIPTION, lambda cap: sum(embed_length(e) for e in build(cap)) <= TOTAL))
    if sum(embed_length(e) for e in embeds) > TOTAL:
        raise ComposeError(f"{len(items)} embeds cannot fit in one message")
    return embeds


def _message(role_id: int | None, content: str = "") -> dict:
    return {"content": content, "embeds": [], "allowed_mentions": allowed_mentions(role_id), "tts": False}


def compose(edition: Edition, settings: DiscordSettings, *, web_url: str | None = None,
            templates_dir: Path | None = None, layout: Sequence[int] | None = None,
            credit: Credit | None = None) -> list[dict]:
    """The week's messages, in the order they go out (see the module's docstring). `layout`: the number of
    embeds in each message as already posted, kept as it is (for an edit: an edit cannot add a message);
    ComposeError if the week no longer makes that many embeds."""
    first = _message(settings.role_id, _ping(settings.role_id) + intro(edition, settings, web_url=web_url,
                                                                         templates_dir=templates_dir, credit=credit))
    if settings.forum:
        first["thread_name"] = thread_name(edition, settings.thread_name)
    items, messages = _items(edition), [first]
    if layout is not None:
        if not layout or sum(layout) != len(items) or any(not 0 <= n <= EMBEDS for n in layout):
            raise ComposeError(f"{edition.source}:{edition.key} now makes {len(items)} embeds, not {sum(layout)}")
        messages += [_message(None) for _ in layout[1:]]
        start = 0
        for m, n in zip(messages, layout, strict=True):
            m["embeds"], start = _squeeze(items[start:start + n]), start + n
    else:
        total = 0
        for embed in (paper_embed(p, added_to=a) for p, a in items):
            size = embed_length(embed)
            if len(messages[-1]["embeds"]) == EMBEDS or total + size > TOTAL:
                messages.append(_message(None))
                total = 0
            messages[-1]["embeds"].append(embed)
            total += size
    for i, m in enumerate(messages):
        if bad := problems(m):
            raise ComposeError(f"{edition.source}:{edition.key}: message {i + 1}: {'; '.join(bad)}")
    return messages
