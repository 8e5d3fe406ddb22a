"""The shape of ``server_ext/assets/``: the registry never reaches the handlers.

Sizes and the absence of import cycles are checked for every package by
``test_package_structure``; this adds the assets' own layering rule.
"""

from __future__ import annotations

import ast

import pytest

from tests.structure import SERVER, import_graph, package_modules

PACKAGE = SERVER / "assets"


@pytest.fixture(scope="module")
def modules() -> dict[str, ast.Module]:
    found = package_modules(PACKAGE)
    assert {"registry", "handlers", "scanner", "uploads"} <= set(found)
    return found


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
