"""Where the panels run: a notebook or a Voila page, and what the page asked for.

A Voila page's kernel acts with the server owner's rights whoever looks at the page, so
there the panels are read-only unless the server enables actions
(``c.NotebenchApp.voila_actions = True``, passed to kernels as ``NOTEBENCH_VOILA_ACTIONS``).
A Voila page's query (``?direction=rtl&lang=fa``) chooses the layout and the labels.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

__all__ = ["actions_allowed", "in_voila", "page_options"]

ENV_VOILA_ACTIONS = "NOTEBENCH_VOILA_ACTIONS"
_TRUE = ("1", "true", "yes", "on")


def in_voila(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this kernel serves a Voila page (Voila sets ``VOILA_*`` in its kernels)."""
    return any(k in environ for k in ("VOILA_REQUEST_URL", "VOILA_KERNEL_ID", "VOILA_BASE_URL"))


def actions_allowed(environ: Mapping[str, str] = os.environ) -> bool:
    """Start, stop, delete: always in a notebook; in Voila only when the server allows it."""
    if not in_voila(environ):
        return True
    return environ.get(ENV_VOILA_ACTIONS, "").strip().lower() in _TRUE


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
