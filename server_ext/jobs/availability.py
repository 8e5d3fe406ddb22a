"""Whether a template can run here: the packages its notebook says it needs.

A template names them in its metadata, ``{"notebench": {"requires": ["lightning"],
"extra": "lightning"}}``. A template whose packages are not importable is not offered
(``GET lifecycle/templates`` lists it under ``unavailable`` with the reason) and
submitting it is a 400. The check is made in the server's own interpreter, which is also
the one the default ``python3`` kernel of a job runs: a job kernel in another environment
may have other packages. Blocking (the import system's file lookups): called off the
event loop.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ..errors import bad_request


def requirements(nb: dict[str, Any]) -> tuple[list[str], str | None]:
    """The modules a notebook's metadata says it needs, and the extra that installs them."""
    meta = (nb.get("metadata") or {}).get("notebench") or {}
    if not isinstance(meta, dict):
        return [], None
    needed = meta.get("requires") or []
    if isinstance(needed, str):
        needed = [needed]
    modules = [m for m in needed if isinstance(m, str) and m.strip()]
    extra = meta.get("extra") if isinstance(meta.get("extra"), str) else None
    return modules, extra


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, an invalid name
        return False


def unavailable_reason(nb: dict[str, Any]) -> str | None:
    """Why a notebook cannot run here (its missing packages and how to install them)."""
    modules, extra = requirements(nb)
    if not modules:
        return None
    importlib.invalidate_caches()  # a package installed since the server started counts
    missing = [m for m in modules if not _importable(m)]
    if not missing:
        return None
    install = f"pip install 'notebench[{extra}]'" if extra else "pip install " + " ".join(missing)
    return (f"needs {', '.join(missing)}, not installed in the server's Python environment "
            f"({install})")


def describe_unavailable(name: str, path: str, nb: dict[str, Any], reason: str
                         ) -> dict[str, Any]:
    """A template that is not offered, as ``GET lifecycle/templates`` lists it."""
    return {"name": name, "path": path, "reason": reason, "requires": requirements(nb)[0]}


def check_available(name: str, nb: dict[str, Any]) -> None:
    """400 ``template_unavailable`` when the template's packages are not installed."""
    reason = unavailable_reason(nb)
    if reason is not None:
        raise bad_request(f"template {name} is not available here: it {reason}",
                          "template_unavailable")
