"""Live dashboards for notebooks and Voila: ipywidgets + bqplot panels on the server's streams.

>>> from notebench.widgets import ActiveJobs, MonitoringDashboard
>>> ActiveJobs()                          # a row per job, live
>>> notebench.dashboard()                 # every panel in tabs

Every panel takes ``direction="rtl"``, ``lang="fa"``, ``labels={...}`` and follows
JupyterLab's light and dark themes. ipywidgets and bqplot are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "Panel": "base",
    "LiveFeed": "live",
    "HardwarePanel": "hardware",
    "AssetsPanel": "assets",
    "ActiveJobs": "jobs",
    "CompareRuns": "compare",
    "QuickStart": "quickstart",
    "MonitoringDashboard": "monitoring",
    "Dashboard": "board",
    "dashboard": "board",
    "show": "board",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'notebench.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
