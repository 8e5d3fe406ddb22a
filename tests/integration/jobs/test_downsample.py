"""The downsampling module: buckets in memory and in SQLite agree and are right."""

from __future__ import annotations

import math
import random
import sqlite3

import pytest

from notebench.server.downsample import (
    SqlSeries,
    aligned_grid,
    downsample,
    downsample_sql,
    grid_for,
)
from notebench.server.logs.query import collapse_cr


def table(points: list[tuple[float, object]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE p (idx INTEGER, x, value REAL, special TEXT)")
    rows = []
    for i, (x, v) in enumerate(points):
        special = v if isinstance(v, str) else None
        rows.append((i, x, None if special else v, special))
    conn.executemany("INSERT INTO p VALUES (?, ?, ?, ?)", rows)
    return conn


def series() -> SqlSeries:
    return SqlSeries("p", (), x="x")


def expected(points, grid):
    buckets: dict[int, list] = {}
    for x, v in points:
        buckets.setdefault(grid.index(x), []).append((x, v))
    out = []
    for b in sorted(buckets):
        pts = buckets[b]
        finite = [v for _, v in pts if not isinstance(v, str)]
        last = pts[-1][1]
        out.append({"count": len(pts), "min": min(finite) if finite else None,
                    "max": max(finite) if finite else None,
                    "mean": sum(finite) / len(finite) if finite else None,
                    "last": None if isinstance(last, str) else last,
                    "nonfinite": len(pts) - len(finite),
                    "last_nonfinite": last if isinstance(last, str) else None,
                    "x": pts[0][0], "x_last": pts[-1][0]})
    return out


def same(actual, wanted):
    assert len(actual) == len(wanted)
    for a, w in zip(actual, wanted, strict=True):
        for key, value in w.items():
            if isinstance(value, float):
                assert a[key] == pytest.approx(value, rel=1e-9), key
            else:
                assert a[key] == value, key


@pytest.mark.parametrize("n,max_points", [(1000, 10), (1000, 7), (999, 1000), (5, 3),
                                          (1, 1), (10_000, 1000)])
def test_integer_axis_buckets_are_right_and_bounded(n, max_points):
    rng = random.Random(n)
    points = []
    for step in range(n):
        value = rng.uniform(-5, 5)
        if rng.random() < 0.03:
            value = rng.choice(["nan", "inf", "-inf"])
        points.append((step, value))
    grid = grid_for(0, n - 1, max_points, integer=True)
    memory = downsample(points, max_points, integer=True)
    stored = downsample_sql(table(points), series(), max_points, integer=True)
    assert len(memory) <= max_points and len(stored) <= max_points
    assert sum(b["count"] for b in stored) == n
    if n > max_points:
        same(memory, expected(points, grid))
    same(stored, [{k: v for k, v in b.items()} for b in memory])
    for bucket in stored:
        for key in ("min", "max", "mean", "last"):
            assert bucket[key] is None or math.isfinite(bucket[key])


def test_float_axis_with_repeated_x_and_the_last_point_by_order():
    points = [(0.0, 1.0), (0.5, 2.0), (0.5, 3.0), (1.0, "nan"), (2.0, 4.0), (2.0, 5.0),
              (9.75, -1.0), (10.0, 7.0)]
    memory = downsample(points, 4)
    stored = downsample_sql(table(points), series(), 4)
    assert len(stored) <= 4
    same(stored, memory)
    first = stored[0]
    assert (first["count"], first["min"], first["max"], first["last"]) == (6, 1.0, 5.0, 5.0)
    assert first["nonfinite"] == 1 and first["mean"] == pytest.approx(3.0)
    assert stored[-1]["last"] == 7.0 and stored[-1]["x_last"] == 10.0


def test_point_by_point_when_small_and_aligned_history_buckets():
    points = [(1, 2.0), (2, "inf"), (3, 4.0)]
    raw = downsample_sql(table(points), series(), 10, integer=True)
    assert [b["count"] for b in raw] == [1, 1, 1]
    assert raw[1]["last"] is None and raw[1]["last_nonfinite"] == "inf"
    history = [(t, float(t % 10)) for t in range(1000, 1100)]
    grid = aligned_grid(1000, 1099, 30.0)
    buckets = downsample(history, grid=grid)
    assert [b["x"] for b in buckets] == [1000, 1020, 1050, 1080]
    assert downsample_sql(table(history), series(), grid=grid) == buckets


def test_carriage_returns_collapse_to_the_last_state():
    assert collapse_cr("10%\r50%\r100%") == "100%"
    assert collapse_cr("\r 1/3\r 3/3\r") == " 3/3"
    assert collapse_cr("a\rb\nc\rd") == "b\nd"
    assert collapse_cr("plain") == "plain"
