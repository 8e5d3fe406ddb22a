"""Runs compared: several runs' series on one step axis, and a table of their differences.

The compare table reads each series' summary row (``series.summaries``: final, best,
min, max, counts), never its points. The charts read each series' packed arrays
(``series.read_after``) into a ``SeriesCache``, which keeps them in memory and only reads
what was added since (bounded by points, least recently used series dropped first), and
keeps the JSON of each series' buckets for the grid it was last asked for, so that
asking again for the same runs costs what copying the bytes costs. The buckets come
from the one downsampling module (``downsample.bucket_columns``: the same buckets as
``downsample_sql``). Responses are encoded here, on the reader thread, not on the loop.

Functions taking a connection run on a store reader thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from ..downsample import BUCKET_FIELDS, Grid, bucket_columns, downsample_arrays, grid_for
from . import series as packed

#: words in a metric's name that make lower values better (else higher is better)
LOWER_IS_BETTER = ("loss", "err", "mse", "mae", "rmse", "perplexity", "ppl", "wer", "cer",
                   "nll", "distance", "time", "seconds", "latency")
#: ``layout=`` of the multi-run metrics: bucket objects (default) or one array per field
LAYOUTS = ("buckets", "columns")
_JSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def metric_mode(name: str, modes: dict[str, str] | None = None) -> str:
    """``"min"`` or ``"max"``: which way a metric is better (``modes`` overrides)."""
    if modes and name in modes:
        return modes[name]
    lowered = name.lower()
    return "min" if any(word in lowered for word in LOWER_IS_BETTER) else "max"


@dataclass
class Series:
    """One run's series as arrays, in index order."""

    x: Any = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    values: Any = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    specials: Any = field(default_factory=lambda: np.empty(0, dtype=np.int8))
    end: int = 0  # the next index to read
    tail_first: int = 0  # the first index of the last chunk read (it may grow)
    encoded: tuple[Any, int, bytes] | None = None  # (key, buckets, their JSON)

    def __len__(self) -> int:
        return len(self.x)

    def weight(self) -> int:
        """What the series costs the cache, in points (about 17 bytes each)."""
        return len(self.x) + (len(self.encoded[2]) // 17 if self.encoded else 0)


class SeriesCache:
    """Series of runs read from the store, kept as arrays and topped up incrementally."""

    def __init__(self, max_points: int = 5_000_000) -> None:
        self.max_points = max_points
        self._series: OrderedDict[tuple[str, str], Series] = OrderedDict()
        self._points = 0  # the series' weights
        self._lock = threading.Lock()

    def get(self, conn: Any, job_id: str, name: str, last_idx: int | None = None) -> Series:
        """The series with every stored point (reader thread); ``last_idx``, the last
        stored index from its summary, saves the look for new points when it is known."""
        key = (job_id, name)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = Series()
            if last_idx is None or series.end <= last_idx:
                pieces, end, tail_first = packed.read_after(conn, job_id, name, series.end,
                                                            series.tail_first, last_idx)
                if pieces:
                    grown = Series(
                        np.concatenate([series.x, *(p.x for p in pieces)]),
                        np.concatenate([series.values, *(p.values for p in pieces)]),
                        np.concatenate([series.specials, *(p.codes for p in pieces)]),
                        end, tail_first)
                    self._points += grown.weight() - series.weight()
                    series = self._series[key] = grown
                else:
                    series.end, series.tail_first = end, tail_first
            self._series.move_to_end(key)
            self._evict()
            return series

    def buckets_json(self, key: tuple[str, str], series: Series, grid: Grid | None,
                     layout: str = "buckets") -> tuple[int, bytes]:
        """(number of buckets, their JSON in ``layout``) of the series ``key`` (job, name)
        on ``grid``, kept for the next ask of the same grid and layout."""
        asked = (layout, grid, len(series))
        known = series.encoded
        if known is not None and known[0] == asked:
            return known[1], known[2]
        if layout == "columns":
            columns = (bucket_columns(series.x, series.values, series.specials, grid)
                       if grid and len(series) else {name: [] for name in BUCKET_FIELDS})
            count, encoded = len(columns["x"]), orjson.dumps(columns, option=_JSON)
        else:
            buckets = (downsample_arrays(series.x, series.values, series.specials, grid)
                       if grid and len(series) else [])
            count, encoded = len(buckets), orjson.dumps(buckets)
        with self._lock:
            before = series.weight()
            series.encoded = (asked, count, encoded)
            if self._series.get(key) is series:
                self._points += series.weight() - before
            self._evict()
        return count, encoded

    def forget(self, job_id: str) -> None:
        with self._lock:
            for key in [k for k in self._series if k[0] == job_id]:
                self._points -= self._series.pop(key).weight()

    def _evict(self) -> None:
        while self._points > self.max_points and len(self._series) > 1:
            _old_key, old = self._series.popitem(last=False)
            self._points -= old.weight()


def summary_of(row: dict[str, Any], mode: str) -> dict[str, Any]:
    """A series' summary row as the compare table shows it (``best`` by ``mode``)."""
    best, best_step = ((row["min_value"], row["min_x"]) if mode == "min"
                       else (row["max_value"], row["max_x"]))
    return {"count": row["count"], "mode": mode,
            "final": row["final_value"] if row["final_special"] is None else None,
            "final_step": row["final_x"], "final_nonfinite": row["final_special"],
            "best": best, "best_step": best_step, "min": row["min_value"],
            "max": row["max_value"], "nonfinite": row["count"] - row["finite"]}


def _values_differ(values: list[Any]) -> bool:
    first = values[0]
    return any(v != first or type(v) is not type(first) for v in values[1:])


_ABSENT = object()


def effective_parameters(job: dict[str, Any]) -> dict[str, Any]:
    """A job's parameters as compare shows them: the hyperparameters its kernel recorded
    (``hparams``) under its notebook's resolved parameters, which win on a shared name."""
    return {**(job.get("hparams") or {}), **job["resolved_parameters"]}


def compare_table(conn: Any, jobs: list[dict[str, Any]], modes: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    """The compare table of runs (``jobs``: their public form)."""
    names: list[str] = []
    per_job: list[dict[str, Any]] = []
    summaries = packed.summaries(conn, [j["id"] for j in jobs])
    for job in jobs:
        metrics = {}
        for name, row in summaries[job["id"]].items():
            if name not in names:
                names.append(name)
            metrics[name] = summary_of(row, metric_mode(name, modes))
        per_job.append({
            "id": job["id"], "name": job["name"], "state": job["state"],
            "reason": job["reason"], "kind": job["kind"], "template": job["template"],
            "notebook": (job.get("notebook") or {}).get("path"),
            "sweep_id": job.get("sweep_id"), "cloned_from": job.get("cloned_from"),
            "parent_id": job["parent_id"], "created": job["created"],
            "started": job["started"], "ended": job["ended"], "duration": job["duration"],
            "starred": job.get("starred", False), "tags": job["tags"],
            "parameters": job["parameters"], "resolved_parameters": job["resolved_parameters"],
            "hparams": job.get("hparams") or {},
            "model": job.get("model"), "disk_bytes": job.get("disk_bytes"),
            "metrics": metrics,
        })
    effective = {j["id"]: effective_parameters(j) for j in jobs}
    parameter_names: list[str] = []
    for job in jobs:
        for name in [*job["resolved_parameters"], *job["parameters"], *effective[job["id"]]]:
            if name not in parameter_names:
                parameter_names.append(name)
    parameters = []
    for name in parameter_names:
        given = {j["id"]: j["parameters"][name] for j in jobs if name in j["parameters"]}
        resolved = {j["id"]: effective[j["id"]][name] for j in jobs
                    if name in effective[j["id"]]}
        seen = [effective[j["id"]].get(name, _ABSENT) for j in jobs]
        parameters.append({"name": name, "given": given, "resolved": resolved,
                           "differs": len(jobs) > 1 and _values_differ(seen)})
    return {"ids": [j["id"] for j in jobs], "jobs": per_job, "parameters": parameters,
            "differing": [p["name"] for p in parameters if p["differs"]],
            "metrics": sorted(names)}


def runs_metrics_json(conn: Any, cache: SeriesCache, rows: list[dict[str, Any]],
                      names: list[str] | None, max_points: int, layout: str = "buckets"
                      ) -> bytes:
    """The runs' series on one step axis (one grid of at most ``max_points`` buckets), as
    JSON: each series' ``buckets`` (objects), or with ``layout="columns"`` its
    ``columns`` (one array per bucket field)."""
    summaries = packed.summaries(conn, [r["id"] for r in rows])
    chosen: list[tuple[dict[str, Any], list[tuple[str, Series]]]] = []
    all_names: list[str] = []
    low = high = None
    for row in rows:
        own = summaries[row["id"]]
        for name in own:
            if name not in all_names:
                all_names.append(name)
        wanted = [n for n in (names or own) if n in own]
        series = []
        for name in wanted:
            s = cache.get(conn, row["id"], name, own[name]["last_idx"])
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
            count, encoded = cache.buckets_json((row["id"], name), s, grid, layout)
            out.append({"name": name, "count": len(s),
                        "columns" if layout == "columns" else "buckets": orjson.Fragment(encoded),
                        "downsampled": count < len(s)})
        runs.append({"job_id": row["id"], "name": row["name"], "state": row["state"],
                     "series": out})
    body: dict[str, Any] = {
        "axis": "step", "max_points": max_points, "ids": [r["id"] for r in rows],
        "names": sorted(all_names) if names is None else list(names),
        "grid": None if grid is None else {"x0": grid.x0, "width": grid.width,
                                           "buckets": grid.buckets},
        "runs": runs}
    if layout == "columns":
        body["layout"] = "columns"
    return orjson.dumps(body, option=_JSON)
