"""The capabilities' seams: no capability imports another's modules (a later one reaches an
earlier one through ``notebench.server.seams``; an earlier one never reaches a later one),
and the app names no capability (it loops over their hooks)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from notebench.server.capability import CAPABILITIES

SERVER = Path(__file__).resolve().parents[2] / "server_ext"
PACKAGE = "notebench.server"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SERVER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, ``TYPE_CHECKING`` ones too;
    ``from .. import jobs`` gives ``notebench.server.jobs``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # ``from .. import jobs``: a submodule by name
                yield node.lineno, f"{target}.{alias.name}"


def capability_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] == PACKAGE.split(".") and len(parts) > 2 and parts[2] in CAPABILITIES:
        return parts[2]
    return None


def capability_imports() -> dict[str, dict[str, list[str]]]:
    """capability -> imported capability -> the importing places (``file:line``)."""
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in CAPABILITIES}
    for name in CAPABILITIES:
        for path in sorted((SERVER / name).rglob("*.py")):
            for line, module in imported_modules(path):
                other = capability_of(module)
                if other is not None and other != name:
                    where = f"{path.relative_to(SERVER)}:{line}"
                    places = graph[name].setdefault(other, [])
                    if where not in places:
                        places.append(where)
    return graph


def test_capabilities_import_no_other_capability(capsys: pytest.CaptureFixture[str]) -> None:
    graph = capability_imports()
    with capsys.disabled():
        print("\ncapability imports (which imports which):")
        for name, targets in graph.items():
            print(f"  {name} -> {', '.join(sorted(targets)) or '(none)'}")
    order = {name: i for i, name in enumerate(CAPABILITIES)}
    later = [f"{name} imports the later {other}: {places}"
             for name, targets in graph.items() for other, places in targets.items()
             if order[other] > order[name]]
    assert not later, "an earlier capability imports a later one (subscribe instead)"
    earlier = [f"{name} imports {other}'s modules: {places}"
               for name, targets in graph.items() for other, places in targets.items()]
    assert not earlier, "capabilities reach each other through notebench.server.seams only"


def test_imports_resolve_relative_modules() -> None:
    """The walk sees a capability's relative imports (else the test above proves nothing)."""
    path = SERVER / "jobs" / "presenting.py"
    modules = {module for _, module in imported_modules(path)}
    assert "notebench.server.jobs.states" in modules  # from . import states
    assert "notebench.server.seams" in modules  # from ..seams import UsageSource
    assert capability_of("notebench.server.monitoring.service") == "monitoring"
    assert capability_of("notebench.server.seams") is None


def test_app_names_no_capability() -> None:
    """``app.py`` wires every capability through its hooks: no import of a capability, no
    ``services.<capability>``, no job-protocol name."""
    path = SERVER / "app.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = [f"import {module} (line {line})" for line, module in imported_modules(path)
             if capability_of(module) or module.startswith("notebench.jobprotocol")]
    found += [f"{type(node).__name__} {name} (line {node.lineno})"
              for node in ast.walk(tree)
              for name in ([node.attr] if isinstance(node, ast.Attribute)
                           else [node.id] if isinstance(node, ast.Name) else [])
              if name in CAPABILITIES]
    assert not found, f"app.py names a capability: {found}"
