"""Metric history: a full-resolution ring in memory, downsampled buckets in the store.

The ring keeps every sample of the last ``ring_seconds`` (15 minutes) per series. Each
time a sample crosses a bucket boundary (``bucket_seconds``, 10 s), the finished bucket
of every persisted series is reduced to count/min/mean/max/last with the one
downsampling module (``server_ext/downsample.py``) and written to ``monitoring_history``, and
merged into the series' wider bucket (``rollup_seconds``, 60 s) of the same table; rows
older than ``keep_hours`` (24 h) are pruned. A restart keeps the buckets; the partial
bucket is written at stop and merged with what the next server adds to it.

Queries (``GET monitoring/metrics``) read the ring for recent data and, for older data,
the widest stored buckets not wider than the step (a day at 1,000 points reads 1,440
one-minute rows per series, not 8,640), merged onto one grid of ``step`` seconds laid by
the same module (``aligned_grid``). Whatever the range and ``step`` asked, a series has at
most ``max_points`` points: a finer step is widened to ``span / max_points``.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..downsample import Grid, aligned_grid, downsample
from .series import CATALOG, SeriesKey, key_text, names_matching, unit_of

DEFAULT_MAX_POINTS = 1000
MAX_POINTS_LIMIT = 10_000


class History:
    """Ring buffer plus persisted buckets; lives on the event loop."""

    def __init__(self, store: Any, *, interval: float, ring_seconds: float = 900.0,
                 bucket_seconds: float = 10.0, rollup_seconds: float = 60.0,
                 keep_hours: float = 24.0,
                 persisted: Callable[[str], bool] | None = None) -> None:
        self.store = store
        self.interval = interval
        self.ring_seconds = ring_seconds
        self.bucket_seconds = bucket_seconds
        rollup = math.ceil(rollup_seconds / bucket_seconds) * bucket_seconds
        self.widths = (bucket_seconds, rollup) if rollup > bucket_seconds else (bucket_seconds,)
        self.keep_seconds = keep_hours * 3600.0
        self.persisted = persisted or (lambda name: CATALOG.get(name, None) is None
                                       or CATALOG[name].persisted)
        self.ring: dict[SeriesKey, deque[tuple[float, float]]] = {}
        self._maxlen = math.ceil(ring_seconds / interval) + 5
        self.series_ids: dict[SeriesKey, int] = {}
        self._next_series_id = 1
        self._bucket_start: float | None = None
        self.started_at = time.time()
        #: what this server has written: everything before this time
        self.flushed_until = self.started_at
        self.flushes = 0
        self.rows_written = 0
        self._last_prune = 0.0

    @property
    def writable(self) -> bool:
        return self.store is not None and not self.store.read_only

    async def load(self) -> None:
        """Read the known series (ids) and prune what is older than the kept history."""
        if self.store is None:
            return
        rows = await self.store.read(lambda conn: conn.execute(
            "SELECT id, name, labels FROM monitoring_series").fetchall())
        for row in rows:
            labels = tuple(sorted(orjson.loads(row[2]).items()))
            self.series_ids[(row[1], labels)] = row[0]
        self._next_series_id = max(self.series_ids.values(), default=0) + 1
        self.prune()

    # -- adding ------------------------------------------------------------------------------

    def add(self, ts: float, values: dict[SeriesKey, float]) -> None:
        """Append one sample's values; write the previous bucket when ``ts`` starts a new one."""
        ring = self.ring
        for key, value in values.items():
            points = ring.get(key)
            if points is None:
                points = ring[key] = deque(maxlen=self._maxlen)
            points.append((ts, value))
        bucket = math.floor(ts / self.bucket_seconds) * self.bucket_seconds
        if self._bucket_start is None:
            self._bucket_start = bucket
        elif bucket > self._bucket_start:
            self._flush(self._bucket_start, bucket)
            self._bucket_start = self.flushed_until = bucket
            self._trim(ts)
            if ts - self._last_prune > 3600:
                self.prune()

    def flush_partial(self) -> None:
        """Write the bucket being filled (at stop); the next server merges into it."""
        if self._bucket_start is not None:
            self._flush(self._bucket_start, math.inf)
            self._bucket_start = None

    def _trim(self, now: float) -> None:
        """Drop ring points older than the ring's span, and series with none left."""
        cutoff = now - self.ring_seconds
        for key in list(self.ring):
            points = self.ring[key]
            while points and points[0][0] < cutoff:
                points.popleft()
            if not points:
                del self.ring[key]

    def _flush(self, start: float, end: float) -> None:
        if not self.writable:
            return
        width = self.bucket_seconds
        rows: list[tuple[Any, ...]] = []
        new_series: list[tuple[int, str, str, str]] = []
        for key, points in self.ring.items():
            if not self.persisted(key[0]):
                continue
            chosen = _between(points, start, end)
            if not chosen:
                continue
            series_id = self.series_ids.get(key)
            if series_id is None:
                series_id = self.series_ids[key] = self._next_series_id
                self._next_series_id += 1
                new_series.append((series_id, key_text(*key), key[0],
                                   orjson.dumps(dict(key[1])).decode()))
            grid = aligned_grid(chosen[0][0], chosen[-1][0], width)
            for bucket in downsample(chosen, grid=grid):
                row = (bucket["count"], bucket["min"], bucket["max"], bucket["mean"],
                       bucket["last"])
                for tier in self.widths:  # the bucket, and merged into its wider one
                    rows.append((series_id, tier, math.floor(bucket["x"] / tier) * tier,
                                 *row))
        if not rows:
            return
        self.flushes += 1
        self.rows_written += len(rows)
        self.store.write_nowait(lambda conn: _write_rows(conn, new_series, rows))

    def prune(self) -> None:
        """Delete stored buckets older than the kept history (queued to the writer)."""
        self._last_prune = time.time()
        if not self.writable:
            return
        cutoff = time.time() - self.keep_seconds
        self.store.write_nowait(lambda conn: conn.execute(
            "DELETE FROM monitoring_history WHERE t < ?", (cutoff,)))

    # -- reading -----------------------------------------------------------------------------

    def latest(self, key: SeriesKey) -> float | None:
        points = self.ring.get(key)
        return points[-1][1] if points else None

    def window(self, key: SeriesKey, seconds: float, now: float) -> list[float]:
        """Values of a series in the last ``seconds`` (for rule aggregations)."""
        points = self.ring.get(key)
        if not points:
            return []
        return [v for _, v in _between(points, now - seconds, math.inf)]

    def names(self) -> list[str]:
        return sorted({k[0] for k in self.ring} | {k[0] for k in self.series_ids})

    async def query(self, *, names: Iterable[str] | None, since: float | None = None,
                    until: float | None = None, step: float | None = None,
                    max_points: int | None = None) -> dict[str, Any]:
        """Series of the given names (shell patterns) between ``since`` and ``until``."""
        now = time.time()
        until = now if until is None else min(until, now)
        since = now - 300.0 if since is None else since
        since = min(since, until)
        max_points = max(1, min(max_points or DEFAULT_MAX_POINTS, MAX_POINTS_LIMIT))
        span = max(until - since, 0.0)
        # a step finer than span / max_points would return more points than allowed
        step = max(float(step) if step else 0.0, span / max_points, self.interval)
        raw = step <= self.interval * 1.5 and span / self.interval < max_points
        cover_start = max(self.started_at, now - self.ring_seconds)
        use_store = self.store is not None and since < cover_start
        if use_store:
            raw = False
            step = max(step, self.bucket_seconds) if span > self.ring_seconds else step
        # the widest stored buckets not wider than the step; rows that end before what
        # this server has written, ring points from there on (nothing counted twice)
        width = max((w for w in self.widths if w <= step), default=self.widths[0])
        boundary = (math.floor(min(self.flushed_until, now) / width) * width
                    if use_store else -math.inf)
        ring_from = boundary if use_store else since
        wanted = list(names) if names else ["*"]
        chosen_names = set(names_matching(wanted, self.names()))
        keys = sorted({k for k in (*self.ring, *self.series_ids) if k[0] in chosen_names})
        grid = aligned_grid(since, until, step)
        while not raw and grid.buckets > max_points:
            step *= 1.02  # aligned buckets may add one at each end
            grid = aligned_grid(since, until, step)
        stored: dict[SeriesKey, dict[int, dict[str, Any]]] = {}
        if use_store:
            ids = {k: self.series_ids[k] for k in keys if k in self.series_ids}
            stored = await self.store.read(
                lambda conn: _stored_buckets(conn, ids, width, grid, since, boundary))
        series = []
        for key in keys:
            points = self.ring.get(key)
            recent = _between(points, max(since, ring_from), until + 1e-9) if points else []
            if raw:
                if not recent:
                    continue
                recent = recent[-max_points:]  # a late sample may add one
                series.append({**_describe(key), "t": [round(t, 3) for t, _ in recent],
                               "value": [v for _, v in recent]})
                continue
            merged = _merge(grid, stored.get(key, {}), recent)
            if not merged:
                continue
            series.append({**_describe(key), "t": [b[0] for b in merged],
                           "value": [b[1] for b in merged], "min": [b[2] for b in merged],
                           "max": [b[3] for b in merged]})
        return {"since": since, "until": until, "step": None if raw else grid.width,
                "interval": self.interval, "resolution": "raw" if raw else "buckets",
                "names": sorted(chosen_names), "series": series}


def _describe(key: SeriesKey) -> dict[str, Any]:
    return {"name": key[0], "labels": dict(key[1]), "unit": unit_of(key[0])}


def _between(points: deque[tuple[float, float]] | list[tuple[float, float]], start: float,
             end: float) -> list[tuple[float, float]]:
    """Points with ``start <= t < end`` (points are in time order; read from the end)."""
    out = []
    for t, value in reversed(points):
        if t < start:
            break
        if t < end:
            out.append((t, value))
    out.reverse()
    return out


def _write_rows(conn: sqlite3.Connection, new_series: list[tuple[int, str, str, str]],
                rows: list[tuple[Any, ...]]) -> None:
    if new_series:
        conn.executemany("INSERT OR IGNORE INTO monitoring_series (id, key, name, labels) "
                         "VALUES (?, ?, ?, ?)", new_series)
    conn.executemany(
        "INSERT INTO monitoring_history (series, width, t, n, min, max, mean, last) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (series, width, t) DO UPDATE SET "
        "mean = (COALESCE(mean, 0) * n + COALESCE(excluded.mean, 0) * excluded.n) "
        "/ (n + excluded.n), n = n + excluded.n, "
        "min = MIN(COALESCE(min, excluded.min), COALESCE(excluded.min, min)), "
        "max = MAX(COALESCE(max, excluded.max), COALESCE(excluded.max, max)), "
        "last = excluded.last", rows)


def _stored_buckets(conn: sqlite3.Connection, ids: dict[SeriesKey, int], width: float,
                    grid: Grid, since: float, before: float
                    ) -> dict[SeriesKey, dict[int, dict[str, Any]]]:
    """Stored buckets of each series merged onto ``grid``, in one grouped query.

    The rows are already buckets (count, min, max, mean), so they merge as buckets: min of
    the minima, max of the maxima, count-weighted mean. The grid and its bucket index are
    the downsampling module's (``aligned_grid``, the same formula as ``downsample_sql``).
    """
    if not ids:
        return {}
    by_id = {series_id: key for key, series_id in ids.items()}
    marks = ",".join("?" * len(by_id))
    if grid.width <= 0:
        index_sql, index_params = "0", ()
    else:
        index_sql = "MIN(MAX(CAST((t - ?) / ? AS INTEGER), 0), ?)"
        index_params = (float(grid.x0), float(grid.width), grid.buckets - 1)
    rows = conn.execute(
        f"SELECT series, {index_sql} AS b, SUM(n), MIN(min), MAX(max), "
        "SUM(mean * n), SUM(CASE WHEN mean IS NULL THEN 0 ELSE n END) "
        f"FROM monitoring_history WHERE series IN ({marks}) AND width = ? AND t >= ? "
        "AND t < ? GROUP BY series, b ORDER BY series, b",
        (*index_params, *by_id, width, math.floor(since / width) * width, before)).fetchall()
    out: dict[SeriesKey, dict[int, dict[str, Any]]] = {}
    for series_id, index, count, low, high, weighted, weight in rows:
        out.setdefault(by_id[series_id], {})[index] = {
            "count": count, "min": low, "max": high,
            "mean": weighted / weight if weight else None}
    return out


def _merge(grid: Grid, stored: dict[int, dict[str, Any]], recent: list[tuple[float, float]]
           ) -> list[tuple[float, Any, Any, Any]]:
    """(t, mean, min, max) per grid bucket from stored buckets and ring points."""
    merged: dict[int, dict[str, Any]] = {}
    for index, bucket in stored.items():
        merged[index] = {"n": bucket["count"], "mean": bucket["mean"],
                         "min": bucket["min"], "max": bucket["max"]}
    for bucket in downsample(recent, grid=grid) if recent else []:
        index = grid.index(bucket["x"])
        entry = {"n": bucket["count"], "mean": bucket["mean"], "min": bucket["min"],
                 "max": bucket["max"]}
        if index in merged:
            entry = _combine(merged[index], entry)
        merged[index] = entry
    width = grid.width
    return [(round(grid.x0 + index * width, 3), e["mean"], e["min"], e["max"])
            for index, e in sorted(merged.items())]


def _combine(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    n = a["n"] + b["n"]
    if a["mean"] is None or b["mean"] is None:
        mean = a["mean"] if b["mean"] is None else b["mean"]
    else:
        mean = (a["mean"] * a["n"] + b["mean"] * b["n"]) / n if n else None
    lows = [v for v in (a["min"], b["min"]) if v is not None]
    highs = [v for v in (a["max"], b["max"]) if v is not None]
    return {"n": n, "mean": mean, "min": min(lows) if lows else None,
            "max": max(highs) if highs else None}

