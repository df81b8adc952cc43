"""Imports point one way (agents -> textgym) and form no cycle: a static walk of both packages' sources.

Every ``import`` counts, the lazy ones inside functions too: a cycle that only closes at run time
is still a cycle, and "textgym never imports agents" means never.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("textgym", "agents")


def module_names() -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the packages (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules that ``name`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a non-module attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walk_sees_imports_and_finds_cycles():
    graph = import_graph()
    assert "textgym.core" in graph["textgym.vector"] and "textgym.vector" in graph["agents.base"]
    assert "textgym.data.hub" in graph["textgym.data.loaders"]  # lazy imports inside functions count
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_textgym_never_imports_agents():
    bad = {m: sorted(t for t in targets if t.split(".")[0] == "agents")
           for m, targets in import_graph().items() if m.split(".")[0] == "textgym"}
    assert not {m: t for m, t in bad.items() if t}, "textgym must not import agents (imports point agents -> textgym)"


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_agents_never_import_the_textgym_cli():
    """Library code lives below the command line: agents take tables, parsers and checkpoint
    metadata from ``textgym.console``, ``textgym.evaluation`` and ``textgym.checkpoints``."""
    bad = {m: sorted(t for t in targets if t == "textgym.cli" or t.startswith("textgym.cli."))
           for m, targets in import_graph().items() if m.split(".")[0] == "agents"}
    assert not {m: t for m, t in bad.items() if t}, "agents must not import textgym.cli"


def test_import_textgym_stays_cheap():
    """``import textgym`` (the catalogue and the registration) loads neither torch nor transformers."""
    import subprocess
    import sys

    code = "import sys, textgym, textgym.catalogue; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
