"""notebench in the kernel: hardware profile, settings, and the client of the server.

Importing ``notebench`` is cheap: torch and the widget libraries are imported only
when a function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first use)
_LAZY: dict[str, str] = {
    "hardware_profile": "notebench.hardware",
    "recommended_settings": "notebench.hardware",
    "Client": "notebench.client",
    "report": "notebench.tracking",
    "start_run": "notebench.tracking",
    "should_stop": "notebench.control",
    "StopTraining": "notebench.control",
    "checkpoint": "notebench.checkpoints",
    "load_checkpoint": "notebench.checkpoints",
    "save_model": "notebench.models",
    "load_model": "notebench.models",
    "auto_batch_size": "notebench.batch_size",
    "resolve_settings": "notebench.settings",
    "output_dir": "notebench._jobdir",
    "dashboard": "notebench.widgets.board",
}

# submodules reachable as attributes (``notebench.assets.list(...)``) without importing them
_SUBMODULES = (
    "hardware", "assets", "client", "jobs",
    "tracking", "control", "checkpoints", "models", "settings", "batch_size", "widgets",
)

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"notebench.{name}")
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'notebench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
