"""The import graph of a package read from its source (every ``import``, deferred ones inside
functions included), and its cycles: what ``tests/test_imports.py`` checks."""

from __future__ import annotations

import ast
from pathlib import Path


def module_files(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the package at ``root``."""
    base = root.parent
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = package[: len(package) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        return [target] + [f"{target}.{a.name}" for a in node.names]
    return []


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` within the package at ``root``. ``from a import b``
    counts as importing ``a.b`` when that is a module, else ``a``; importing a module of a
    subpackage also runs the subpackage's ``__init__`` (an edge to it), except from inside that
    subpackage. The top package's ``__init__``, which every import runs, is left out."""
    files = module_files(root)
    top = root.name
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        deps = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for name in _imported(node, module, is_package):
                if name.split(".")[0] != top:
                    continue
                while name not in files:  # `from a import b` where b is not a module
                    name = name.rpartition(".")[0]
                parts = name.split(".")
                for i in range(2, len(parts) + 1):
                    target = ".".join(parts[:i])
                    if target in files and not module.startswith(target + ".") \
                            and (target == name or files[target].name == "__init__.py"):
                        deps.add(target)
        deps.discard(module)
        deps.discard(top)
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found
