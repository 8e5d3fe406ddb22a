"""The shape of the server's packages: module and class sizes, runtime import graphs.

``python -m tests.structure`` prints, for every capability of ``server_ext`` (and the
core), its largest modules and classes and the graph of its runtime imports, and says
whether the graph has a cycle. The structure tests use the same functions.

The import graph is built from a package's relative imports (``from .x import ...``,
``from . import x``, ``from .x.y import ...``) that run at import time: imports under
``if TYPE_CHECKING:`` are not counted (they never execute), and neither are imports from
outside the package (``from ..errors import ...``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "server_ext"
CAPABILITIES = ("hardware", "assets", "jobs", "monitoring")
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 400


def package_modules(package: Path) -> dict[str, ast.Module]:
    """The package's own modules (not its sub-packages) by name, parsed."""
    return {path.stem: ast.parse(path.read_text(), filename=str(path))
            for path in sorted(package.glob("*.py"))}


def module_lines(package: Path) -> dict[str, int]:
    return {path.name: len(path.read_text().splitlines()) for path in package.glob("*.py")}


def class_lines(modules: dict[str, ast.Module]) -> dict[str, int]:
    """``module.Class`` -> its length in lines (decorators included)."""
    sizes = {}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                sizes[f"{name}.{node.name}"] = node.end_lineno - start + 1
    return sizes


def untyped_self(modules: dict[str, ast.Module]) -> list[str]:
    """Methods whose ``self`` is annotated ``Any`` (a mixin reaching into its host)."""
    found = []
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.args.args:
                first = node.args.args[0]
                if first.arg == "self" and isinstance(first.annotation, ast.Name) and (
                        first.annotation.id == "Any"):
                    found.append(f"{name}.{node.name}")
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(body: list[ast.stmt]) -> list[ast.AST]:
    """Every node of ``body``, leaving out the bodies of ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.AST] = []
    todo: list[ast.AST] = list(body)
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at runtime."""
    graph: dict[str, set[str]] = {}
    for name, tree in modules.items():
        edges: set[str] = set()
        for node in _runtime_nodes(tree.body):
            if not isinstance(node, ast.ImportFrom) or node.level != 1:
                continue
            if node.module:
                target = node.module.split(".")[0]
                if target in modules:
                    edges.add(target)
            else:
                edges.update(alias.name for alias in node.names if alias.name in modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None



def report(package: Path) -> bool:
    """Print a package's sizes and import graph; True when it has no cycle."""
    modules = package_modules(package)
    graph = import_graph(modules)
    biggest = sorted(module_lines(package).items(), key=lambda kv: -kv[1])[:3]
    classes = sorted(class_lines(modules).items(), key=lambda kv: -kv[1])[:3]
    cycle = find_cycle(graph)
    print(f"server_ext/{package.name if package != SERVER else ''}")
    print("  largest modules: " + ", ".join(f"{n} {c}" for n, c in biggest))
    print("  largest classes: " + ", ".join(f"{n} {c}" for n, c in classes))
    for name in sorted(graph, key=lambda n: (len(graph[n]), n)):
        print(f"  {name:16} -> {', '.join(sorted(graph[name])) or '-'}")
    print(f"  import cycle: {' -> '.join(cycle) if cycle else 'none'}")
    return cycle is None


def main() -> int:
    ok = True
    for package in (SERVER, *(SERVER / name for name in CAPABILITIES)):
        ok = report(package) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
