"""Small made-up editions and configs for the newsletter tests (our own text, nothing copied)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from bot.channels import load_config
from bot.channels.email.render import Edition
from bot.config import Config
from bot.store import Store
from bot.track.model import Link, Paper

SCRIPT_TITLE = "<script>alert(1)</script> & co"
LONG_URL = "https://example.org/very/long/path/" + "segment" * 60 + "?q=" + "z" * 120
LONG_WORD_TITLE = "Supercalifragilistic" + "x" * 150

_TOPICS = [
    ("Sparse Mixtures for Tiny Devices", "Routes each token to two of sixteen small experts; fits a phone."),
    ("Learning to Forget Gracefully", "A training schedule that drops stale facts without hurting the rest."),
    ("Ranking Retrieval by Surprise", "Scores passages by how much they change the model's next-word guess."),
    ("Cheap Long Context with Landmarks", "Keeps one summary token per block and reads blocks on demand."),
    ("Planning with Language Sketches", "Writes a rough plan in words first, then fills in the tool calls."),
    ("Benchmarks That Age Well", "Builds test items from events after the model's training cut-off."),
    ("Vision Models Count Badly", "Shows counting errors grow with the number of objects, and a fix."),
]


def sample_papers(n: int = 10) -> tuple[Paper, ...]:
    """`n` papers (n >= 3): ordinary ones, one with a script-tag title and one with a very long URL."""
    papers = []
    for i in range(n - 3):
        title, summary = _TOPICS[i % len(_TOPICS)]
        papers.append(Paper(
            title=title if i < len(_TOPICS) else f"{title} (part {i})", summary=summary, number=i + 1,
            links=(Link("Paper", f"https://example.org/papers/{i + 1}"), Link("Code", f"https://example.com/c/{i}"),
                   Link("Tweet", f"https://example.net/status/{1000 + i}")),
            authors="A. Researcher, B. Student" if i % 2 == 0 else "",
        ))
    papers.append(Paper(title=SCRIPT_TITLE, summary="Escaping test: <b>bold?</b> & \"quotes\" stay text.",
                        number=n - 2, links=(Link("Paper", "https://example.org/papers/script"),
                                             Link("Evil", "javascript:alert(2)"))))
    papers.append(Paper(title="A paper whose link is far too long", summary=f"Read it at {LONG_URL} today.",
                        number=n - 1, links=(Link("Paper", LONG_URL), Link(LONG_URL, LONG_URL))))
    papers.append(Paper(title=LONG_WORD_TITLE, summary="A title with no place to break.", number=n,
                        links=(Link("Paper", "https://example.org/papers/long-title"),)))
    return tuple(papers)


def sample_edition(n: int = 10, source: str = "digest", key: str = "2024-03-04..2024-03-10") -> Edition:
    return Edition(source=source, key=key, title="Top ML Papers of the Week (Mar 4-10)",
                   first_day=date(2024, 3, 4), last_day=date(2024, 3, 10), papers=sample_papers(n))


def write_config(tmp: Path, *, listen: str = "127.0.0.1:8080", base_url: str = "https://news.example.org",
                 subject: str | None = "{title}", contact: str = "Questions? Write to editor@example.org",
                 email_extra: str = "", sources: str = "") -> Config:
    """A config file in `tmp`; `subject=None` keeps the default subject, `email_extra` adds [email] lines and
    `sources` [[sources]] tables."""
    path = tmp / "paperbot.toml"
    path.write_text(
        'state_dir = "state"\n\n[email]\n'
        f'from = "Weekly Papers <papers@example.org>"\ncontact = "{contact}"\n'
        + (f'subject = "{subject}"\n' if subject is not None else "") + email_extra
        + 'list_id = "weekly.example.org"\n\n[web]\n'
        f'base_url = "{base_url}"\nlisten = "{listen}"\n' + sources, encoding="utf-8")
    return load_config(path)


# issue #16: a week as dair-ai writes them in 2024, with 150–250-word summaries and release dates.
DAIR_SOURCE = '\n[[sources]]\nname = "dair-ai"\ngithub = "dair-ai/ML-Papers-of-the-Week"\n'
DAIR_TITLE = "AI Papers of the Week (May 20 - May 26) - 2024"
DAIR_ANCHOR = "https://github.com/dair-ai/ML-Papers-of-the-Week#ai-papers-of-the-week-may-20---may-26---2024"
_SENTENCES = [
    "The authors propose a way to route each token to a few small experts that keeps every device busy.",
    "They train models from one to seventy billion parameters on the same data, e.g. code and maths.",
    "Ablations show the router matters more than the number of experts (Fig. 3), which surprised them.",
    "On long-context tasks the gains grow with the length of the input.",
    "The method needs no change to the attention layers and adds under two per cent to training time.",
    "A study of failure cases finds that most errors come from rare words split into many pieces.",
    "Code and weights are released under a permissive licence.",
]


def long_summary(words: int = 250) -> str:
    """Sentences of the list above, in turn, until `words` words (the last sentence cut to fit, then ended)."""
    out: list[str] = []
    i = 0
    while len(out) < words:
        out += _SENTENCES[i % len(_SENTENCES)].split()
        i += 1
    text = " ".join(out[:words])
    return text if text.endswith(".") else text.rstrip(",;") + "."


def dair_week(n: int = 10, words: int = 250, key: str = "2024-05-20..2024-05-26") -> Edition:
    """`n` papers of `words`-word summaries, each with a release date, authors and Paper, Code, Tweet links."""
    papers = tuple(Paper(
        title=f"{_TOPICS[i % len(_TOPICS)][0]}{f' (part {i})' if i >= len(_TOPICS) else ''}",
        summary=long_summary(words), number=i + 1, release_date=date(2024, 5, 20 + i % 7),
        authors="A. Researcher, B. Student, C. Engineer",
        links=(Link("Paper", f"https://arxiv.org/abs/2405.{10000 + i}"),
               Link("Code", f"https://github.com/example/project-{i}"),
               Link("Tweet", f"https://x.com/dair_ai/status/{1790000000000000000 + i}")),
    ) for i in range(n))
    return Edition(source="dair-ai", key=key, title=DAIR_TITLE, first_day=date(2024, 5, 20),
                   last_day=date(2024, 5, 26), papers=papers)


def store_edition(store: Store, edition: Edition, state: str = "ready") -> None:
    """Put `edition` in the database the way the tracker would."""
    now = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)
    store.ensure_source(edition.source, now=now)
    store.upsert_week(edition.source, edition.key, title=edition.title, state=state, first_seen=now,
                      last_changed=now, first_day=edition.first_day, last_day=edition.last_day,
                      n_papers=len(edition.papers))
    store.replace_papers(edition.source, edition.key, edition.papers)
