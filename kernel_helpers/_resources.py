"""Where the package's shipped files (templates, dashboards) are."""

from __future__ import annotations

from pathlib import Path

import notebench


def package_data_dir(name: str) -> Path:
    """The folder of shipped files ``name`` (``notebooks`` or ``voila_apps``)."""
    for entry in notebench.__path__:
        candidate = Path(entry) / "_data" / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"notebench ships no {name!r} folder (broken install?)")
