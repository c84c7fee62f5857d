"""Which parser reads a document: detected from its first bytes and headings, or forced by `format`."""

from __future__ import annotations

import re
from datetime import date

from bot.track.digest_cache import EMPTY, Sections, parse_digest_incremental
from bot.track.lines import decode
from bot.track.model import FORMATS, Document
from bot.track.parse_digest import parse_digest
from bot.track.parse_feed import parse_feed
from bot.track.parse_notes import parse_notes

_XML_START = re.compile(rb"^\s*(?:\xef\xbb\xbf)?\s*<(?:\?xml|rss|feed|rdf:RDF|!--)", re.IGNORECASE)
_H3 = re.compile(r"^\s{0,3}###\s+\S", re.MULTILINE)


def detect_format(data: bytes) -> str:
    """feed if it is XML; digest if it has a week heading; notes if it has `###` sections; else digest."""
    if _XML_START.match(data[:512]):
        return "feed"
    text = decode(data)
    if parse_digest(text, date.today()).weeks:
        return "digest"
    if _H3.search(text):
        return "notes"
    return "digest"


def parse_document(data: bytes, as_of: date, fmt: str = "auto", url: str = "", content_type: str = "") -> Document:
    """Parse one version of a source. Never raises on bad content: problems come back as defects."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "feed" or (fmt == "auto" and _XML_START.match(data[:512])):
        return parse_feed(data, as_of, url=url, content_type=content_type)
    text = decode(data)
    if fmt == "notes":
        return parse_notes(text, as_of)
    doc = parse_digest(text, as_of)
    if fmt == "auto" and not doc.weeks and _H3.search(text):
        return parse_notes(text, as_of)  # no week headings but ### sections: a notes page
    return doc


def parse_document_again(data: bytes, as_of: date, previous: Sections = EMPTY, fmt: str = "auto", url: str = "",
                         content_type: str = "") -> tuple[Document, Sections]:
    """`parse_document`, for a source polled again (issue #28): a digest re-reads only the weeks whose text
    changed since the version `previous` came from, and returns this version's sections for the next call.
    A notes page or a feed is parsed whole (and keeps nothing)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt in ("feed", "notes") or (fmt == "auto" and _XML_START.match(data[:512])):
        return parse_document(data, as_of, fmt, url=url, content_type=content_type), EMPTY
    doc, sections = parse_digest_incremental(data, as_of, previous)
    if fmt == "auto" and not doc.weeks:
        text = decode(data)
        if _H3.search(text):
            return parse_notes(text, as_of), EMPTY
    return doc, sections
