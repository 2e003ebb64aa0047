"""Find import cycles among the modules of a package, counting every import.

Module level, function level, under `TYPE_CHECKING`, relative or absolute: any `import x` or `from x import y`
anywhere in a file is an edge. `from pkg import name` counts as an edge to `pkg.name` when that is a module,
else to `pkg`. Prints each cycle (a strongly connected component of more than one module) and exits 1 if there
is any.

    uv run python scripts/import_cycles.py core/src/tocsin
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path


def modules(root: Path) -> dict[str, Path]:
    """Every module under the package directory `root`, by dotted name."""
    package = root.name
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The known modules that the module `name` imports, wherever in the file the import stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                yield from _known(target if target in known else base, known)


def _known(target: str, known: dict[str, Path]) -> Iterator[str]:
    """The module itself if known, else its nearest known parent package."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    if target:
        yield target


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the set of other modules of the package it imports (a package's `from . import x` of its own
    submodule is an edge to that submodule; an edge to itself is dropped)."""
    known = modules(root)
    return {name: {t for t in imports(name, path, known) if t != name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "core/src/tocsin")
    edges = graph(root)
    found = cycles(edges)
    count = sum(len(targets) for targets in edges.values())
    print(f"{len(edges)} modules, {count} imports among them, {len(found)} cycle(s)")
    for component in found:
        print("cycle: " + " <-> ".join(component))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
