"""`[arxiv]`: enriching papers from arXiv's API (#32, bot/sources/enrich.py)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config.values import ConfigError, flag, http_url, line, table, unknown

_ARXIV_KEYS = {"enabled", "api_base", "contact"}
API_BASE = "https://export.arxiv.org/api/query"


@dataclass(frozen=True)
class ArxivSettings:
    """`[arxiv]`: whether papers that link arXiv gain its record (authors, categories, abstract), where the API is
    and whom arXiv may contact about paperbot's requests (in the User-Agent; "" falls back to `[email] contact`)."""

    enabled: bool = True
    api_base: str = API_BASE
    contact: str = ""


def _parse_arxiv(t: object, f: str) -> ArxivSettings:
    t = table(t, f"{f}: arxiv")
    unknown(f"{f}: [arxiv]", t, _ARXIV_KEYS)
    d = ArxivSettings()
    contact = line(t.get("contact", d.contact), f"{f}: arxiv.contact")
    if any(c in contact for c in "()<>;\\"):
        raise ConfigError(f"{f}: arxiv.contact: an email address or a URL, without ( ) < > ; or \\")
    return ArxivSettings(
        enabled=flag(t.get("enabled", d.enabled), f"{f}: arxiv.enabled"),
        api_base=http_url(t.get("api_base", d.api_base), f"{f}: arxiv.api_base").rstrip("/"),
        contact=contact,
    )
