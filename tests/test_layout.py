"""Issue #9: the tree of bot/ is the data flow of docs/architecture.md, and no module imports itself back.

Only module-level imports count: an import inside a function is how a module reaches a heavier one lazily
(the channel registry, `paperbot serve`), and it cannot form a cycle at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

BOT = ROOT / "bot"


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in BOT.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """The bot modules `name` imports at module level (a `from pkg import mod` counts as mod)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in MODULES:
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            out |= subs or {node.module}
            if len(subs) < len(node.names):
                out.add(node.module)
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in tree.body), f"{name}: relative import"
    return out - {name}


def test_no_import_cycles():
    graph = {m: _imports(m) for m in MODULES}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
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
    assert top == ["__init__.py", "__main__.py", "config.py", "daemon.py", "locks.py", "store.py"], top
