"""Every package of the server stays small and acyclic: no module over 600 lines, no class
over 400, no method typed ``self: Any``, no import cycle among a package's own modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.structure import (
    CAPABILITIES,
    MAX_CLASS_LINES,
    MAX_MODULE_LINES,
    SERVER,
    class_lines,
    find_cycle,
    import_graph,
    module_lines,
    package_modules,
    report,
    untyped_self,
)

PACKAGES = [SERVER, *(SERVER / name for name in CAPABILITIES)]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_module_is_over_the_line_limit(package: Path) -> None:
    sizes = module_lines(package)
    assert sizes, package
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_class_is_over_the_line_limit(package: Path) -> None:
    sizes = class_lines(package_modules(package))
    assert {name: n for name, n in sizes.items() if n > MAX_CLASS_LINES} == {}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_method_takes_an_untyped_self(package: Path) -> None:
    assert untyped_self(package_modules(package)) == []


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_the_package_has_no_import_cycle(package: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print()
        acyclic = report(package)
    assert acyclic, find_cycle(import_graph(package_modules(package)))


def test_the_checks_see_what_they_check() -> None:
    """The helpers find a cycle, skip ``TYPE_CHECKING`` imports, read ``from . import``,
    measure classes and find a ``self: Any``."""
    a = ast.parse("from . import b\nfrom .c import x\nif TYPE_CHECKING:\n    from .d import y\n")
    b = ast.parse("from .a import z\n")
    graph = import_graph({"a": a, "b": b, "c": ast.parse(""), "d": ast.parse("")})
    assert graph["a"] == {"b", "c"}
    assert find_cycle(graph) == ["a", "b", "a"]
    assert find_cycle({"a": {"c"}, "c": set()}) is None
    mixin = ast.parse("class M:\n    def f(self: Any) -> None:\n        pass\n")
    assert untyped_self({"m": mixin}) == ["m.f"]
    assert class_lines({"m": mixin}) == {"m.M": 3}
