"""What the framework integrations share: the extra check, hyperparameters, scalars, runs."""

from __future__ import annotations

import enum
import importlib.util
import math
import os
from collections.abc import Mapping
from typing import Any

from .. import _jobdir, control, tracking
from ..jobprotocol import MAX_RUN_NAME_LENGTH, MAX_RUN_PARAMS

_SCALARS = (bool, int, float, str, type(None))


def require(module: str, extra: str, integration: str) -> None:
    """Raise an ``ImportError`` naming the extra when ``module`` is not installed."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # blocked (``sys.modules[name] = None``), or broken
        found = False
    if not found:
        raise ImportError(
            f"notebench.integrations.{integration} needs the '{module}' package, which is "
            f"not installed: pip install 'notebench[{extra}]'", name=module)


def _plain(value: Any) -> Any:
    """A JSON value for one hyperparameter (anything else as its text)."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "ndim", 0) == 0:
        try:
            return _plain(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(value)[:500]


def plain_hparams(params: Any) -> dict[str, Any]:
    """Hyperparameters as a flat dict of JSON values (nested names joined with ``/``).

    Accepts a mapping or an ``argparse.Namespace``-like object; keeps the first
    ``MAX_RUN_PARAMS`` names, so an interactive run can take them as its parameters.
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if len(out) >= MAX_RUN_PARAMS:
            return
        if not isinstance(value, Mapping) and hasattr(value, "__dict__") and not prefix:
            value = vars(value)
        if isinstance(value, Mapping) and (value or not prefix):
            for key, inner in value.items():
                walk(f"{prefix}/{key}" if prefix else str(key), inner)
            return
        out[prefix[:MAX_RUN_NAME_LENGTH]] = _plain(value)

    walk("", params if params is not None else {})
    return out


def scalars(values: Mapping[str, Any]) -> dict[str, float | int]:
    """The numeric entries of ``values`` (numbers, one-element tensors), as Python numbers."""
    out: dict[str, float | int] = {}
    for name, value in values.items():
        if value.__class__ is float or value.__class__ is int:
            out[name] = value
        elif isinstance(value, (bool, str)):
            continue
        elif isinstance(value, (int, float)):
            out[name] = value
        elif getattr(value, "numel", None) is not None and value.numel() == 1:
            out[name] = value.detach().item()
        elif getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            out[name] = value.item()
    return out


def record_hparams(params: dict[str, Any]) -> None:
    """An ``hparams`` event in ``events.jsonl`` (docs/job-directory.md)."""
    if params:
        tracking.emit("hparams", hparams=params)


class RunScope:
    """The interactive run an integration starts when training runs outside any job or run.

    Inside a papermill job, or a run the notebook started itself, it starts nothing: the
    metrics go to that job or run. Without a notebench server (no runs directory) neither.
    """

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.run: tracking.Run | None = None

    def open(self, params: dict[str, Any]) -> None:
        """Start the run (with ``params`` as its parameters) when one is wanted."""
        if self.run is not None or _jobdir.job_dir() is not None:
            return
        if tracking.active_run() is not None or not os.environ.get(_jobdir.RUNS_DIR_ENV):
            return
        self.run = tracking.start_run(self.name, params=params)

    def close(self, failed: bool = False) -> None:
        """End the run this scope started: stopped, failed or succeeded."""
        run, self.run = self.run, None
        if run is not None:
            run.end("stopped" if control.stop_seen() else "failed" if failed else "succeeded")
        else:
            tracking.flush()
