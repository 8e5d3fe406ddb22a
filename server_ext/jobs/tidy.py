"""A job directory into the trash and back, and its disk use (blocking: run in threads).

The trash is the core's (``notebench.server.trash``), the one the assets use too: a slot
per job inside the same filesystem (``<runs dir>/.trash/<job id>/``), so deleting and
restoring are renames, never copies. The slot is the job directory itself, so it keeps
``job.json`` next to the files and a trash stays meaningful without the store. Hidden,
the trash is skipped by the asset scanner and by the discovery of interactive runs.
"""

from __future__ import annotations

from pathlib import Path

from .. import trash as core
from ..errors import conflict, not_found
from ..trash import TRASH_DIR, Trash, dir_size

__all__ = ["TRASH_DIR", "dir_size", "move_to_trash", "purge_slot", "restore_from_trash",
           "retention_cutoff", "trash_slot", "trash_usage"]


def trash_of(runs_dir: Path) -> Trash:
    return Trash(runs_dir / TRASH_DIR)


def trash_slot(runs_dir: Path, job_id: str) -> Path:
    return trash_of(runs_dir).slot(job_id)


def move_to_trash(runs_dir: Path, job_id: str, job_dir: Path) -> Path:
    """Move a job directory into its trash slot (a missing directory leaves an empty slot)."""
    return trash_of(runs_dir).move_in(job_id, job_dir if job_dir.is_dir() else None)


def restore_from_trash(runs_dir: Path, job_id: str, job_dir: Path) -> None:
    """Move a trashed job directory back; 409 when something now has its name."""
    trash = trash_of(runs_dir)
    if trash.slot(job_id).is_dir():
        job_dir.parent.mkdir(parents=True, exist_ok=True)
    trash.restore(
        job_id, job_dir,
        missing=not_found(f"job {job_id} has no files in the trash", "not_in_trash"),
        taken=conflict("something else now has the job directory's name; move it away "
                       "first", "name_exists"))


def purge_slot(runs_dir: Path, job_id: str) -> None:
    """Delete a trashed job's files for good."""
    trash_of(runs_dir).purge(job_id)


def trash_usage(runs_dir: Path) -> tuple[int, int]:
    """(jobs, bytes) in the trash of jobs."""
    usage = trash_of(runs_dir).usage()
    return usage.items, usage.bytes


def retention_cutoff(days: float, now: float | None = None) -> float:
    """The time before which jobs are ``days`` old (default ``now``: the wall clock);
    ``400 invalid_parameter`` when ``days`` is negative."""
    return core.retention_cutoff(days, now=now, code="invalid_parameter")
