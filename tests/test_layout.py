"""Issues #9 and #23: the tree of bot/ is the data flow of docs/architecture.md. Imports go one way, down the table
of layers below (every import counts, at module level or inside a function, apart from the allowlist); no module
imports itself back; and no module is bigger than a reader can hold (MAX_LINES).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

BOT = ROOT / "bot"
MAX_LINES = 400

# Lowest first: a layer may import the layers before it (and its own rank), never those after. The same table is in
# docs/architecture.md ("The layers"); a change here needs a line there saying why.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("track.model", "track.arxiv_ids", "locks"),
    ("config", "store"),
    ("track",),
    ("sources",),
    ("edition",),
    ("channels",),
    ("publish",),
    ("ops",),
    ("web",),
    ("daemon", "cli"),
)

# Imports that break the table on purpose, each with its reason: (importer, imported) -> why.
ALLOWED: dict[tuple[str, str], str] = {}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in BOT.rglob("*.py")}


def layer(module: str) -> str | None:
    """The layer of a bot module: `track.model` on its own, else the package or top-level module under bot/.
    None for the package itself (`bot`: its version) and `bot.__main__` (`python -m bot`, the CLI's alias)."""
    if module in ("bot.track.model", "bot.track.arxiv_ids"):  # the pure values below the store
        return module.removeprefix("bot.")
    parts = module.split(".")
    if len(parts) < 2 or parts[1] == "__main__":
        return None
    return parts[1]


RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _imports(name: str, *, nested: bool) -> list[tuple[str, int]]:
    """(bot module, line) for each import in `name`: module level only, or everywhere (`nested`). A
    `from pkg import mod` counts as mod, a `from pkg import name` as pkg."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if nested else tree.body
    out: list[tuple[str, int]] = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{name}:{node.lineno}: relative import")
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name in MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.append((sub if sub in MODULES else node.module, node.lineno))
    return sorted({(m, n) for m, n in out if m != name}, key=lambda e: (e[1], e[0]))


def test_no_import_cycles():
    graph = {m: sorted({i for i, _ in _imports(m, nested=False)}) for m in MODULES}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_every_layer_is_in_the_table():
    """A new package or top-level module is placed in the table on purpose, not let through by accident."""
    unplaced = sorted({lay for m in MODULES if (lay := layer(m)) is not None and lay not in RANK})
    assert not unplaced, f"bot/ has layers the table in tests/test_layout.py does not place: {unplaced}"


def test_imports_go_down_the_table():
    """#23: each import, module-level or inside a function, goes to the importer's layer or one before it."""
    broken = []
    for m in sorted(MODULES):
        src = layer(m)
        for target, lineno in _imports(m, nested=True):
            dst = layer(target)
            if src is None or dst is None or (m, target) in ALLOWED:
                continue
            if RANK[dst] > RANK[src]:
                broken.append(f"{MODULES[m].relative_to(ROOT)}:{lineno}: {m} imports {target} "
                              f"({src} may not import {dst}, a later layer)")
    assert not broken, "imports against the layer table:\n" + "\n".join(broken)


def test_the_allowlist_is_used_and_explained():
    every = {(m, t) for m in MODULES for t, _ in _imports(m, nested=True)}
    for pair, why in ALLOWED.items():
        assert pair in every, f"allowlisted import {pair} is gone: take it off ALLOWED"
        assert why.strip(), f"allowlisted import {pair} needs its reason"


def test_no_module_is_too_big():
    """#23: a module over MAX_LINES lines is split by what it serves."""
    big = sorted((n, str(p.relative_to(ROOT))) for p in BOT.rglob("*.py")
                 if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES)
    assert not big, f"modules over {MAX_LINES} lines: " + ", ".join(f"{p} ({n})" for n, p in reversed(big))


def test_the_architecture_page_shows_the_same_table():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert "\n## The layers" in doc, "docs/architecture.md has no section \"## The layers\" showing the table"
    section = doc.split("\n## The layers", 1)[1].split("\n## ", 1)[0]
    shown = re.search(r"^\s*(`[^\n]*`)\s*$", section, re.MULTILINE)
    assert shown, "docs/architecture.md, The layers: the table's line of `layer` → `layer` is missing"
    ranks = [tuple(re.findall(r"`([^`]+)`", part)) for part in shown.group(1).split("→")]
    assert tuple(ranks) == LAYERS, f"docs/architecture.md shows {ranks}, tests/test_layout.py enforces {LAYERS}"


def test_every_module_is_on_the_architecture_page():
    """Each package has its bullet in "The packages", and that bullet names each of its modules."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    bullets = doc.split("## The packages", 1)[1].split("\n## ", 1)[0].split("\n- **")
    missing = []
    for p in BOT.rglob("*.py"):
        if p.name in ("__init__.py", "__main__.py"):
            continue
        rel = p.relative_to(BOT)
        if len(rel.parts) == 1:
            where = [b for b in bullets if b.startswith("Top level")]
        else:
            pkg = f"`bot/{rel.parts[0]}/`"
            where = [b for b in bullets if b.startswith(pkg) or b.startswith(f"**{pkg}")]
        if not where or f"`{p.name}`" not in where[0] and f"{rel.as_posix()}" not in where[0]:
            missing.append(rel.as_posix())
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_the_flat_folder_is_gone():
    top = sorted(p.name for p in BOT.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "daemon.py", "locks.py"], top
