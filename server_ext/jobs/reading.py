"""What a job wrote, read back: its metric series and CSV, logs, output notebook,
artifacts and checkpoints.

``ReadingMixin`` is part of ``NotebenchJobService``. Each method but ``checkpoints`` (an internal
read) first checks that the job exists (404 otherwise); files are read on threads, rows on
the store's reader threads. Known secrets are scrubbed from what is served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from notebench.jobprotocol import OUTPUT

from ..errors import ApiError, not_found
from ..logs.query import LogQuery, run_query
from ..scrubbing import scrubber
from . import artifacts as files
from . import store as jobstore

CSV_PAGE = 20_000  # rows of a metrics CSV read and formatted at once


class ReadingMixin:
    """Methods of ``NotebenchJobService`` that read a job's outputs (see the module docstring)."""

    async def metrics(self: Any, job_id: str, *, names: list[str] | None, since: float | None,
                      max_points: int | None, axis: str) -> dict[str, Any]:
        await self.get_row(job_id)

        def read(conn: Any) -> dict[str, Any]:
            counts = jobstore.metric_names(conn, job_id)
            chosen = [n for n in (names or list(counts)) if n in counts]
            series = []
            for name in chosen:
                buckets, count = jobstore.metric_series(conn, job_id, name, axis=axis,
                                                        since=since, max_points=max_points)
                series.append({"name": name, "count": count, "buckets": buckets,
                               "downsampled": len(buckets) < count})
            return {"job_id": job_id, "axis": axis, "max_points": max_points,
                    "names": list(counts), "series": series}

        return await self.store.read(read)

    async def metrics_csv(self: Any, job_id: str, *, names: list[str] | None,
                          since: float | None) -> AsyncIterator[bytes]:
        """The raw points as CSV, in parts of ``CSV_PAGE`` rows (each read and formatted
        on a reader thread while the previous part is sent): a million points are never
        one string, nor one long hold of the GIL."""
        await self.get_row(job_id)

        def page(after: tuple[str, int] | None) -> Any:
            def read(conn: Any) -> tuple[bytes, tuple[str, int] | None]:
                rows = jobstore.metric_points_page(conn, job_id, names, since, after, CSV_PAGE)
                last = (rows[-1][0], rows[-1][1]) if len(rows) == CSV_PAGE else None
                return files.metrics_csv(rows, header=after is None), last

            return asyncio.ensure_future(self.store.read(read))

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

    async def job_logs(self: Any, job_id: str, query: LogQuery) -> dict[str, Any]:
        await self.get_row(job_id)
        records = await run_query(self.store, query)
        return {"job_id": job_id, "records": records,
                "next_after_id": records[-1]["id"] if records else query.after_id}

    async def output(self: Any, job_id: str) -> bytes:
        row = await self.get_row(job_id)
        path = Path(row["job_dir"]) / OUTPUT
        for _attempt in range(5):
            data = await asyncio.to_thread(_read_scrubbed, path)
            if data is None:
                raise not_found(f"job {job_id} has no output notebook yet", "no_output")
            if _is_json(data):
                return data
            await asyncio.sleep(0.1)  # papermill is writing it: read the next version
        raise ApiError(503, "output_busy", "the output notebook is being written; retry")

    async def artifacts(self: Any, job_id: str) -> dict[str, Any]:
        row = await self.get_row(job_id)
        model_path = (row["model"] or {}).get("path") if row["model"] else None
        listing = await asyncio.to_thread(files.list_files, Path(row["job_dir"]), model_path)
        return {"job_id": job_id, "files": listing, "model": row["model"]}

    async def artifact_file(self: Any, job_id: str, relative: str) -> Path:
        row = await self.get_row(job_id)
        job_dir = Path(row["job_dir"])
        path = await asyncio.to_thread(files.safe_file, job_dir, relative)
        return await asyncio.to_thread(files.served_file, job_dir, path)

    async def checkpoints(self: Any, job_id: str) -> list[dict[str, Any]]:
        return await self.store.read(lambda conn: jobstore.checkpoints(conn, job_id))


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
