"""Checks that the modules of python/fastbce import each other without a cycle.

Every import counts, wherever it is written (module level, inside a function, under
``TYPE_CHECKING``): a function-level import ties two modules as much as a top-level one. Only
imports of fastbce's own modules make edges; ``from .pkg import name`` is an edge to the submodule
``pkg.name`` when there is one, else to ``pkg``. A package's ``__init__`` being run before its
submodules is not counted (every package would otherwise be a cycle).

    python tools/check_imports.py [--edges] [PACKAGE_DIR]

Prints the cycle and exits 1 if there is one; ``--edges`` also prints the import graph.
Standard library only.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "python" / "fastbce"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under root (root itself is the package), and for
    every compiled module with a .pyi stub (such as _core)."""
    modules = {}
    sources = sorted(root.rglob("*.py"))
    stubs = [p for p in sorted(root.rglob("*.pyi")) if p.with_suffix(".py") not in sources]
    for path in sources + stubs:
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of a (possibly relative) import written in `module`."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        if level - 1 >= len(base):
            raise ImportError(
                f"{module}: 'from {'.' * level}{target or ''}' goes above the package"
            )
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The fastbce modules `module` imports, at any depth of its code."""
    is_package = path.name == "__init__.py"
    if path.suffix == ".pyi":  # a compiled module: it imports nothing of fastbce
        return set()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif base in modules:
                    found.add(base)
    found.discard(module)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    modules = module_names(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, colouring the nodes)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def main(argv: list[str]) -> int:
    show_edges = "--edges" in argv
    rest = [a for a in argv if a != "--edges"]
    root = Path(rest[0]) if rest else DEFAULT_ROOT
    edges = graph(root)
    if show_edges:
        for name in sorted(edges):
            print(f"{name} -> {', '.join(sorted(edges[name])) or '(nothing)'}")
    cycle = find_cycle(edges)
    if cycle:
        print("import cycle: " + " -> ".join(cycle))
        return 1
    print(f"no import cycle among {len(edges)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
