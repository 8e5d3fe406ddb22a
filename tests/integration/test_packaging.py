"""The wheel users install: remapped folders, shipped data, the extension enabled.

The folders of the repository are not the import names (``kernel_helpers/`` is
``notebench``, ``server_ext/`` is ``notebench.server``): these tests build the wheel from
the source tree and look inside it, and ask Jupyter whether the installed extension loads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_CONFIG = "etc/jupyter/jupyter_server_config.d/notebench.json"
# source folder -> where its files land in the wheel
REMAPPED = {
    "kernel_helpers": "notebench",
    "server_ext": "notebench/server",
    "notebooks": "notebench/_data/notebooks",
    "voila_apps": "notebench/_data/voila_apps",
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from the source tree, as ``make`` does."""
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    if importlib.util.find_spec("hatchling") is not None:
        command.insert(4, "--no-build-isolation")  # else pip fetches hatchling from the index
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("notebench-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def test_wheel_maps_folders_to_import_names(wheel: Path, wheel_names: set[str]) -> None:
    data_dir = f"notebench-{_version(wheel)}.data/data/"
    expected = {
        "notebench/__init__.py",
        "notebench/server/__init__.py",
        "notebench/server/openapi.json",
        "notebench/_data/notebooks/welcome.ipynb",
        "notebench/_data/voila_apps/dashboard.ipynb",
        data_dir + SERVER_CONFIG,
    }
    assert expected <= wheel_names, sorted(expected - wheel_names)
    top_level = {name.split("/", 1)[0] for name in wheel_names}
    for folder in ("server_ext", "kernel_helpers", "notebooks", "voila_apps", "tests"):
        assert folder not in top_level, f"top-level {folder}/ in the wheel: {sorted(top_level)}"


def test_wheel_holds_every_source_file(wheel_names: set[str]) -> None:
    """Nothing under the remapped folders is left out (a new subpackage, a data file)."""
    missing = []
    for source, target in REMAPPED.items():
        for path in sorted((ROOT / source).rglob("*")):
            rel = path.relative_to(ROOT / source)
            if not path.is_file() or any(
                part.startswith(".") or part == "__pycache__" for part in rel.parts
            ):
                continue
            if f"{target}/{rel.as_posix()}" not in wheel_names:
                missing.append(f"{source}/{rel.as_posix()}")
    assert not missing, f"not in the wheel: {missing}"


def test_wheel_ships_no_test_hooks(wheel: Path, wheel_names: set[str]) -> None:
    """The ``_test/*`` routes and the test metric source live in ``tests/server_hooks``."""
    assert not [n for n in wheel_names if n.endswith("/testing.py") or "server_hooks" in n]
    with zipfile.ZipFile(wheel) as archive:
        mounting = [name for name in wheel_names if name.endswith(".py")
                    and re.search(rb"[\"']_test/|test_hooks", archive.read(name))]
    assert not mounting, f"modules with test routes or hooks in the wheel: {mounting}"


def test_wheel_metadata(wheel: Path, wheel_names: set[str]) -> None:
    dist_info = f"notebench-{_version(wheel)}.dist-info/"
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(dist_info + "entry_points.txt").decode()
        metadata = Parser().parsestr(archive.read(dist_info + "METADATA").decode())
        config = archive.read(f"notebench-{_version(wheel)}.data/data/{SERVER_CONFIG}")
    assert re.search(r"^notebench\s*=\s*notebench\.cli:main$", entry_points, re.M)
    assert b'"notebench.server": true' in config
    # the README is the project's description on the package index
    assert "c.NotebenchApp.workspace_dir" in metadata.get_payload()


def test_entry_points_name_modules_in_the_wheel(wheel: Path, wheel_names: set[str]) -> None:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"notebench-{_version(wheel)}.dist-info/entry_points.txt").decode()
    targets = re.findall(r"^\S+\s*=\s*([\w.]+)(?::[\w.]+)?\s*$", text, re.M)
    assert targets
    missing = [
        module for module in targets
        if module.startswith("notebench")
        and not {f"{module.replace('.', '/')}.py", f"{module.replace('.', '/')}/__init__.py"}
        & wheel_names
    ]
    assert not missing, f"entry points name modules the wheel lacks: {missing}"


def test_wheel_ships_every_seeded_folder(wheel_names: set[str]) -> None:
    """The workspace is seeded from ``notebench/_data/<folder>``: each must be in the wheel."""
    from notebench.server.workspace import SEEDED

    missing = [
        shipped for shipped in SEEDED
        if not any(name.startswith(f"notebench/_data/{shipped}/") for name in wheel_names)
    ]
    assert not missing, f"seeded folders the wheel does not ship: {missing}"


def test_readme_documents_every_option() -> None:
    from notebench.server.app import NotebenchApp

    readme = (ROOT / "README.md").read_text()
    options = sorted(NotebenchApp.class_own_traits(config=True))
    assert options
    undocumented = [name for name in options if f"c.NotebenchApp.{name}`" not in readme]
    assert not undocumented, f"options missing from README.md's table: {undocumented}"


def test_readme_and_docs_name_every_configurable_class() -> None:
    from notebench.server.app import NotebenchApp
    from notebench.server.config_names import RENAMED_SECTIONS

    readme = (ROOT / "README.md").read_text()
    docs = "".join(path.read_text() for path in (ROOT / "docs").glob("*.md"))
    names = [cls.__name__ for cls in NotebenchApp.classes
             if cls.__module__.startswith("notebench.")]
    assert set(RENAMED_SECTIONS.values()) <= set(names)  # every renamed class is still one
    assert [name for name in names if f"`c.{name}.*`" not in readme] == []
    assert [name for name in names if f"`c.{name}." not in docs] == []
    # the names used before the prefix, whose sections are no longer applied
    assert [old for old in RENAMED_SECTIONS if f"`{old}`" not in readme] == []


def test_installed_extension_is_enabled_and_loads(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")  # no user config in the way
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )
    output = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, output
    assert re.search(r"^\s*notebench\.server\s+enabled\s*$", output, re.M), output
    assert re.search(r"^\s*notebench\.server(\s+\S+)?\s+OK\s*$", output, re.M), output
    assert not re.search(r"notebench\.server.*\b(disabled|X)\s*$", output, re.M), output


def test_wheel_ships_the_labextension(wheel: Path, wheel_names: set[str]) -> None:
    """The prebuilt JupyterLab extension is shared data, under 500 KB compressed."""
    prefix = f"notebench-{_version(wheel)}.data/data/share/jupyter/labextensions/notebench/"
    for name in ("package.json", "install.json", "static/style.js",
                 "schemas/notebench/plugin.json"):
        assert prefix + name in wheel_names, f"{name} missing from the wheel's labextension"
    assert any(n.startswith(prefix + "static/remoteEntry.") for n in wheel_names)
    with zipfile.ZipFile(wheel) as archive:
        size = sum(i.compress_size for i in archive.infolist() if i.filename.startswith(prefix))
        meta = json.loads(archive.read(prefix + "package.json"))
    assert size < 500_000, f"the labextension adds {size} bytes to the wheel"
    assert meta["name"] == "notebench" and meta["jupyterlab"]["_build"]["load"]


def test_labextension_is_enabled_and_ok(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )
    output = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, output
    lines = [line for line in output.splitlines() if re.match(r"^\s*notebench\s+v", line)]
    assert len(lines) == 1, f"notebench must be installed exactly once: {output}"
    assert re.search(r"\benabled\s+OK\b", lines[0]), output
