"""``JobReader``: jobs and what they wrote, read back for the API.

The job objects (one, or a filtered page, with queue positions and fresh disk use), their
metric series and CSV, logs, output notebook, artifacts and checkpoints. Each read of a
job's outputs first checks that the job exists (404 otherwise); files are read on threads,
rows on the store's reader threads. Known secrets are scrubbed from what is served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from notebench.jobprotocol import OUTPUT

from ..errors import ApiError, not_found
from ..logs.query import LogQuery
from ..scrubbing import scrubber
from . import artifacts as files
from . import states
from .queue import Waiting, waiting_of
from .tidy import dir_size

if TYPE_CHECKING:
    from .live import LiveJobs
    from .presenting import JobPresenter
    from .repository import JobRepository

log = logging.getLogger("notebench.jobs")

CSV_PAGE = 20_000  # rows of a metrics CSV read and formatted at once
DISK_REFRESH_SECONDS = 15.0  # how often the tick measures the live jobs' directories
DISK_FRESH_SECONDS = 2.0  # a GET of a live job measures again when older than this


class JobReader:
    """Reads of jobs and their outputs (see the module docstring)."""

    def __init__(self, repository: JobRepository, presenter: JobPresenter,
                 live: LiveJobs) -> None:
        self.repository = repository
        self.presenter = presenter
        self.live = live
        self._disk_checked = 0.0
        self._disk_measured: dict[str, float] = {}

    # -- jobs ---

    async def get_job(self, job_id: str) -> dict[str, Any]:
        row = await self.repository.row(job_id)
        if row["trashed_at"] is None and self._disk_stale(job_id, row["disk_bytes"]):
            row["disk_bytes"] = await self._measure_disk(job_id, Path(row["job_dir"]))
        waiting = await self.waiting() if row["state"] == states.QUEUED else None
        return self.presenter.public(row, waiting)

    async def list_jobs(self, *, states_filter: list[str] | None = None,
                        tag: str | None = None, kind: str | None = None,
                        template: str | None = None, parent_id: str | None = None,
                        limit: int = 100, offset: int = 0, **more: Any) -> dict[str, Any]:
        """A page of jobs; ``more``: the other filters and ``sort`` of ``store.list_jobs``."""
        rows, total = await self.repository.page(
            states=states_filter, tag=tag, kind=kind, template=template,
            parent_id=parent_id, limit=limit, offset=offset, **more)
        waiting = await self.waiting() if any(
            r["state"] == states.QUEUED for r in rows) else None
        return {"jobs": [self.presenter.public(r, waiting) for r in rows], "total": total,
                "limit": limit, "offset": offset}

    async def waiting(self) -> list[Waiting]:
        """The queued jobs as the admission rules see them (for queue positions)."""
        return [waiting_of(r) for r in await self.repository.in_states([states.QUEUED])]

    # -- disk use ---

    def _disk_stale(self, job_id: str, known: int | None) -> bool:
        """Whether a GET of the job should measure its directory again."""
        if known is None:
            return True
        if job_id not in self.live:
            return False  # measured when it ended; nothing writes there any more
        return time.monotonic() - self._disk_measured.get(job_id, 0.0) > DISK_FRESH_SECONDS

    async def _measure_disk(self, job_id: str, job_dir: Path) -> int:
        self._disk_measured[job_id] = time.monotonic()
        size = await asyncio.to_thread(dir_size, job_dir)
        await self.repository.update(job_id, disk_bytes=size)
        return size

    async def refresh_disk(self) -> None:
        """Disk use of live jobs, every ``DISK_REFRESH_SECONDS`` (from the tick)."""
        now = time.monotonic()
        if now - self._disk_checked < DISK_REFRESH_SECONDS:
            return
        self._disk_checked = now
        for job in self.live.records():
            try:
                await self._measure_disk(job.job_id, job.job_dir)
            except Exception:
                log.debug("measuring job %s failed", job.job_id, exc_info=True)

    def forget(self, job_id: str) -> None:
        """A purged job: nothing of it is measured any more."""
        self._disk_measured.pop(job_id, None)

    # -- outputs ---

    async def metrics(self, job_id: str, *, names: list[str] | None, since: float | None,
                      max_points: int | None, axis: str) -> dict[str, Any]:
        await self.repository.row(job_id)
        return await self.repository.series(job_id, names, axis=axis, since=since,
                                            max_points=max_points)

    async def metrics_csv(self, job_id: str, *, names: list[str] | None,
                          since: float | None) -> AsyncIterator[bytes]:
        """The raw points as CSV, in parts of ``CSV_PAGE`` rows (each read and formatted
        on a reader thread while the previous part is sent): a million points are never
        one string, nor one long hold of the GIL."""
        await self.repository.row(job_id)

        def page(after: tuple[str, int] | None) -> Any:
            def shape(rows: list[Any]) -> tuple[bytes, tuple[str, int] | None]:
                last = (rows[-1][0], rows[-1][1]) if len(rows) == CSV_PAGE else None
                return files.metrics_csv(rows, header=after is None), last

            return asyncio.ensure_future(self.repository.points_page(
                job_id, names, since, after, CSV_PAGE, shape))

        pending = page(None)
        try:
            while True:
                data, after = await pending
                pending = page(after) if after is not None else None
                yield data
                if pending is None:
                    return
        finally:
            if pending is not None:
                pending.cancel()  # the client left

    async def job_logs(self, job_id: str, query: LogQuery) -> dict[str, Any]:
        await self.repository.row(job_id)
        records = await self.repository.logs(query)
        return {"job_id": job_id, "records": records,
                "next_after_id": records[-1]["id"] if records else query.after_id}

    async def output(self, job_id: str) -> bytes:
        row = await self.repository.row(job_id)
        path = Path(row["job_dir"]) / OUTPUT
        for _attempt in range(5):
            data = await asyncio.to_thread(_read_scrubbed, path)
            if data is None:
                raise not_found(f"job {job_id} has no output notebook yet", "no_output")
            if _is_json(data):
                return data
            await asyncio.sleep(0.1)  # papermill is writing it: read the next version
        raise ApiError(503, "output_busy", "the output notebook is being written; retry")

    async def artifacts(self, job_id: str) -> dict[str, Any]:
        row = await self.repository.row(job_id)
        model_path = (row["model"] or {}).get("path") if row["model"] else None
        listing = await asyncio.to_thread(files.list_files, Path(row["job_dir"]), model_path)
        return {"job_id": job_id, "files": listing, "model": row["model"]}

    async def artifact_file(self, job_id: str, relative: str) -> Path:
        row = await self.repository.row(job_id)
        job_dir = Path(row["job_dir"])
        path = await asyncio.to_thread(files.safe_file, job_dir, relative)
        return await asyncio.to_thread(files.served_file, job_dir, path)

    async def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return await self.repository.checkpoints(job_id)


def _read_scrubbed(path: Path) -> bytes | None:
    """The file's bytes with known secrets scrubbed, or None when it does not exist."""
    try:
        return scrubber.scrub_bytes(path.read_bytes())
    except FileNotFoundError:
        return None


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True
