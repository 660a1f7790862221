"""The layers of DESIGN.md hold at the level of files: no module imports one that imports it back.

import-linter (run by .ci/run) checks the packages' layers; this checks every import between
modules of the product, including those under ``TYPE_CHECKING`` and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("router", "sources", "sinks", "operations", "handlers")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The product modules ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from pkg import mod` imports pkg.mod; `from mod import name`, mod
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    paths = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {_module(p) for p in paths}
    return {_module(p): _imports(p, modules) - {_module(p)} for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found the product
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_loop() -> None:
    # GIVEN a loop of three modules beside a tree
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    # THEN exactly the loop is reported
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_core_imports_no_implementation() -> None:
    graph = import_graph()
    wrong = {(m, i) for m, imports in graph.items() if m.startswith("router") for i in imports
             if not i.startswith("router")}
    assert wrong == set()


PRIVATE_APIS = ("._errors", "._format_message", "._obj", "._error_handler", "_pgconn")


def test_no_private_api_of_a_dependency_is_used() -> None:
    # Cerberus' error list and message formatter and psycopg's Composable internals were used once;
    # their public forms are document_error_tree, BasicErrorHandler.messages and sql.SQL
    used = [(str(path.relative_to(ROOT)), name) for package in PACKAGES for path in (ROOT / package).rglob("*.py")
            for name in PRIVATE_APIS if name in path.read_text(encoding="utf-8")]
    assert used == []
