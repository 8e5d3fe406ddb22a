"""Runs compared: several runs' series on one step axis, and a table of their differences.

Points live in the store (``job_metrics``, append-only per series). Reading 10,000
points of each of 50 runs from SQLite for every request would take most of a second,
so a ``SeriesCache`` keeps each series read so far as numpy arrays and only reads the
points added since (one primary-key range query per series); it is bounded by points
(least recently used series dropped first). The buckets come from the one downsampling
module (``downsample.downsample_arrays``: the same buckets as ``downsample_sql``).

Functions taking a connection run on a store reader thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import store as jobstore
from .downsample import SPECIAL_CODES, downsample_arrays, grid_for, special_code

#: words in a metric's name that make lower values better (else higher is better)
LOWER_IS_BETTER = ("loss", "err", "mse", "mae", "rmse", "perplexity", "ppl", "wer", "cer",
                   "nll", "distance", "time", "seconds", "latency")


def metric_mode(name: str, modes: dict[str, str] | None = None) -> str:
    """``"min"`` or ``"max"``: which way a metric is better (``modes`` overrides)."""
    if modes and name in modes:
        return modes[name]
    lowered = name.lower()
    return "min" if any(word in lowered for word in LOWER_IS_BETTER) else "max"


@dataclass
class Series:
    """One run's series as arrays, in insertion order."""

    x: Any = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    values: Any = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    specials: Any = field(default_factory=lambda: np.empty(0, dtype=np.int8))
    last_idx: int = -1
    summary: dict[str, Any] | None = None  # for ``last_idx``

    def __len__(self) -> int:
        return len(self.x)


class SeriesCache:
    """Series of runs read from the store, kept as arrays and topped up incrementally."""

    def __init__(self, max_points: int = 5_000_000) -> None:
        self.max_points = max_points
        self._series: OrderedDict[tuple[str, str], Series] = OrderedDict()
        self._points = 0
        self._lock = threading.Lock()

    def get(self, conn: Any, job_id: str, name: str) -> Series:
        """The series with every stored point (reader thread)."""
        key = (job_id, name)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = Series()
            rows = jobstore.metric_rows_after(conn, job_id, name, series.last_idx)
            if rows:
                idx, x, values, specials = zip(*rows, strict=True)
                grown = Series(
                    np.concatenate((series.x, np.array(x, dtype=np.int64))),
                    np.concatenate((series.values, np.array(
                        [0.0 if v is None else v for v in values], dtype=np.float64))),
                    np.concatenate((series.specials, np.array(
                        [special_code(s) if s is not None else (1 if v is None else 0)
                         for v, s in zip(values, specials, strict=True)], dtype=np.int8))),
                    int(idx[-1]))
                self._points += len(grown) - len(self._series.get(key, Series()))
                series = grown
            self._series[key] = series
            self._series.move_to_end(key)
            while self._points > self.max_points and len(self._series) > 1:
                _old_key, old = self._series.popitem(last=False)
                self._points -= len(old)
            return series

    def forget(self, job_id: str) -> None:
        with self._lock:
            for key in [k for k in self._series if k[0] == job_id]:
                self._points -= len(self._series.pop(key))


def metric_names(conn: Any, row: dict[str, Any]) -> list[str]:
    """A run's metric names: those of its latest values (the store when it has none)."""
    names = list((row.get("latest_metrics") or {}).keys())
    return sorted(names) if names else list(jobstore.metric_names(conn, row["id"]))


def summarize(series: Series, mode: str) -> dict[str, Any]:
    """Count, final (last reported) and best value of a series, with their steps."""
    if series.summary is not None and series.summary["mode"] == mode:
        return series.summary
    n = len(series)
    out: dict[str, Any] = {"count": n, "mode": mode, "final": None, "final_step": None,
                           "final_nonfinite": None, "best": None, "best_step": None,
                           "min": None, "max": None, "nonfinite": 0}
    if n:
        finite = series.specials == 0
        code = int(series.specials[-1])
        out["final_step"] = int(series.x[-1])
        out["final"] = None if code else float(series.values[-1])
        out["final_nonfinite"] = SPECIAL_CODES[code]
        out["nonfinite"] = int(n - int(finite.sum()))
        if finite.any():
            clean = np.where(finite, series.values, np.nan)
            low, high = int(np.nanargmin(clean)), int(np.nanargmax(clean))
            out["min"], out["max"] = float(clean[low]), float(clean[high])
            at = low if mode == "min" else high
            out["best"], out["best_step"] = float(clean[at]), int(series.x[at])
    series.summary = out
    return out


def _values_differ(values: list[Any]) -> bool:
    first = values[0]
    return any(v != first or type(v) is not type(first) for v in values[1:])


_ABSENT = object()


def compare_table(conn: Any, cache: SeriesCache, rows: list[dict[str, Any]],
                  jobs: list[dict[str, Any]], modes: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    """The compare table of runs (``rows``: store rows; ``jobs``: their public form)."""
    names: list[str] = []
    per_job: list[dict[str, Any]] = []
    for row, job in zip(rows, jobs, strict=True):
        metrics = {}
        for name in metric_names(conn, row):
            if name not in names:
                names.append(name)
            metrics[name] = summarize(cache.get(conn, row["id"], name),
                                      metric_mode(name, modes))
        per_job.append({
            "id": job["id"], "name": job["name"], "state": job["state"],
            "reason": job["reason"], "kind": job["kind"], "template": job["template"],
            "notebook": (job.get("notebook") or {}).get("path"),
            "sweep_id": job.get("sweep_id"), "cloned_from": job.get("cloned_from"),
            "parent_id": job["parent_id"], "created": job["created"],
            "started": job["started"], "ended": job["ended"], "duration": job["duration"],
            "starred": job.get("starred", False), "tags": job["tags"],
            "parameters": job["parameters"], "resolved_parameters": job["resolved_parameters"],
            "model": job.get("model"), "disk_bytes": job.get("disk_bytes"),
            "metrics": metrics,
        })
    parameter_names: list[str] = []
    for job in jobs:
        for name in [*job["resolved_parameters"], *job["parameters"]]:
            if name not in parameter_names:
                parameter_names.append(name)
    parameters = []
    for name in parameter_names:
        given = {j["id"]: j["parameters"][name] for j in jobs if name in j["parameters"]}
        resolved = {j["id"]: j["resolved_parameters"][name] for j in jobs
                    if name in j["resolved_parameters"]}
        seen = [j["resolved_parameters"].get(name, _ABSENT) for j in jobs]
        parameters.append({"name": name, "given": given, "resolved": resolved,
                           "differs": len(jobs) > 1 and _values_differ(seen)})
    return {"ids": [j["id"] for j in jobs], "jobs": per_job, "parameters": parameters,
            "differing": [p["name"] for p in parameters if p["differs"]],
            "metrics": sorted(names)}


def runs_metrics(conn: Any, cache: SeriesCache, rows: list[dict[str, Any]],
                 names: list[str] | None, max_points: int) -> dict[str, Any]:
    """The runs' series on one step axis: one grid of at most ``max_points`` buckets."""
    chosen: list[tuple[dict[str, Any], list[tuple[str, Series]]]] = []
    all_names: list[str] = []
    low = high = None
    for row in rows:
        own = metric_names(conn, row)
        for name in own:
            if name not in all_names:
                all_names.append(name)
        wanted = [n for n in (names or own) if n in own]
        series = []
        for name in wanted:
            s = cache.get(conn, row["id"], name)
            if len(s):
                lo, hi = int(s.x.min()), int(s.x.max())
                low = lo if low is None else min(low, lo)
                high = hi if high is None else max(high, hi)
            series.append((name, s))
        chosen.append((row, series))
    grid = grid_for(low, high, max_points, integer=True) if low is not None else None
    runs = []
    for row, series in chosen:
        out = []
        for name, s in series:
            buckets = downsample_arrays(s.x, s.values, s.specials, grid) if grid else []
            out.append({"name": name, "count": len(s), "buckets": buckets,
                        "downsampled": len(buckets) < len(s)})
        runs.append({"job_id": row["id"], "name": row["name"], "state": row["state"],
                     "series": out})
    return {"axis": "step", "max_points": max_points, "ids": [r["id"] for r in rows],
            "names": sorted(all_names) if names is None else list(names),
            "grid": None if grid is None else {"x0": grid.x0, "width": grid.width,
                                               "buckets": grid.buckets},
            "runs": runs}
