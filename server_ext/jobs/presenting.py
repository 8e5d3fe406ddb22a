"""A job as the API shows it: its stored row, brought up to date from its live record.

While a job is live, what its files said since the last commit (progress, latest metrics,
processes, how ``auto`` values were resolved), its active time, step rate and stall come
from its ``LiveJob``; the derived fields both front ends display (``headline``,
``progress.fraction``) from the job protocol; ``usage`` from the usage sources a later
capability registered.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import cells_fraction, headline, progress_fraction, steps_fraction

from . import states
from .queue import Waiting, position

if TYPE_CHECKING:
    from ..seams import UsageSource
    from .live import Followed, LiveJob, LiveJobs


def load_snippet(job_id: str) -> str:
    """What a person pastes into a notebook to load the model a job produced."""
    return (f'import notebench\n'
            f'state = notebench.load_model("{job_id}")  # the state dict (safetensors first)\n'
            f'# or, into a model of the same architecture:\n'
            f'# model = notebench.load_model("{job_id}", model=MyModel())')


def eta_fields(progress: dict[str, Any], samples: deque[tuple[float, int]] | None,
               active_seconds: float, paused: bool) -> dict[str, Any]:
    """``steps_per_second``, ``eta_seconds`` (active seconds left) and ``eta`` (a time).

    ``step`` counts the steps done (the job protocol's progress fraction is
    ``step / total_steps``), so ``total_steps - step`` are left."""
    step, total = progress.get("step"), progress.get("total_steps")
    if not (isinstance(step, int) and isinstance(total, int) and total > 0 and samples):
        return {}
    oldest_t, oldest_step = samples[0]
    newest_t, newest_step = samples[-1]
    if newest_t - oldest_t <= 0 or newest_step <= oldest_step:
        return {}
    rate = (newest_step - oldest_step) / (newest_t - oldest_t)
    remaining = max(0, total - step) / rate
    # the last sample was taken at ``newest_t`` active seconds: count what passed since
    left = max(0.0, remaining - max(0.0, active_seconds - newest_t))
    return {"steps_per_second": round(rate, 4), "eta_seconds": round(left, 1),
            "eta": None if paused else round(time.time() + left, 1)}


class JobPresenter:
    """Rows to the API's job objects (see the module docstring)."""

    def __init__(self, live: LiveJobs, workspace_path: Path,
                 placement: Callable[[str], dict[str, Any]] | None = None,
                 executor_name: str = "") -> None:
        self.live = live
        self.workspace_path = workspace_path
        #: where a live job runs (worker, host, GPU UUIDs), for jobs on other machines
        self.placement = placement
        self.executor_name = executor_name
        self._usage_sources: list[UsageSource] = []

    def add_usage_source(self, source: UsageSource) -> None:
        """Fill the jobs' ``usage`` field from ``source``; the first answer wins."""
        self._usage_sources.append(source)

    def usage(self, job_id: str) -> dict[str, Any] | None:
        for source in self._usage_sources:
            usage = None
            with contextlib.suppress(Exception):
                usage = source(job_id)
            if usage is not None:
                return usage
        return None

    def public(self, row: dict[str, Any], waiting: list[Waiting] | None = None
               ) -> dict[str, Any]:
        job_id = row["id"]
        live = self.live.get(job_id)
        followed = live.followed if live is not None else None
        progress = dict(followed.progress) if followed is not None else dict(row["progress"])
        latest = dict(followed.latest) if followed is not None else dict(row["latest_metrics"])
        error = (followed.error if followed is not None and followed.error else row["error"])
        duration = live.clock.seconds() if live is not None else row["active_seconds"]
        for key, fraction in (("fraction_cells", cells_fraction(progress)),
                              ("fraction_steps", steps_fraction(progress))):
            if fraction is not None:
                progress[key] = fraction
        progress["fraction"] = progress_fraction(progress, row["state"])
        progress.update(_eta(live, progress, row["state"]))
        return {
            "id": job_id, "kind": row["kind"], "name": row["name"], "state": row["state"],
            "reason": row["reason"], "template": row["template"],
            "notebook": {"path": row["notebook_path"], "sha256": row["notebook_hash"],
                         "kernel_name": row["kernel_name"]},
            "job_dir": self._workspace_relative(Path(row["job_dir"])),
            "parameters": row["parameters"], "resolved_parameters": row["resolved"],
            "auto": dict(followed.auto) if followed is not None and followed.auto else row["auto"],
            "hparams": (dict(followed.hparams) if followed is not None and followed.hparams
                        else row["hparams"]),
            "resources": row["resources"], "priority": row["priority"],
            "tags": row["tags"], "timeout": row["timeout"], "parent_id": row["parent_id"],
            "retries": row["retries"],
            "resume_from": row["resume_from"], "created": row["created"],
            "started": row["started"], "ended": row["ended"], "updated": row["updated"],
            "duration": round(duration or 0.0, 3), "progress": progress,
            "latest_metrics": latest, "headline": headline(latest),
            "final_metrics": row["final_metrics"], "error": error,
            "artifact_count": row["artifact_count"], "model": row["model"],
            "processes": self._processes(job_id, followed, row),
            "usage": self.usage(job_id), "stalled": bool(live and live.clock.stalled),
            "stop_requested": row["stop_requested"],
            "queue_position": (position(waiting, job_id) if waiting is not None
                               and row["state"] == states.QUEUED else None),
            "notes": row["notes"], "starred": bool(row["starred"]),
            "sweep_id": row["sweep_id"], "cloned_from": row["cloned_from"],
            "trashed_at": row["trashed_at"], "disk_bytes": row["disk_bytes"],
            "load_snippet": (load_snippet(job_id) if row["model"]
                             or row["state"] in (states.SUCCEEDED, states.STOPPED) else None),
        }

    def _processes(self, job_id: str, followed: Followed | None, row: dict[str, Any]
                   ) -> dict[str, Any]:
        processes = (dict(followed.processes) if followed is not None and followed.processes
                     else dict(row["processes"]))
        where = self.placement(job_id) if followed is not None and self.placement else None
        if where:
            processes["runner"] = {**(processes.get("runner") or {}), **where,
                                   "executor": self.executor_name}
        return processes

    def _workspace_relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.workspace_path).as_posix()
        except ValueError:
            return path.name


def _eta(live: LiveJob | None, progress: dict[str, Any], state: str) -> dict[str, Any]:
    if live is None or state not in (states.RUNNING, states.PAUSED):
        return {}
    return eta_fields(progress, live.rate, live.clock.seconds(), state == states.PAUSED)
