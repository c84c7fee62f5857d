"""Known weeks + a new version's weeks → which are new, edited, renamed, removed. Pure.

Identity rules, in order:
1. A heading whose key (or an alias of it) is known is that week. If a version repeats a heading, the copy
   whose papers match the known week is that week; the other copy is not taken for it.
2. An unknown key whose papers mostly (over half) match a known week that is missing from this version is a
   rename: the known week keeps its key and gains the new one as an alias.
3. What is left is new. Known weeks that were present and are now missing are removed.
An edit is any change to a known week's text; it never makes the week new.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.track.model import Week

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Known:
    """What the diff needs to remember about a week."""

    key: str
    fingerprint: str
    text_hash: str
    titles: tuple[str, ...]
    present: bool = True


@dataclass(frozen=True)
class DiffResult:
    new: tuple[Week, ...] = ()
    edited: tuple[str, ...] = ()  # known keys whose text changed
    renamed: dict[str, str] = field(default_factory=dict)  # known key -> key as now written
    removed: tuple[str, ...] = ()
    matched: dict[str, Week] = field(default_factory=dict)  # known key -> the week standing for it now
    ignored: tuple[Week, ...] = ()  # copies of a repeated heading that are not the week


def norm_title(title: str) -> str:
    return " ".join(_WORD.findall(title.lower()))


def overlap(known_titles: Sequence[str], week: Week) -> float:
    """Share of the known week's papers that are still there."""
    if not known_titles:
        return 0.0
    now = {norm_title(p.title) for p in week.papers}
    return sum(1 for t in known_titles if t in now) / len(known_titles)


def _pick(known: Known, copies: list[Week]) -> Week:
    for w in copies:
        if w.fingerprint == known.fingerprint:
            return w
    for w in copies:
        if w.text_hash == known.text_hash:
            return w
    return max(copies, key=lambda w: overlap(known.titles, w))  # max keeps the first on ties: the top copy


def diff_weeks(known: Mapping[str, Known], aliases: Mapping[str, str], weeks: Sequence[Week]) -> DiffResult:
    groups: dict[str, list[Week]] = {}
    for w in weeks:
        groups.setdefault(aliases.get(w.key, w.key), []).append(w)
    matched: dict[str, Week] = {}
    unmatched: list[Week] = []
    ignored: list[Week] = []
    for key, copies in groups.items():
        if key in known:
            best = _pick(known[key], copies)
            matched[key] = best
            ignored += [w for w in copies if w is not best]
        else:
            unmatched.append(copies[0])
            ignored += copies[1:]
    renamed: dict[str, str] = {}
    missing = [k for k in known if k not in matched]
    for w in list(unmatched):
        scored = [(overlap(known[k].titles, w), k) for k in missing if k not in renamed]
        if scored:
            score, k = max(scored)
            if score > 0.5:
                renamed[k] = w.key
                matched[k] = w
                unmatched.remove(w)
    edited = tuple(
        k for k, w in matched.items()
        if w.text_hash != known[k].text_hash or w.fingerprint != known[k].fingerprint
    )
    removed = tuple(k for k in missing if k not in renamed and known[k].present)
    return DiffResult(
        new=tuple(unmatched), edited=edited, renamed=renamed, removed=removed, matched=matched,
        ignored=tuple(ignored),
    )
