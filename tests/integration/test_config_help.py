"""Every notebench option is listed with its help, and under a name only notebench uses.

A configurable class's name is a global configuration key in Jupyter, so each of ours carries
the project's prefix and ``NotebenchApp.classes`` lists them all: ``jupyter notebench
--help-all`` and ``--generate-config`` then show every option. Sections under the names used
before the prefix are reported at start.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Configurable

from notebench.server.app import NotebenchApp
from notebench.server.config_names import RENAMED_SECTIONS, renamed_sections
from notebench.server.jobs.service import NotebenchJobService

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "Notebench"


def _configurable_class_names() -> set[str]:
    """Classes in server_ext/ whose body declares a trait tagged ``config=True``."""
    names = set()
    for path in (ROOT / "server_ext").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(call, ast.Call) and any(
                        k.arg == "config" and isinstance(k.value, ast.Constant)
                        and k.value.value is True for k in call.keywords)
                    for call in ast.walk(node)):
                names.add(node.name)
    return names


def _our_classes() -> list[type[Configurable]]:
    return [NotebenchApp, *(c for c in NotebenchApp.classes
                            if c.__module__.startswith("notebench."))]


def _options() -> Iterator[tuple[str, str, str]]:
    """(class name, trait name, help) of every notebench option."""
    for cls in _our_classes():
        # NotebenchApp inherits jupyter_server's own options; only its own are notebench's
        traits = (cls.class_own_traits(config=True) if cls is NotebenchApp
                  else cls.class_traits(config=True))
        for name, trait in sorted(traits.items()):
            yield cls.__name__, name, trait.help


def _first_words(text: str, count: int = 4) -> str:
    return " ".join(text.split()[:count])


def _run_app(*args: str, env: dict[str, str] | None = None) -> str:
    """``jupyter notebench ARGS`` as a user types it (the installed ``jupyter-notebench``)."""
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ if env is None else env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run([str(bin_dir / "jupyter"), "notebench", *args],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_every_configurable_class_is_listed_under_the_prefix() -> None:
    listed = {cls.__name__ for cls in _our_classes()}
    assert _configurable_class_names() == listed
    assert {"NotebenchApp", "NotebenchJobService", "NotebenchAssetRegistry",
            "NotebenchMonitoringService"} <= listed
    assert all(name.startswith(PREFIX) for name in listed), listed


def test_every_option_has_help() -> None:
    options = list(_options())
    assert len(options) > 50
    missing = [f"{cls}.{name}" for cls, name, text in options if not text.strip()]
    assert not missing, f"options without help: {missing}"


def test_help_all_lists_every_option_with_its_help() -> None:
    output = _run_app("--help-all")
    # one block per option: "--Class.trait=<Type>" and its indented help below
    blocks = {m.group(1): " ".join(m.group(2).split())
              for m in re.finditer(r"^--(\w+\.\w+)=\S*\n((?:[ \t]+.*\n)*)", output, re.M)}
    for cls, name, text in _options():
        block = blocks.get(f"{cls}.{name}")
        assert block is not None, f"--help-all lacks {cls}.{name}"
        assert block.startswith(_first_words(text)), (cls, name, block)


def test_generate_config_writes_every_option(tmp_path: Path) -> None:
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path))
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    _run_app("--generate-config", env=env)
    written = (tmp_path / "jupyter_notebench_config.py").read_text()
    # "## <help>" (wrapped, "#  "-continued), then "# c.Class.trait = <default>"
    entries = {m.group(3): " ".join(re.sub(r"^#+", "", m.group(1), flags=re.M).split())
               for m in re.finditer(r"^(## .*\n(#  .*\n)*)(?:#  Default: .*\n)?# c\.(\w+\.\w+) =",
                                    written, re.M)}
    for cls, name, text in _options():
        entry = entries.get(f"{cls}.{name}")
        assert entry is not None, f"the generated config lacks c.{cls}.{name}"
        assert entry.startswith(_first_words(text)), (cls, name, entry)


def test_renamed_sections_are_found_without_creating_any() -> None:
    from traitlets.config import Config

    config = Config({"JobService": {"cpu_slots": 2}, "AssetRegistry": {}})
    assert renamed_sections(config) == [("JobService", "NotebenchJobService", ["cpu_slots"])]
    assert "MonitoringService" not in config
    assert set(RENAMED_SECTIONS.values()) <= {cls.__name__ for cls in _our_classes()}


# -- a server: the generated config's file is read; an old section is reported, not applied


@pytest.fixture
def config_file(jp_config_dir: Path) -> Path:
    """A ``jupyter_notebench_config.py``, where ``--generate-config`` writes, in the server's
    config folder."""
    path = jp_config_dir / "jupyter_notebench_config.py"
    path.write_text("c.NotebenchJobService.cpu_slots = 3\n")
    return path


@pytest.fixture
def jp_server_config(config_file: Path, jp_server_config: dict[str, Any]) -> dict[str, Any]:
    return {**jp_server_config, "JobService": {"cpu_slots": 5, "tick_seconds": 0.2}}


@pytest.fixture
def notebench_records() -> Iterator[list[logging.LogRecord]]:
    """What the ``notebench`` logger logs while the test runs."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("notebench")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_server_reads_the_config_file_and_reports_old_sections(
        notebench_records: list[logging.LogRecord], services: Any) -> None:
    assert services.jobs.cpu_slots == 3  # from the file; the old section is not applied
    default = NotebenchJobService.class_traits()["tick_seconds"].default_value
    assert services.jobs.tick_seconds == default
    warnings = [r.getMessage() for r in notebench_records
                if r.levelno == logging.WARNING and "renamed" in r.getMessage()]
    assert warnings == [
        "notebench: the configuration section JobService was renamed to NotebenchJobService; "
        "notebench ignores JobService.cpu_slots, JobService.tick_seconds (rename them if they "
        "were meant for notebench)"
    ]
