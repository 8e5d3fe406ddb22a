"""``JobRepository``: every read and write of the jobs' rows, series, sweeps and logs.

The statements are in ``store`` (rows, points, checkpoints, offsets), ``series`` (packed
series), ``compare`` (tables across runs) and the core's log query; this class runs them on
the store's writer thread or a reader thread and is what the rest of the jobs capability
calls. The tailer alone writes through ``store`` directly: its points and file offsets go
in one transaction (see ``tailer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import not_found
from ..logs.query import LogQuery, run_query
from . import store as statements
from .compare import SeriesCache, compare_table, runs_metrics_json

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

    from ..store import Store

Row = dict[str, Any]
T = TypeVar("T")


class JobRepository:
    """Async access to the jobs' tables (see the module docstring)."""

    def __init__(self, store: Store, series_cache: SeriesCache) -> None:
        self.store = store
        self.series_cache = series_cache

    @property
    def path(self) -> Path:
        """The store's database file (what the metrics export subprocess opens)."""
        return self.store.path

    async def flush(self) -> None:
        """Wait until every write queued before now is committed."""
        await self.store.write(lambda conn: None)

    # -- jobs ---

    async def find(self, job_id: str) -> Row | None:
        return await self.store.read(lambda conn: statements.get_job(conn, job_id))

    async def row(self, job_id: str) -> Row:
        """A job's row (404 ``unknown_job`` when there is none)."""
        row = await self.find(job_id)
        if row is None:
            raise not_found(f"no job {job_id}", "unknown_job")
        return row

    async def insert(self, row: Row) -> None:
        await self.store.write(lambda conn: statements.insert_job(conn, row))

    async def update(self, job_id: str, **fields: Any) -> None:
        await self.store.write(lambda conn: statements.update_job(conn, job_id, **fields))

    async def delete(self, job_id: str) -> None:
        """Forget a job for good: its row, series, checkpoints and offsets."""
        await self.store.write(lambda conn: statements.delete_job_rows(conn, job_id))
        self.series_cache.forget(job_id)

    async def in_states(self, states: Iterable[str]) -> list[Row]:
        wanted = list(states)
        return await self.store.read(lambda conn: statements.jobs_in_states(conn, wanted))

    async def page(self, **filters: Any) -> tuple[list[Row], int]:
        """A page of rows: ``store.list_jobs``'s filters, ``sort``, ``limit`` and ``offset``."""
        return await self.store.read(lambda conn: statements.list_jobs(conn, **filters))

    async def by_ids(self, ids: list[str]) -> dict[str, Row]:
        return await self.store.read(lambda conn: statements.jobs_by_ids(conn, ids))

    async def interactive_ids(self) -> list[str]:
        return await self.store.read(statements.interactive_job_ids)

    async def expired(self, cutoff: float, final: Iterable[str]) -> list[str]:
        """Unstarred finished jobs outside the trash that ended by ``cutoff``."""
        return await self.store.read(lambda conn: statements.expired_job_ids(conn, cutoff,
                                                                             final))

    async def template_durations(self) -> dict[str, tuple[float, int]]:
        return await self.store.read(statements.template_durations)

    async def checkpoints(self, job_id: str) -> list[Row]:
        return await self.store.read(lambda conn: statements.checkpoints(conn, job_id))

    async def tail_position(self, job_id: str) -> tuple[dict[str, int], dict[str, int]]:
        """Where the tailer stopped reading a job's files: (offsets, metric counters)."""
        def read(conn: sqlite3.Connection) -> tuple[dict[str, int], dict[str, int]]:
            return statements.get_offsets(conn, job_id), statements.metric_counters(conn, job_id)

        return await self.store.read(read)

    # -- metrics ---

    async def metric_counts(self, job_id: str) -> dict[str, int]:
        return await self.store.read(lambda conn: statements.metric_names(conn, job_id))

    async def write_points(self, job_id: str,
                           write: Callable[[Iterator[tuple[Any, ...]]], object]) -> None:
        """Hand every point of a job, in order, to ``write`` (on a reader thread)."""
        await self.store.read(lambda conn: write(statements.metric_points(conn, job_id)))

    async def series(self, job_id: str, names: list[str] | None, *, axis: str,
                     since: float | None, max_points: int | None) -> Row:
        """A job's metric series, each downsampled to ``max_points`` buckets."""
        def read(conn: sqlite3.Connection) -> Row:
            counts = statements.metric_names(conn, job_id)
            chosen = [n for n in (names or list(counts)) if n in counts]
            series = []
            for name in chosen:
                buckets, count = statements.metric_series(conn, job_id, name, axis=axis,
                                                          since=since, max_points=max_points)
                series.append({"name": name, "count": count, "buckets": buckets,
                               "downsampled": len(buckets) < count})
            return {"job_id": job_id, "axis": axis, "max_points": max_points,
                    "names": list(counts), "series": series}

        return await self.store.read(read)

    async def points_page(self, job_id: str, names: list[str] | None, since: float | None,
                          after: tuple[str, int] | None, limit: int,
                          shape: Callable[[list[Any]], T]) -> T:
        """``shape(rows)`` of a page of raw points after ``after`` (on a reader thread)."""
        return await self.store.read(lambda conn: shape(statements.metric_points_page(
            conn, job_id, names, since, after, limit)))

    async def compare(self, jobs: list[Row], modes: dict[str, str] | None) -> Row:
        return await self.store.read(lambda conn: compare_table(conn, jobs, modes))

    async def runs_metrics(self, rows: list[Row], names: list[str] | None, max_points: int,
                           layout: str) -> bytes:
        return await self.store.read(lambda conn: runs_metrics_json(
            conn, self.series_cache, rows, names, max_points, layout))

    async def logs(self, query: LogQuery) -> list[Row]:
        return await run_query(self.store, query)

    # -- sweeps ---

    async def insert_sweep(self, sweep: Row) -> None:
        await self.store.write(lambda conn: statements.insert_sweep(conn, sweep))

    async def sweep(self, sweep_id: str) -> tuple[Row | None, list[str], dict[str, int]]:
        """A sweep's row, its jobs' ids and how many of them are in each state."""
        def read(conn: sqlite3.Connection) -> tuple[Row | None, list[str], dict[str, int]]:
            return (statements.get_sweep(conn, sweep_id),
                    statements.sweep_job_ids(conn, sweep_id),
                    statements.sweep_states(conn, [sweep_id]).get(sweep_id, {}))

        return await self.store.read(read)

    async def sweeps_page(self, limit: int, offset: int
                          ) -> tuple[list[Row], int, dict[str, dict[str, int]]]:
        def read(conn: sqlite3.Connection) -> tuple[list[Row], int, dict[str, dict[str, int]]]:
            sweeps, total = statements.list_sweeps(conn, limit, offset)
            return sweeps, total, statements.sweep_states(conn, [s["id"] for s in sweeps])

        return await self.store.read(read)
