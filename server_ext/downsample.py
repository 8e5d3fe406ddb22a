"""The one downsampling module: series reduced to buckets with min, max, mean and last.

Used for job metrics (stored in SQLite: ``downsample_sql``) and reusable for monitoring
history (points in memory: ``downsample``). Both give the same buckets for the same
points: bucket ``b`` holds the points with ``x0 + b*width <= x < x0 + (b+1)*width`` (the
last bucket also takes ``x_max``), so a series of N points becomes at most ``max_points``
buckets, and a series with at most ``max_points`` points is returned point by point.

A bucket: ``{"x", "x_last", "count", "min", "max", "mean", "last", "nonfinite",
"last_nonfinite"}`` where ``x``/``x_last`` are the first and last x seen in it, min/max/
mean cover its finite values (``None`` when it has none), ``nonfinite`` counts its NaN and
infinite values and ``last_nonfinite`` names the last value when that one is not finite
("nan", "inf", "-inf"; its ``last`` is then ``None``). Nothing here emits NaN into JSON.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Value = float | int | str | None


def special_of(value: Value) -> str | None:
    """``"nan"``/``"inf"``/``"-inf"`` for a non-finite value (``None`` counts as NaN)."""
    if value is None:
        return "nan"
    if isinstance(value, str):
        return value
    if math.isfinite(value):
        return None
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


@dataclass(frozen=True)
class Grid:
    """Where buckets start, how wide they are and how many there may be."""

    x0: float
    width: float
    buckets: int
    integer: bool = False

    def index(self, x: float) -> int:
        if self.width <= 0:
            return 0
        if self.integer:
            b = int((int(x) - int(self.x0)) // int(self.width))
        else:
            b = int((x - self.x0) / self.width)
        return min(max(b, 0), self.buckets - 1)


def grid_for(x_min: float, x_max: float, max_points: int, *, integer: bool = False) -> Grid:
    """A grid of at most ``max_points`` equal buckets over ``[x_min, x_max]``."""
    max_points = max(1, int(max_points))
    if integer:
        span = int(x_max) - int(x_min) + 1
        width = max(1, math.ceil(span / max_points))
        return Grid(int(x_min), width, math.ceil(span / width), True)
    span = x_max - x_min
    if span <= 0:
        return Grid(x_min, 0.0, 1)
    return Grid(x_min, span / max_points, max_points)


def aligned_grid(x_min: float, x_max: float, width: float) -> Grid:
    """Fixed-width buckets aligned on multiples of ``width`` (e.g. 10 s history buckets)."""
    x0 = math.floor(x_min / width) * width
    return Grid(x0, width, int((x_max - x0) // width) + 1)


class _Acc:
    __slots__ = ("count", "last", "last_special", "max", "min", "nonfinite", "sum",
                 "x", "x_last")

    def __init__(self, x: float) -> None:
        self.x = x
        self.x_last = x
        self.count = 0
        self.nonfinite = 0
        self.sum = 0.0
        self.min: float | None = None
        self.max: float | None = None
        self.last: float | None = None
        self.last_special: str | None = None

    def add(self, x: float, value: Value) -> None:
        self.x_last = x
        self.count += 1
        special = special_of(value)
        if special is not None:
            self.nonfinite += 1
            self.last = None
            self.last_special = special
            return
        v = float(value)  # type: ignore[arg-type]
        self.sum += v
        self.min = v if self.min is None or v < self.min else self.min
        self.max = v if self.max is None or v > self.max else self.max
        self.last = v
        self.last_special = None

    def bucket(self) -> dict[str, Any]:
        finite = self.count - self.nonfinite
        return {"x": self.x, "x_last": self.x_last, "count": self.count, "min": self.min,
                "max": self.max, "mean": self.sum / finite if finite else None,
                "last": self.last, "nonfinite": self.nonfinite,
                "last_nonfinite": self.last_special}


def downsample(points: Sequence[tuple[float, Value]] | Iterable[tuple[float, Value]],
               max_points: int | None = None, *, grid: Grid | None = None,
               integer: bool = False) -> list[dict[str, Any]]:
    """Buckets of ``(x, value)`` points sorted by x (in memory).

    With ``grid`` the buckets are the grid's; else, with ``max_points``, an equal grid
    over the points' range (point by point when there are no more than ``max_points``).
    """
    pts = points if isinstance(points, Sequence) else list(points)
    if not pts:
        return []
    if grid is None:
        if max_points is None or len(pts) <= max_points:
            out = []
            for x, value in pts:
                acc = _Acc(x)
                acc.add(x, value)
                out.append(acc.bucket())
            return out
        grid = grid_for(pts[0][0], pts[-1][0], max_points, integer=integer)
    buckets: list[dict[str, Any]] = []
    current: _Acc | None = None
    current_index = -1
    for x, value in pts:
        index = grid.index(x)
        if current is None or index != current_index:
            if current is not None:
                buckets.append(current.bucket())
            current = _Acc(x)
            current_index = index
        current.add(x, value)
    if current is not None:
        buckets.append(current.bucket())
    return buckets


# -- SQL -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlSeries:
    """Where one series lives: ``FROM``/``WHERE`` text, its parameters and its columns.

    ``x`` is an SQL expression for the axis, ``value`` the column of finite values (NULL
    for non-finite), ``special`` the column naming a non-finite value, ``order`` the
    expression that orders points (ties on x broken by insertion).
    """

    source: str
    params: tuple[Any, ...]
    x: str
    value: str = "value"
    special: str = "special"
    order: str = "idx"


def series_range(conn: sqlite3.Connection, series: SqlSeries) -> tuple[int, Any, Any]:
    """(count, min x, max x) of a series."""
    row = conn.execute(
        f"SELECT COUNT(*), MIN({series.x}), MAX({series.x}) FROM {series.source}",
        series.params,
    ).fetchone()
    return int(row[0]), row[1], row[2]


def downsample_sql(conn: sqlite3.Connection, series: SqlSeries, max_points: int | None = None,
                   *, grid: Grid | None = None, integer: bool = False) -> list[dict[str, Any]]:
    """The buckets of a stored series, aggregated by SQLite (the same as ``downsample``)."""
    count, x_min, x_max = series_range(conn, series)
    if count == 0:
        return []
    if grid is None:
        if max_points is None or count <= max_points:
            rows = conn.execute(
                f"SELECT {series.x}, {series.value}, {series.special} FROM {series.source} "
                f"ORDER BY {series.x}, {series.order}", series.params).fetchall()
            return downsample([(r[0], r[1] if r[2] is None else r[2]) for r in rows])
        grid = grid_for(x_min, x_max, max_points, integer=integer)
    if grid.width <= 0:
        index_sql, index_params = "0", ()
    elif grid.integer:
        index_sql = f"MIN(MAX(({series.x} - ?) / ?, 0), ?)"
        index_params = (int(grid.x0), int(grid.width), grid.buckets - 1)
    else:
        index_sql = f"MIN(MAX(CAST(({series.x} - ?) / ? AS INTEGER), 0), ?)"
        index_params = (float(grid.x0), float(grid.width), grid.buckets - 1)
    inner = (f"SELECT {index_sql} AS b, {series.x} AS x, {series.value} AS v, "
             f"{series.special} AS s, {series.order} AS o FROM {series.source}")
    params = (*index_params, *series.params)
    stats = conn.execute(
        f"SELECT b, COUNT(*), MIN(v), MAX(v), SUM(v), COUNT(v), COUNT(s), MIN(x), MAX(x) "
        f"FROM ({inner}) GROUP BY b ORDER BY b", params).fetchall()
    lasts = conn.execute(
        f"SELECT b, v, s FROM (SELECT b, v, s, ROW_NUMBER() OVER (PARTITION BY b "
        f"ORDER BY x DESC, o DESC) AS rn FROM ({inner})) WHERE rn = 1", params).fetchall()
    last_of = {r[0]: (r[1], r[2]) for r in lasts}
    buckets = []
    for b, n, vmin, vmax, vsum, finite, nonfinite, xfirst, xlast in stats:
        last, special = last_of.get(b, (None, None))
        buckets.append({"x": xfirst, "x_last": xlast, "count": n, "min": vmin, "max": vmax,
                        "mean": vsum / finite if finite else None,
                        "last": last if special is None else None,
                        "nonfinite": nonfinite, "last_nonfinite": special})
    return buckets


# -- arrays (numpy) -----------------------------------------------------------------------

#: codes of ``specials`` arrays: finite, then the non-finite spellings
SPECIAL_CODES = (None, "nan", "inf", "-inf")


def special_code(special: str | None) -> int:
    """The ``SPECIAL_CODES`` index of a stored special (unknown spellings count as NaN)."""
    if special is None:
        return 0
    try:
        return SPECIAL_CODES.index(special)
    except ValueError:
        return 1


def downsample_arrays(x: Any, values: Any, specials: Any, grid: Grid | None = None,
                      max_points: int | None = None, *, integer: bool = False
                      ) -> list[dict[str, Any]]:
    """``downsample`` of points held in numpy arrays (the same buckets, much faster;
    a mean may differ in its last bits: numpy sums pairwise).

    ``x``: the axis, in the points' order of insertion; ``values``: floats (anything for
    non-finite points); ``specials``: ``SPECIAL_CODES`` indexes (0 for finite values).
    Points are ordered by x, ties kept in insertion order, as ``downsample_sql`` does.
    """
    n = len(x)
    if n == 0:
        return []
    if grid is None:
        if max_points is None or n <= max_points:
            x, values, specials = _by_x(x, values, specials)
            return downsample(list(zip(x.tolist(), _with_specials(values, specials),
                                       strict=True)))
        grid = grid_for(x.min().item(), x.max().item(), max_points, integer=integer)
    cols = bucket_columns(x, values, specials, grid)
    nan_to_none = [_nan_to_none(cols[k]) for k in ("min", "max", "mean", "last")]
    return [{"x": first, "x_last": xl, "count": count, "min": lo, "max": hi, "mean": mean,
             "last": last, "nonfinite": nf, "last_nonfinite": sp}
            for first, xl, count, lo, hi, mean, last, nf, sp in zip(
                cols["x"].tolist(), cols["x_last"].tolist(), cols["count"].tolist(),
                *nan_to_none, cols["nonfinite"].tolist(), cols["last_nonfinite"], strict=True)]


#: the bucket fields, in the order of a bucket's keys
BUCKET_FIELDS = ("x", "x_last", "count", "min", "max", "mean", "last", "nonfinite",
                 "last_nonfinite")


def bucket_columns(x: Any, values: Any, specials: Any, grid: Grid) -> dict[str, Any]:
    """The buckets of ``downsample_arrays`` column by column: numpy arrays for every field
    but ``last_nonfinite`` (a list), NaN where a bucket's min/max/mean/last is ``None``."""
    import numpy as np

    x, values, specials = _by_x(x, values, specials)
    n = len(x)
    if n == 0:
        empty = np.empty(0)
        return {"x": x, "x_last": x, "count": x, "min": empty, "max": empty, "mean": empty,
                "last": empty, "nonfinite": x, "last_nonfinite": []}
    if grid.width <= 0:
        index = np.zeros(n, dtype=np.int64)
    elif grid.integer:
        index = (x.astype(np.int64) - int(grid.x0)) // int(grid.width)
    else:
        index = ((x - grid.x0) / grid.width).astype(np.int64)
    np.clip(index, 0, grid.buckets - 1, out=index)
    starts = np.flatnonzero(np.concatenate(([True], index[1:] != index[:-1])))
    ends = np.concatenate((starts[1:], [n])) - 1
    finite = specials == 0
    clean = np.where(finite, values, np.nan)
    counts = np.diff(np.concatenate((starts, [n])))
    finite_counts = np.add.reduceat(finite.astype(np.int64), starts)
    sums = np.add.reduceat(np.where(finite, values, 0.0), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mins = np.fmin.reduceat(clean, starts)
        maxs = np.fmax.reduceat(clean, starts)
        means = sums / finite_counts  # 0/0: NaN for a bucket without a finite value
    last_codes = specials[ends]
    lasts = np.where(last_codes == 0, values[ends], np.nan)
    last_nonfinite: list[str | None] = [None] * len(starts)
    for b in np.flatnonzero(last_codes).tolist():
        last_nonfinite[b] = SPECIAL_CODES[int(last_codes[b])]
    return {"x": x[starts], "x_last": x[ends], "count": counts, "min": mins, "max": maxs,
            "mean": means, "last": lasts, "nonfinite": counts - finite_counts,
            "last_nonfinite": last_nonfinite}


def _by_x(x: Any, values: Any, specials: Any) -> tuple[Any, Any, Any]:
    """The points ordered by x, ties in insertion order (a no-op when they already are)."""
    import numpy as np

    if len(x) > 1 and not bool(np.all(x[1:] >= x[:-1])):
        order = np.argsort(x, kind="stable")
        return x[order], values[order], specials[order]
    return x, values, specials


def _nan_to_none(column: Any) -> list[float | None]:
    import numpy as np

    out = column.tolist()
    for b in np.flatnonzero(np.isnan(column)).tolist():
        out[b] = None
    return out


def _with_specials(values: Any, specials: Any) -> list[Value]:
    pairs = zip(values.tolist(), specials.tolist(), strict=True)
    return [SPECIAL_CODES[c] if c else v for v, c in pairs]
