"""Job rows, metric points, checkpoints and tail offsets in the store (SQL only).

Functions take a connection: the service runs them on the store's writer thread
(``store.write``) or a reader thread (``store.read``), never on the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..downsample import SqlSeries, downsample_sql
from . import series

JSON_FIELDS = ("parameters", "resolved", "auto", "resources", "tags", "progress",
               "latest_metrics", "error", "processes", "model", "final_metrics", "hparams")
COLUMNS = (
    "id", "kind", "name", "state", "reason", "template", "notebook_path", "notebook_hash",
    "kernel_name", "job_dir", "parameters", "resolved", "auto", "resources", "priority",
    "tags", "timeout", "parent_id", "resume_from", "created", "started", "ended", "updated",
    "active_seconds", "segment_start", "boot_id", "last_metric_active", "progress",
    "latest_metrics", "error", "processes", "stop_requested", "artifact_count", "model",
    "final_metrics", "exit_code", "notes", "starred", "sweep_id", "cloned_from", "trashed_at",
    "disk_bytes", "retries", "hparams",
)
#: ``sort=`` keys of the job list -> their column
SORT_KEYS = {"created": "created", "started": "started", "ended": "ended", "name": "name",
             "state": "state", "duration": "active_seconds", "disk": "disk_bytes",
             "starred": "starred", "updated": "updated", "priority": "priority"}


def _encode(field: str, value: Any) -> Any:
    if field in JSON_FIELDS:
        return None if value is None else orjson.dumps(value).decode()
    return value


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for field in JSON_FIELDS:
        raw = out.get(field)
        if raw is not None:
            out[field] = orjson.loads(raw)
    return out


# -- jobs ---------------------------------------------------------------------------------


def insert_job(conn: sqlite3.Connection, job: dict[str, Any]) -> None:
    fields = [f for f in COLUMNS if f in job]
    conn.execute(
        f"INSERT INTO jobs ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
        [_encode(f, job[f]) for f in fields],
    )


def update_job(conn: sqlite3.Connection, job_id: str, **fields: Any) -> None:
    if not fields:
        return
    assigns = ", ".join(f"{name} = ?" for name in fields)
    conn.execute(f"UPDATE jobs SET {assigns} WHERE id = ?",
                 [*(_encode(k, v) for k, v in fields.items()), job_id])


def get_job(conn: sqlite3.Connection, job_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT rowid AS seq, * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else _decode(row)


def jobs_in_states(conn: sqlite3.Connection, states: Iterable[str]) -> list[dict[str, Any]]:
    states = list(states)
    marks = ",".join("?" * len(states))
    rows = conn.execute(
        f"SELECT rowid AS seq, * FROM jobs WHERE state IN ({marks}) ORDER BY created, rowid",
        states).fetchall()
    return [_decode(r) for r in rows]


def list_jobs(conn: sqlite3.Connection, *, states: list[str] | None = None,
              tag: str | None = None, kind: str | None = None, template: str | None = None,
              parent_id: str | None = None, limit: int = 100, offset: int = 0,
              starred: bool | None = None, sweep_id: str | None = None,
              created_after: float | None = None, created_before: float | None = None,
              name_contains: str | None = None, sort: str = "-created",
              trashed: bool = False) -> tuple[list[dict[str, Any]], int]:
    """A page of jobs (newest first unless ``sort`` says otherwise) and the number of matches.

    ``sort`` is a key of ``SORT_KEYS``, ``-`` in front for descending. Jobs in the trash
    are listed only with ``trashed=True`` (and then only they).
    """
    where: list[str] = ["trashed_at IS NOT NULL" if trashed else "trashed_at IS NULL"]
    params: list[Any] = []
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        params += states
    if tag is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE json_each.value = ?)")
        params.append(tag)
    equal = {"kind": kind, "template": template, "parent_id": parent_id,
             "starred": None if starred is None else int(starred), "sweep_id": sweep_id}
    for column, value in equal.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if created_after is not None:
        where.append("created >= ?")
        params.append(created_after)
    if created_before is not None:
        where.append("created < ?")
        params.append(created_before)
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("name LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    descending = sort.startswith("-")
    column = SORT_KEYS[sort.lstrip("-")]
    direction = "DESC" if descending else "ASC"
    # NULLs (a queued job's start, an unmeasured disk use) go last either way
    order = (f"{column} IS NULL, {column} {direction}, created {direction}, "
             f"rowid {direction}")
    clause = " WHERE " + " AND ".join(where)
    total = conn.execute(f"SELECT COUNT(*) FROM jobs{clause}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT rowid AS seq, * FROM jobs{clause} ORDER BY {order} "
        "LIMIT ? OFFSET ?", [*params, limit, offset]).fetchall()
    return [_decode(r) for r in rows], int(total)


def jobs_by_ids(conn: sqlite3.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Id -> row of the jobs that exist among ``ids``."""
    if not ids:
        return {}
    rows = conn.execute(f"SELECT rowid AS seq, * FROM jobs WHERE id IN "
                        f"({','.join('?' * len(ids))})", ids).fetchall()
    return {r["id"]: _decode(r) for r in rows}


def interactive_job_ids(conn: sqlite3.Connection) -> list[str]:
    """Ids of every interactive run ever registered (the tailer skips their folders)."""
    return [r[0] for r in conn.execute("SELECT id FROM jobs WHERE kind = 'interactive'")]


def expired_job_ids(conn: sqlite3.Connection, cutoff: float, final: Iterable[str]
                    ) -> list[str]:
    """Unstarred jobs not in the trash that ended (in a ``final`` state) by ``cutoff``."""
    final = sorted(final)
    return [r[0] for r in conn.execute(
        f"SELECT id FROM jobs WHERE trashed_at IS NULL AND starred = 0 AND ended IS NOT NULL "
        f"AND ended <= ? AND state IN ({','.join('?' * len(final))})", (cutoff, *final))]


def delete_job_rows(conn: sqlite3.Connection, job_id: str) -> None:
    """Forget a job for good: its row, points, checkpoints and offsets."""
    for table in ("job_metrics", "job_series", "job_series_chunks", "job_checkpoints",
                  "job_offsets"):
        conn.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


# -- sweeps -------------------------------------------------------------------------------


def insert_sweep(conn: sqlite3.Connection, sweep: dict[str, Any]) -> None:
    conn.execute("INSERT INTO job_sweeps (id, name, created, spec) VALUES (?, ?, ?, ?)",
                 (sweep["id"], sweep["name"], sweep["created"],
                  orjson.dumps(sweep["spec"]).decode()))


def get_sweep(conn: sqlite3.Connection, sweep_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT id, name, created, spec FROM job_sweeps WHERE id = ?",
                       (sweep_id,)).fetchone()
    if row is None:
        return None
    return {"id": row[0], "name": row[1], "created": row[2], "spec": orjson.loads(row[3])}


def list_sweeps(conn: sqlite3.Connection, limit: int, offset: int
                ) -> tuple[list[dict[str, Any]], int]:
    total = conn.execute("SELECT COUNT(*) FROM job_sweeps").fetchone()[0]
    rows = conn.execute("SELECT id, name, created, spec FROM job_sweeps ORDER BY created DESC, "
                        "id LIMIT ? OFFSET ?", (limit, offset)).fetchall()
    return [{"id": r[0], "name": r[1], "created": r[2], "spec": orjson.loads(r[3])}
            for r in rows], int(total)


def sweep_states(conn: sqlite3.Connection, sweep_ids: list[str]) -> dict[str, dict[str, int]]:
    """Sweep -> state -> number of its jobs (trashed ones left out)."""
    if not sweep_ids:
        return {}
    rows = conn.execute(
        f"SELECT sweep_id, state, COUNT(*) FROM jobs WHERE sweep_id IN "
        f"({','.join('?' * len(sweep_ids))}) AND trashed_at IS NULL GROUP BY sweep_id, state",
        sweep_ids).fetchall()
    out: dict[str, dict[str, int]] = {}
    for sweep_id, state, count in rows:
        out.setdefault(sweep_id, {})[state] = int(count)
    return out


def sweep_job_ids(conn: sqlite3.Connection, sweep_id: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT id FROM jobs WHERE sweep_id = ? AND trashed_at IS NULL ORDER BY created, rowid",
        (sweep_id,)).fetchall()]


def template_durations(conn: sqlite3.Connection) -> dict[str, tuple[float, int]]:
    """Template -> (median active seconds of its succeeded runs, number of runs)."""
    rows = conn.execute(
        "SELECT template, active_seconds FROM jobs WHERE template IS NOT NULL "
        "AND state = 'succeeded' ORDER BY template, active_seconds").fetchall()
    grouped: dict[str, list[float]] = {}
    for template, seconds in rows:
        grouped.setdefault(template, []).append(float(seconds or 0))
    return {t: (values[len(values) // 2], len(values)) for t, values in grouped.items()}


# -- metrics ------------------------------------------------------------------------------

MetricRow = tuple[str, str, int, int | None, float, float | None, str | None]


def insert_metrics(conn: sqlite3.Connection, rows: list[MetricRow]) -> int:
    """Rows of (job_id, name, idx, step, t, value, special), with each series' summary and
    packed arrays (``series.append``: points at or before a series' last stored index are
    skipped). Returns how many points were new."""
    groups: dict[tuple[str, str], list[MetricRow]] = {}
    for row in rows:
        group = groups.get((row[0], row[1]))
        if group is None:
            groups[(row[0], row[1])] = [row]
        else:
            group.append(row)
    return sum(series.append(conn, job_id, name, group)
               for (job_id, name), group in groups.items())


def insert_series(conn: sqlite3.Connection, job_id: str, name: str,
                  rows: list[MetricRow]) -> int:
    """``insert_metrics`` of rows already grouped: all of one series (``job_id``, ``name``)."""
    return series.append(conn, job_id, name, rows) if rows else 0


def metric_counters(conn: sqlite3.Connection, job_id: str) -> dict[str, int]:
    """Name -> the next index of each series of a job."""
    rows = conn.execute("SELECT name, last_idx FROM job_series WHERE job_id = ?",
                        (job_id,)).fetchall()
    return {name: int(last) + 1 for name, last in rows}


def metric_names(conn: sqlite3.Connection, job_id: str) -> dict[str, int]:
    """Name -> number of points, of each series of a job (by name)."""
    rows = conn.execute("SELECT name, count FROM job_series WHERE job_id = ? ORDER BY name",
                        (job_id,)).fetchall()
    return {name: int(count) for name, count in rows}


def metric_series(conn: sqlite3.Connection, job_id: str, name: str, *, axis: str = "step",
                  since: float | None = None, max_points: int | None = None
                  ) -> tuple[list[dict[str, Any]], int]:
    """The downsampled buckets of one series and how many points they cover."""
    x = "COALESCE(step, idx)" if axis == "step" else "t"
    where = "job_id = ? AND name = ?"
    params: tuple[Any, ...] = (job_id, name)
    if since is not None:
        where += " AND t > ?"
        params = (*params, since)
    source = SqlSeries(f"job_metrics WHERE {where}", params, x=x)
    buckets = downsample_sql(conn, source, max_points, integer=axis == "step")
    if since is None:
        row = conn.execute("SELECT count FROM job_series WHERE job_id = ? AND name = ?",
                           (job_id, name)).fetchone()
        return buckets, int(row[0]) if row else 0
    count = conn.execute(f"SELECT COUNT(*) FROM job_metrics WHERE {where}", params).fetchone()[0]
    return buckets, int(count)


def _points_filter(job_id: str, names: list[str] | None, since: float | None
                   ) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of a job's raw points, by name and time."""
    where = "job_id = ?"
    params: list[Any] = [job_id]
    if names:
        where += f" AND name IN ({','.join('?' * len(names))})"
        params += names
    if since is not None:
        where += " AND t > ?"
        params.append(since)
    return where, params


def metric_points_page(conn: sqlite3.Connection, job_id: str, names: list[str] | None,
                       since: float | None, after: tuple[str, int] | None, limit: int
                       ) -> list[tuple[Any, ...]]:
    """``limit`` raw points (as ``metric_points``) after the point ``after`` (name, idx):
    a page of a long export, each one a primary-key range read."""
    where, params = _points_filter(job_id, names, since)
    if after is not None:
        where += " AND (name, idx) > (?, ?)"
        params += list(after)
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor.execute(f"SELECT name, idx, step, t, value, special FROM job_metrics WHERE "
                          f"{where} ORDER BY name, idx LIMIT ?", [*params, limit]).fetchall()


def metric_points(conn: sqlite3.Connection, job_id: str, names: list[str] | None = None,
                  since: float | None = None, batch: int = 5000) -> Iterator[tuple[Any, ...]]:
    """Raw points (for CSV) as plain tuples, by name then order, fetched ``batch`` rows at
    a time: a million points are never held at once (nor tracked by the GC as rows)."""
    where, params = _points_filter(job_id, names, since)
    cursor = conn.cursor()
    cursor.row_factory = None
    cursor.execute(f"SELECT name, idx, step, t, value, special FROM job_metrics WHERE {where} "
                   "ORDER BY name, idx", params)
    while True:
        rows = cursor.fetchmany(batch)
        if not rows:
            return
        yield from rows


# -- checkpoints and offsets -------------------------------------------------------------


def insert_checkpoint(conn: sqlite3.Connection, job_id: str, record: dict[str, Any]) -> None:
    row = conn.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM job_checkpoints WHERE job_id = ?",
                       (job_id,)).fetchone()
    conn.execute(
        "INSERT INTO job_checkpoints (job_id, idx, t, path, epoch, step, metrics, best) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (job_id, row[0], record.get("t") or 0.0, str(record.get("path") or ""),
         _int_or_none(record.get("epoch")), _int_or_none(record.get("step")),
         orjson.dumps(record.get("metrics") or {}).decode(), 1 if record.get("best") else 0))


def checkpoints(conn: sqlite3.Connection, job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT idx, t, path, epoch, step, metrics, best FROM job_checkpoints "
                        "WHERE job_id = ? ORDER BY idx", (job_id,)).fetchall()
    return [{"index": r[0], "t": r[1], "path": r[2], "epoch": r[3], "step": r[4],
             "metrics": orjson.loads(r[5]), "best": bool(r[6])} for r in rows]


def get_offsets(conn: sqlite3.Connection, job_id: str) -> dict[str, int]:
    rows = conn.execute("SELECT file, offset FROM job_offsets WHERE job_id = ?",
                        (job_id,)).fetchall()
    return {f: int(o) for f, o in rows}


def set_offset(conn: sqlite3.Connection, job_id: str, file: str, offset: int) -> None:
    conn.execute(
        "INSERT INTO job_offsets (job_id, file, offset) VALUES (?, ?, ?) "
        "ON CONFLICT(job_id, file) DO UPDATE SET offset = excluded.offset",
        (job_id, file, offset))


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
