"""Checkpoints: atomic ``torch.save`` into the job directory, keeping the last K and the best.

Files go to ``<job dir>/checkpoints/`` (``./notebench-output/checkpoints/`` outside a job),
each written to a temp file, fsynced and renamed into place, so a reader (the server, a
restarted job) never sees half a checkpoint. ``checkpoints/index.json`` lists the kept
ones; each also becomes a ``checkpoint`` event in ``events.jsonl``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import orjson

from . import _jobdir, tracking

DEFAULT_KEEP = 3
INDEX_FILE = _jobdir.CHECKPOINT_INDEX
MODES = ("min", "max")


class _Manager:
    """The checkpoints of one directory written by this process (and, in a job, before)."""

    def __init__(self, directory: Path, *, load_index: bool) -> None:
        self.directory = directory
        self.entries: list[dict[str, Any]] = []
        self.best: str | None = None
        self.counter = 0
        if load_index:
            self._load()

    def _load(self) -> None:
        try:
            index = orjson.loads((self.directory / INDEX_FILE).read_bytes())
        except (OSError, ValueError):
            return
        self.entries = [e for e in index.get("checkpoints", [])
                        if (self.directory / e["file"]).exists()]
        files = {e["file"] for e in self.entries}
        self.best = index.get("best") if index.get("best") in files else None
        self.counter = len(self.entries)

    def entry(self, which: str) -> dict[str, Any] | None:
        if which == "best" and self.best is not None:
            return next(e for e in self.entries if e["file"] == self.best)
        if which not in ("latest", "best"):
            raise ValueError(f"which must be 'latest' or 'best', not {which!r}")
        return self.entries[-1] if self.entries else None

    def file_name(self, name: str | None, epoch: int | None, step: int | None) -> str:
        self.counter += 1
        if name is None:
            if epoch is not None:
                name = f"epoch-{epoch:04d}"
            elif step is not None:
                name = f"step-{step:08d}"
            else:
                name = f"checkpoint-{self.counter:04d}"
        name = os.path.basename(name)
        if not name or name.startswith("."):
            raise ValueError(f"invalid checkpoint name {name!r}")
        return name if os.path.splitext(name)[1] else f"{name}.pt"

    def is_better(self, value: float, monitor: str, mode: str) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        best = self.entry("best")
        previous = (best or {}).get("metrics", {}).get(monitor)
        if not isinstance(previous, (int, float)) or not math.isfinite(previous):
            return True
        return value < previous if mode == "min" else value > previous

    def add(self, entry: dict[str, Any], keep: int, best: bool) -> list[str]:
        """Record ``entry``; the files that retention drops (the caller deletes them)."""
        self.entries = [e for e in self.entries if e["file"] != entry["file"]] + [entry]
        if best:
            self.best = entry["file"]
        kept = {e["file"] for e in self.entries[-keep:]}
        if self.best is not None:
            kept.add(self.best)
        dropped = [e["file"] for e in self.entries if e["file"] not in kept]
        self.entries = [e for e in self.entries if e["file"] in kept]
        return dropped

    def index(self, monitor: str | None, mode: str) -> dict[str, Any]:
        return {"latest": self.entries[-1]["file"] if self.entries else None,
                "best": self.best, "monitor": monitor, "mode": mode,
                "checkpoints": self.entries}


_managers: dict[Path, _Manager] = {}


def _manager() -> _Manager:
    in_job = _jobdir.job_dir() is not None
    directory = _jobdir.output_dir() / _jobdir.CHECKPOINTS_DIR
    manager = _managers.get(directory)
    if manager is None:
        # outside a job, only this process's checkpoints count (not an earlier run's)
        manager = _managers[directory] = _Manager(directory, load_index=in_job)
    return manager


def _save_atomic(state: Any, path: Path) -> None:
    import torch

    _jobdir.write_atomic(path, lambda handle: torch.save(state, handle))


def checkpoint(state: Any, name: str | None = None, *, epoch: int | None = None,
               step: int | None = None, metrics: dict[str, Any] | None = None,
               keep: int = DEFAULT_KEEP, monitor: str | None = None,
               mode: str = "min") -> Path:
    """Save ``state`` (e.g. ``{"model": m.state_dict(), "optimizer": ..., "epoch": e}``).

    The file is ``name`` (``.pt`` added), else ``epoch-NNNN.pt`` / ``step-NNNNNNNN.pt``.
    The last ``keep`` checkpoints are kept; with ``monitor`` (a key of ``metrics``) the best
    one by ``mode`` (``"min"`` or ``"max"``) is kept too. Returns the file's path.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    values = {k: tracking._number(k, v) for k, v in (metrics or {}).items()}
    if monitor is not None and monitor not in values:
        raise ValueError(f"monitor {monitor!r} is not one of the metrics {sorted(values)}")
    tracking.flush()
    manager = _manager()
    file_name = manager.file_name(name, epoch, step)
    path = manager.directory / file_name
    _save_atomic(state, path)
    best = monitor is not None and manager.is_better(float(values[monitor]), monitor, mode)
    entry = {"file": file_name, "path": f"{_jobdir.CHECKPOINTS_DIR}/{file_name}",
             "epoch": epoch, "step": step, "metrics": tracking.tag_nonfinite(values),
             "t": time.time()}
    for dropped in manager.add(entry, keep, best):
        (manager.directory / dropped).unlink(missing_ok=True)
    _jobdir.write_json_atomic(manager.directory / INDEX_FILE, manager.index(monitor, mode))
    tracking.emit("checkpoint", path=entry["path"], epoch=epoch, step=step,
                  metrics=entry["metrics"], best=best)
    return path


def checkpoint_path(which: str = "latest") -> Path | None:
    """This job's latest (or best; the latest when none was monitored) checkpoint, if any."""
    entry = _manager().entry(which)
    return None if entry is None else _manager().directory / entry["file"]


def load_checkpoint(path: str | Path | None = None, *, which: str = "latest",
                    map_location: Any = "cpu") -> Any | None:
    """Load a checkpoint with ``weights_only=True``; None when there is none.

    Loads ``path`` if given; else, in a restarted job, ``NOTEBENCH_RESUME_FROM`` (the
    parent's checkpoint); else this job's latest (``which="best"``: its best).
    """
    import torch

    if path is None:
        path = _jobdir.resume_from() or checkpoint_path(which)
        if path is None:
            return None
    return torch.load(path, map_location=map_location, weights_only=True)
