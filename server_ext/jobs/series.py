"""Each metric series kept twice more, next to its points: a summary and packed arrays.

``job_metrics`` holds one row per point (the source for CSV, ``since`` queries and the
single-job charts). Comparing 50 runs from those rows means reading every point, so the
same transaction that appends points also keeps, per (job, name):

- a summary row in ``job_series``: count, finite count, the last index, the x range, the
  final value and the best (min and max, with their steps): the compare table reads one
  row per series;
- the points packed as arrays in ``job_series_chunks`` (x as int64, values as float64,
  ``SPECIAL_CODES`` as int8, each a BLOB of up to ``CHUNK_POINTS`` points; the last
  chunk grows until it is full): the multi-run charts read a few BLOBs per series.

A series is append-only: its points come in index order, after its last stored index
(what the tailer writes); rows at or before that index are already stored and skipped.
x is the point's step, or its index when it has none (``COALESCE(step, idx)``).

Functions taking a connection run on the store's writer (``append``) or a reader thread.
"""

from __future__ import annotations

import itertools
import operator
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..downsample import SPECIAL_CODES, special_code

CHUNK_POINTS = 2048  # the last chunk grows in place: at most this much is rewritten per batch
_INSERT_POINTS = ("INSERT OR IGNORE INTO job_metrics (job_id, name, idx, step, t, value, "
                  "special) VALUES (?, ?, ?, ?, ?, ?, ?)")
_IDX, _STEP, _VALUE, _SPECIAL = (operator.itemgetter(k) for k in (2, 3, 5, 6))  # MetricRow
SUMMARY_COLUMNS = ("count", "finite", "last_idx", "x_min", "x_max", "final_value",
                   "final_special", "final_x", "min_value", "min_x", "max_value", "max_x")


@dataclass
class Packed:
    """Points of one series as arrays, in index order."""

    idx: Any
    x: Any
    values: Any  # 0.0 where the point is not finite
    codes: Any  # SPECIAL_CODES indexes

    def __len__(self) -> int:
        return len(self.idx)


# -- writing (the store's writer thread) ---------------------------------------------------


def append(conn: sqlite3.Connection, job_id: str, name: str, rows: Sequence[tuple]) -> int:
    """Store the new points of one series (rows of ``store.MetricRow``); how many were new."""
    summary = conn.execute(f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM job_series "
                           "WHERE job_id = ? AND name = ?", (job_id, name)).fetchone()
    last_idx = -1 if summary is None else int(summary[2])
    rows, packed = _pack(rows, last_idx)
    if not rows:
        return 0
    conn.executemany(_INSERT_POINTS, rows)
    conn.execute(f"INSERT OR REPLACE INTO job_series (job_id, name, {', '.join(SUMMARY_COLUMNS)})"
                 f" VALUES (?, ?, {', '.join('?' * len(SUMMARY_COLUMNS))})",
                 (job_id, name, *_merge(summary, packed)))
    _append_chunks(conn, job_id, name, packed)
    return len(rows)


def _pack(rows: Sequence[tuple], last_idx: int) -> tuple[Sequence[tuple], Packed]:
    """The rows after ``last_idx`` (first of each index, in index order) and their arrays."""
    n = len(rows)
    idx = np.fromiter(map(_IDX, rows), np.int64, n)
    in_order = idx[0] > last_idx and bool(np.all(idx[1:] > idx[:-1]))
    if not in_order:
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        keep = np.concatenate(([True], ordered[1:] != ordered[:-1])) & (ordered > last_idx)
        rows = [rows[i] for i in order[keep].tolist()]
        if not rows:
            return rows, Packed(idx[:0], idx[:0], np.empty(0), np.empty(0, dtype=np.int8))
        n = len(rows)
        idx = np.fromiter(map(_IDX, rows), np.int64, n)
    steps = list(map(_STEP, rows))
    if None in steps:
        x = np.fromiter((i if s is None else s for i, s in zip(idx.tolist(), steps,
                                                               strict=True)), np.int64, n)
    else:
        x = np.fromiter(steps, np.int64, n)
    values = np.array(list(map(_VALUE, rows)), dtype=np.float64)  # None (not finite): NaN
    codes = np.isnan(values).astype(np.int8)
    specials = list(map(_SPECIAL, rows))
    if any(specials):  # the spellings of non-finite values
        for k, special in enumerate(specials):
            if special is not None:
                codes[k] = special_code(special)
    values[codes != 0] = 0.0
    return rows, Packed(idx, x, values, codes)


def _merge(summary: Sequence[Any] | None, p: Packed) -> tuple[Any, ...]:
    """The summary columns after appending ``p`` to the series ``summary`` describes."""
    count, finite, _last, x_min, x_max, _fv, _fs, _fx, min_v, min_x, max_v, max_x = (
        summary if summary is not None else (0, 0, -1, None, None, None, None, None, None,
                                             None, None, None))
    ok = p.codes == 0
    n_finite = int(ok.sum())
    if n_finite:
        clean = np.where(ok, p.values, np.nan)
        low, high = int(np.nanargmin(clean)), int(np.nanargmax(clean))  # first occurrences
        if min_v is None or clean[low] < min_v:
            min_v, min_x = float(clean[low]), int(p.x[low])
        if max_v is None or clean[high] > max_v:
            max_v, max_x = float(clean[high]), int(p.x[high])
    lo, hi = int(p.x.min()), int(p.x.max())
    code = int(p.codes[-1])
    return (int(count) + len(p), int(finite) + n_finite, int(p.idx[-1]),
            lo if x_min is None else min(int(x_min), lo),
            hi if x_max is None else max(int(x_max), hi),
            None if code else float(p.values[-1]), SPECIAL_CODES[code], int(p.x[-1]),
            min_v, min_x, max_v, max_x)


def _append_chunks(conn: sqlite3.Connection, job_id: str, name: str, p: Packed) -> None:
    """Pack the points into the series' chunks: the last one grows, then new ones."""
    breaks = np.flatnonzero(p.idx[1:] - p.idx[:-1] != 1) + 1
    bounds = [0, *breaks.tolist(), len(p)]
    last = conn.execute("SELECT rowid, first_idx, n, x, v, s FROM job_series_chunks WHERE "
                        "job_id = ? AND name = ? ORDER BY first_idx DESC LIMIT 1",
                        (job_id, name)).fetchone()
    for a, b in itertools.pairwise(bounds):
        first = int(p.idx[a])
        if last is not None and last[2] < CHUNK_POINTS and last[1] + last[2] == first:
            take = min(CHUNK_POINTS - last[2], b - a)
            rowid, start, n, xb, vb, sb = last
            xb += p.x[a:a + take].tobytes()
            vb += p.values[a:a + take].tobytes()
            sb += p.codes[a:a + take].tobytes()
            conn.execute("UPDATE job_series_chunks SET n = ?, x = ?, v = ?, s = ? "
                         "WHERE rowid = ?", (n + take, xb, vb, sb, rowid))
            last = (rowid, start, n + take, xb, vb, sb)
            a += take
        while a < b:
            end = min(b, a + CHUNK_POINTS)
            chunk = (int(p.idx[a]), end - a, p.x[a:end].tobytes(), p.values[a:end].tobytes(),
                     p.codes[a:end].tobytes())
            cursor = conn.execute("INSERT OR REPLACE INTO job_series_chunks (job_id, name, "
                                  "first_idx, n, x, v, s) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  (job_id, name, *chunk))
            last = (cursor.lastrowid, *chunk)
            a = end


# -- reading (reader threads) ------------------------------------------------------------


def summaries(conn: sqlite3.Connection, job_ids: Sequence[str]
              ) -> dict[str, dict[str, dict[str, Any]]]:
    """Job -> name -> summary columns, for the series of ``job_ids`` (names in order)."""
    out: dict[str, dict[str, dict[str, Any]]] = {j: {} for j in job_ids}
    if not job_ids:
        return out
    rows = conn.execute(
        f"SELECT job_id, name, {', '.join(SUMMARY_COLUMNS)} FROM job_series WHERE job_id IN "
        f"({','.join('?' * len(job_ids))}) ORDER BY job_id, name", list(job_ids)).fetchall()
    for row in rows:
        out[row[0]][row[1]] = dict(zip(SUMMARY_COLUMNS, tuple(row)[2:], strict=True))
    return out


def read_after(conn: sqlite3.Connection, job_id: str, name: str, start: int,
               tail_first: int, last_idx: int | None = None) -> tuple[list[Packed], int, int]:
    """The points of a series from index ``start`` on, as packed pieces in order.

    ``tail_first`` is the first index of the last chunk read before (it may have grown
    since). Returns the pieces, the next index to read and the new ``tail_first``. Where
    no chunk holds a point (a series stored before the chunks existed), its rows are read;
    ``last_idx`` (the summary's), when known, spares looking for rows after the chunks.
    """
    pieces: list[Packed] = []
    expected = start
    chunks = conn.execute("SELECT first_idx, n, x, v, s FROM job_series_chunks WHERE "
                          "job_id = ? AND name = ? AND first_idx >= ? ORDER BY first_idx",
                          (job_id, name, tail_first)).fetchall()
    for first, n, xb, vb, sb in chunks:
        if first > expected:
            pieces += _rows_between(conn, job_id, name, expected, first)
            expected = first
        skip = expected - first
        if skip < n:
            pieces.append(Packed(np.arange(expected, first + n, dtype=np.int64),
                                 np.frombuffer(xb, dtype=np.int64)[skip:],
                                 np.frombuffer(vb, dtype=np.float64)[skip:],
                                 np.frombuffer(sb, dtype=np.int8)[skip:]))
            expected = first + n
        tail_first = first
    if last_idx is None or expected <= last_idx:
        pieces += _rows_between(conn, job_id, name, expected, None)
    if pieces:
        expected = max(expected, int(pieces[-1].idx[-1]) + 1)
    return pieces, expected, tail_first


def _rows_between(conn: sqlite3.Connection, job_id: str, name: str, start: int,
                  stop: int | None) -> list[Packed]:
    sql = ("SELECT idx, COALESCE(step, idx), value, special FROM job_metrics "
           "WHERE job_id = ? AND name = ? AND idx >= ?")
    params: tuple[Any, ...] = (job_id, name, start)
    if stop is not None:
        sql += " AND idx < ?"
        params += (stop,)
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples
    rows = cursor.execute(sql + " ORDER BY idx", params).fetchall()
    if not rows:
        return []
    idx, x, values, specials = zip(*rows, strict=True)
    v = np.array(values, dtype=np.float64)
    codes = np.isnan(v).astype(np.int8)
    for k, special in enumerate(specials):
        if special is not None:
            codes[k] = special_code(special)
    v[codes != 0] = 0.0
    return [Packed(np.array(idx, dtype=np.int64), np.array(x, dtype=np.int64), v, codes)]
