"""Where the panels run: a notebook or a Voila page, and what the page asked for.

A Voila page's kernel acts as the person viewing the page: the server mints a token for
them and its first cell (injected by the server, not shown) puts it into the environment
along with the page's scope. The server enforces that scope; here it only decides what to
show: no action buttons unless ``c.NotebenchApp.voila_actions = True``
(``NOTEBENCH_VOILA_ACTIONS``), and only the panels of the areas the page may read
(``NOTEBENCH_VOILA_READ_AREAS``). A Voila page's query (``?direction=rtl&lang=fa``)
chooses the layout and the labels.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PANEL_AREAS", "actions_allowed", "in_voila", "page_options", "readable_areas",
           "readable_panels"]

ENV_VOILA_ACTIONS = "NOTEBENCH_VOILA_ACTIONS"
ENV_VOILA_PAGE = "NOTEBENCH_VOILA_PAGE"
ENV_READ_AREAS = "NOTEBENCH_VOILA_READ_AREAS"
_TRUE = ("1", "true", "yes", "on")
#: the areas (``notebench:<area>``) a panel reads, by class name
PANEL_AREAS: dict[str, tuple[str, ...]] = {
    "ActiveJobs": ("jobs",), "QuickStart": ("jobs", "hardware"),
    "MonitoringDashboard": ("monitoring", "jobs"), "AssetsPanel": ("assets",),
    "HardwarePanel": ("hardware",), "CompareRuns": ("jobs",),
}


def in_voila(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this kernel serves a Voila page (the server marks it; Voila sets
    ``VOILA_*`` in its kernels)."""
    return any(k in environ for k in (ENV_VOILA_PAGE, "VOILA_REQUEST_URL", "VOILA_KERNEL_ID",
                                      "VOILA_BASE_URL"))


def actions_allowed(environ: Mapping[str, str] = os.environ) -> bool:
    """Start, stop, delete: always in a notebook; in Voila only when the server allows it."""
    if not in_voila(environ):
        return True
    return environ.get(ENV_VOILA_ACTIONS, "").strip().lower() in _TRUE


def readable_areas(environ: Mapping[str, str] = os.environ) -> frozenset[str] | None:
    """The areas a Voila page without actions may read besides the core (None: no limit
    given, as in a notebook)."""
    raw = environ.get(ENV_READ_AREAS)
    if raw is None or not in_voila(environ):
        return None
    return frozenset(a.strip() for a in raw.split(",") if a.strip())


def readable_panels(panels: Iterable[type], environ: Mapping[str, str] = os.environ
                    ) -> tuple[type, ...]:
    """The panel classes whose areas the page may read (every one where no limit is set)."""
    areas = readable_areas(environ)
    if areas is None:
        return tuple(panels)
    return tuple(p for p in panels if set(PANEL_AREAS.get(p.__name__, ())) <= areas)


def page_options(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """``direction`` and ``lang`` from a Voila page's query string (nothing elsewhere)."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING") or "")
    options: dict[str, Any] = {}
    direction = (query.get("direction") or query.get("dir") or [""])[0].lower()
    if direction in ("ltr", "rtl"):
        options["direction"] = direction
    lang = (query.get("lang") or [""])[0]
    if lang.isalpha() and len(lang) <= 8:
        options["lang"] = lang.lower()
    return options
