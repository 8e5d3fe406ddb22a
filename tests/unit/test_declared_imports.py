"""Every package the code imports is declared in pyproject.toml: the core's dependencies,
or the extra of the part that imports it (torch, cluster, integrations, interop, hub)."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("kernel_helpers", "server_ext")
#: extras that exist for the test and benchmark runs, not for a part of notebench
NOT_A_PART = {"test"}


def imported_modules() -> dict[str, set[str]]:
    """Top-level module -> the files importing it (at any depth: lazy imports count)."""
    found: dict[str, set[str]] = {}
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom)
                         and node.module and node.level == 0 else [])
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(
                        str(path.relative_to(ROOT)))
    return found


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in NOT_A_PART:
            lines += requirements
    return {canonicalize_name(Requirement(line).name) for line in lines}


def test_every_imported_package_is_declared() -> None:
    distributions = packages_distributions()
    names = declared()
    undeclared = {}
    for module, files in sorted(imported_modules().items()):
        if module in sys.stdlib_module_names or module in ("notebench", "__future__"):
            continue
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert owners, f"{module} (imported by {sorted(files)}) is not installed here"
        if not owners & names:
            undeclared[module] = (sorted(owners), sorted(files))
    assert undeclared == {}


def test_pip_check_is_clean_in_the_test_environment() -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
