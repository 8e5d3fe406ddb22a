"""The notebench Jupyter server extension."""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import NotebenchApp

    return [{"module": "notebench.server", "app": NotebenchApp}]
