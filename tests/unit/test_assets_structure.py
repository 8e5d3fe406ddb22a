"""The shape of ``server_ext/assets/``: small modules, small classes, no import cycle.

The import graph is built from the package's relative imports (``from .x import ...``,
``from . import x``, ``from .x.y import ...``) that run at import time: imports under
``if TYPE_CHECKING:`` are not counted (they never execute), and neither are imports from
outside the package (``from ..errors import ...``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server_ext" / "assets"
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 400


def _modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), filename=str(path))
            for path in sorted(PACKAGE.glob("*.py"))}


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


@pytest.fixture(scope="module")
def modules() -> dict[str, ast.Module]:
    found = _modules()
    assert {"registry", "handlers", "scanner", "uploads"} <= set(found)
    return found


def test_no_module_is_over_the_line_limit() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_class_is_over_the_line_limit(modules: dict[str, ast.Module]) -> None:
    big = {}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = node.end_lineno - start + 1
                if length > MAX_CLASS_LINES:
                    big[f"{name}.{node.name}"] = length
    assert big == {}


def test_the_package_has_no_import_cycle(modules: dict[str, ast.Module],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    graph = import_graph(modules)
    with capsys.disabled():
        print("\nserver_ext/assets import graph (runtime imports):")
        for name in sorted(graph, key=lambda n: (len(graph[n]), n)):
            print(f"  {name:14} -> {', '.join(sorted(graph[name])) or '-'}")
    assert find_cycle(graph) is None, find_cycle(graph)


def test_the_checks_see_what_they_check() -> None:
    """The helpers find a cycle, skip ``TYPE_CHECKING`` imports and read ``from . import``."""
    a = ast.parse("from . import b\nfrom .c import x\nif TYPE_CHECKING:\n    from .d import y\n")
    b = ast.parse("from .a import z\n")
    graph = import_graph({"a": a, "b": b, "c": ast.parse(""), "d": ast.parse("")})
    assert graph["a"] == {"b", "c"}
    assert find_cycle(graph) == ["a", "b", "a"]
    assert find_cycle({"a": {"c"}, "c": set()}) is None


def test_the_registry_never_reaches_the_handlers(modules: dict[str, ast.Module]) -> None:
    """The layers run one way: nothing below the handlers imports them (or Tornado's
    request handlers), and nothing the registry imports imports the registry."""
    graph = import_graph(modules)
    reach: set[str] = set()
    todo = ["registry"]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in reach:
                reach.add(nxt)
                todo.append(nxt)
    assert "handlers" not in reach and "single_upload" not in reach
    assert "registry" not in reach
    assert not {name for name in graph if "handlers" in graph[name]} - {"__init__"}
