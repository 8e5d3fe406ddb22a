"""``JobTrash``: a finished job's directory into the trash and back, purging, retention.

The trash of jobs is a slot per job under ``<runs dir>/.trash`` (see ``tidy``). Trashing
and restoring also bring the job's artifact assets in line, in the background; purging
forgets the job's rows for good. Retention moves old unstarred finished jobs to the trash
and purges old trash, from the supervisor's tick every ``retention_interval_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, conflict, not_found
from . import states
from .registration import forget_artifacts, register_artifacts
from .tidy import move_to_trash, purge_slot, restore_from_trash, retention_cutoff, trash_usage

if TYPE_CHECKING:
    from ..seams import AssetsView
    from ..tasks import TaskSet
    from .reading import JobReader
    from .repository import JobRepository
    from .supervisor import JobSupervisor
    from .transitions import JobEvents

log = logging.getLogger("notebench.jobs")


@dataclass
class RetentionSettings:
    """The job service's retention settings (days; 0: never)."""

    days: float = 0.0
    trash_days: float = 30.0
    interval_seconds: float = 3600.0


class JobTrash:
    """Trash, restore, purge and retention of jobs (see the module docstring)."""

    def __init__(self, *, repository: JobRepository, events: JobEvents, reader: JobReader,
                 supervisor: JobSupervisor, tasks: TaskSet, assets: AssetsView | None,
                 runs_dir: Path, artifacts_root: Path, settings: RetentionSettings,
                 read_only: bool) -> None:
        self.repository = repository
        self.events = events
        self.reader = reader
        self.supervisor = supervisor
        self.tasks = tasks
        self.assets = assets
        self.runs_dir = runs_dir
        self.artifacts_root = artifacts_root
        self.settings = settings
        self.read_only = read_only
        self._retention_checked = time.monotonic()

    async def delete_job(self, job_id: str) -> dict[str, Any]:
        """Move a job's directory to the trash; 409 while it is queued or runs."""
        async with self.supervisor.lock(job_id):
            row = await self.repository.row(job_id)
            if row["trashed_at"] is not None:
                raise not_found(f"job {job_id} is already in the trash", "in_trash")
            if row["state"] not in states.TERMINAL:
                hint = "cancel" if row["state"] == states.QUEUED else "stop"
                raise conflict(f"cannot delete a job that is {row['state']}: {hint} it first",
                               "job_active", state=row["state"])
            await asyncio.to_thread(move_to_trash, self.runs_dir, job_id, Path(row["job_dir"]))
            now = time.time()
            await self.repository.update(job_id, trashed_at=now, updated=now)
        self.tasks.spawn(self._artifacts_follow(job_id))
        self.repository.series_cache.forget(job_id)
        job = await self.reader.get_job(job_id)
        self.events.publish_change(job, "trashed")
        self.events.lifecycle(logging.INFO, job_id, f"job {job_id} moved to the trash")
        return job

    async def _artifacts_follow(self, job_id: str) -> None:
        """Bring the job's artifact assets in line with where the job is now: out of the
        listing while it is in the trash, back after a restore. In the background (the
        registry may take seconds to notice files gone, and registering hashes the files);
        one at a time per job, each reading the job's state when it runs, so that a
        restore right after a trash ends with the artifacts listed."""
        assets = self.assets
        if assets is None:
            return
        async with self.supervisor.lock(f"{job_id}/artifacts"):
            try:
                row = await self.repository.row(job_id)
            except ApiError:
                return  # purged meanwhile
            try:
                if row["trashed_at"] is not None:
                    rel = Path(row["job_dir"]).relative_to(self.artifacts_root)
                    await forget_artifacts(assets, job_id, rel.as_posix())
                else:
                    await register_artifacts(assets, row,
                                             await self.repository.checkpoints(job_id))
            except Exception:
                log.exception("updating the artifact assets of job %s failed", job_id)

    async def list_trash(self) -> dict[str, Any]:
        rows, total = await self.repository.page(trashed=True, limit=10_000, sort="-updated")
        count, size = await asyncio.to_thread(trash_usage, self.runs_dir)
        return {"items": [self.events.presenter.public(r) for r in rows], "total": total,
                "usage": {"jobs": count, "bytes": size},
                "retention_days": self.settings.trash_days}

    async def _trashed_row(self, job_id: str) -> dict[str, Any]:
        row = await self.repository.row(job_id)
        if row["trashed_at"] is None:
            raise not_found(f"job {job_id} is not in the trash", "not_in_trash")
        return row

    async def restore_job(self, job_id: str) -> dict[str, Any]:
        async with self.supervisor.lock(job_id):
            row = await self._trashed_row(job_id)
            await asyncio.to_thread(restore_from_trash, self.runs_dir, job_id,
                                    Path(row["job_dir"]))
            await self.repository.update(job_id, trashed_at=None, updated=time.time())
        self.tasks.spawn(self._artifacts_follow(job_id))
        job = await self.reader.get_job(job_id)
        self.events.publish_change(job, "restored")
        self.events.lifecycle(logging.INFO, job_id, f"job {job_id} restored from the trash")
        return job

    async def purge_job(self, job_id: str) -> dict[str, Any]:
        async with self.supervisor.lock(job_id):
            row = await self._trashed_row(job_id)
            job = self.events.presenter.public(row)
            await asyncio.to_thread(purge_slot, self.runs_dir, job_id)
            await self.repository.delete(job_id)
        self.supervisor.forget_locks(job_id, f"{job_id}/artifacts")
        self.reader.forget(job_id)
        self.events.publish(None, "purged", {"job_id": job_id})
        self.events.lifecycle(logging.INFO, job_id, f"job {job_id} purged")
        return {**job, "purged": True}

    async def purge_trash(self, older_than_days: float | None = None) -> dict[str, Any]:
        days = self.settings.trash_days if older_than_days is None else older_than_days
        cutoff = retention_cutoff(days)
        rows, _ = await self.repository.page(trashed=True, limit=100_000)
        purged = []
        for row in rows:
            if row["trashed_at"] <= cutoff:
                await self.purge_job(row["id"])
                purged.append(row["id"])
        return {"purged": purged, "older_than_days": days}

    async def apply_retention(self, *, days: float | None = None,
                              trash_days: float | None = None) -> dict[str, Any]:
        """Old unstarred finished runs to the trash; old trash purged (the settings' job)."""
        days = self.settings.days if days is None else days
        trash_days = self.settings.trash_days if trash_days is None else trash_days
        trashed: list[str] = []
        if days > 0:
            cutoff = retention_cutoff(days)
            for job_id in await self.repository.expired(cutoff, states.TERMINAL):
                try:
                    await self.delete_job(job_id)
                    trashed.append(job_id)
                except ApiError as exc:
                    log.info("retention skipped job %s: %s", job_id, exc.message)
        purged = (await self.purge_trash(trash_days))["purged"] if trash_days > 0 else []
        if trashed or purged:
            log.info("retention: %d jobs to the trash, %d purged", len(trashed), len(purged))
        return {"trashed": trashed, "purged": purged}

    async def retention_tick(self) -> None:
        if self.read_only or self.settings.interval_seconds <= 0:
            return
        now = time.monotonic()
        if now - self._retention_checked < self.settings.interval_seconds:
            return
        self._retention_checked = now
        try:
            await self.apply_retention()
        except Exception:
            log.exception("applying the retention settings failed")

