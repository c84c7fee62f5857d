"""Editing a published week's Discord messages after the source corrected it (`[discord] edit_on_correction`).

Given the ids of the messages a week went out as (the ledger's remote ids, in order), each message is read back
from Discord, the week as it stands now is composed into the same messages (as many embeds in each; a message
whose embeds grew past 6000 characters gets its longest summaries cut at a word), and only a message whose text
differs is edited (PATCH). Each edit is recorded in `discord_edits` (what changed, when, the new body), so the
operator can see it. An edit cannot add or remove messages: when the week no longer has as many papers as were
posted, nothing is edited and a warning says why. A forum post's title stays as it was (a webhook cannot rename
the post).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.channels.discord.client import DiscordClient
from bot.channels.discord.compose import ComposeError, compose
from bot.channels.discord.settings import DiscordSettings
from bot.edition.credit import Credit
from bot.edition.edition import Edition
from bot.store import Store, iso

log = logging.getLogger(__name__)

_PARTS: tuple[tuple[str, Callable[[Mapping], object]], ...] = (
    ("title", lambda e: e.get("title") or ""),
    ("link", lambda e: e.get("url") or ""),
    ("description", lambda e: e.get("description") or ""),
    ("week line", lambda e: (e.get("author") or {}).get("name") or ""),
    ("authors", lambda e: (e.get("footer") or {}).get("text") or ""),
    ("fields", lambda e: [(f.get("name"), f.get("value")) for f in e.get("fields") or []]),
)


@dataclass(frozen=True)
class Edit:
    position: int  # the message's place in the week's announcement, from 0
    message_id: str
    changed: tuple[str, ...]


def changes(old: Mapping, new: Mapping) -> list[str]:
    """What a reader would see change from message `old` (as Discord returns it) to payload `new`: "content",
    "embed 3 title", "embed 4 added"… Empty when nothing visible differs."""
    out = ["content"] if (old.get("content") or "") != (new.get("content") or "") else []
    before, after = list(old.get("embeds") or []), list(new.get("embeds") or [])
    for i in range(max(len(before), len(after))):
        if i >= len(before) or i >= len(after):
            out.append(f"embed {i + 1} {'added' if i >= len(before) else 'removed'}")
            continue
        out += [f"embed {i + 1} {name}" for name, part in _PARTS if part(before[i]) != part(after[i])]
    return out


def edit_week(store: Store, client: DiscordClient, edition: Edition, settings: DiscordSettings,
              message_ids: Sequence[str], now: datetime, *, web_url: str | None = None,
              credit: Credit | None = None) -> list[Edit]:
    """Edit the messages of `edition`'s week whose text changed; record and return each edit. The week is
    composed again into the messages as posted (as many embeds in each as Discord shows now). Raises the
    client's errors (TransientError, RateLimited, PermanentError): the edits made before it stay recorded, and
    a later call edits the rest (a message already edited compares equal and is left alone)."""
    source, key = edition.source, edition.key
    thread = message_ids[0] if settings.forum else None  # a forum post's id is its first message's
    hook = client.webhook is not None
    olds = [client.fetch(mid, thread_id=thread) if hook else client.message(settings.channel_id, mid)
            for mid in message_ids]
    try:
        payloads = compose(edition, settings, web_url=web_url, credit=credit,
                           layout=[len(o.get("embeds") or []) for o in olds])
    except ComposeError as e:
        log.warning("discord: %s:%s was corrected, but its announcement cannot be edited to match (%s); an edit "
                    "cannot add or remove messages, so it is left as it is", source, key, e)
        return []
    done = []
    for i, (mid, old, payload) in enumerate(zip(message_ids, olds, payloads, strict=True)):
        changed = changes(old, payload)
        if not changed:
            continue
        if hook:
            client.edit(mid, payload, thread_id=thread)
        else:
            client.edit_post(settings.channel_id, mid, payload)
        body = {k: v for k, v in payload.items() if k != "thread_name"}
        with store.atomic():
            store.db["discord_edits"].insert({"source": source, "week_key": key, "position": i, "message_id": mid,
                                              "edited_at": iso(now), "changed": json.dumps(changed),
                                              "body": json.dumps(body, ensure_ascii=False)})
        log.info("discord: %s:%s: edited message %d (%s): %s", source, key, i + 1, mid, ", ".join(changed))
        done.append(Edit(i, mid, tuple(changed)))
    return done


def recorded(store: Store, source: str, key: str) -> list[dict]:
    """The edits made to a week's announcement, oldest first: position, message_id, edited_at, changed (a list)."""
    rows = store.db.execute("SELECT position, message_id, edited_at, changed FROM discord_edits WHERE source = ? "
                            "AND week_key = ? ORDER BY id", [source, key]).fetchall()
    return [{"position": p, "message_id": m, "edited_at": at, "changed": json.loads(c)} for p, m, at, c in rows]
