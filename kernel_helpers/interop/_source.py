"""A job as the exports read it through the server's API: its record, every metric point
(the metrics route's CSV: the raw points, not downsampled) and its model file."""

from __future__ import annotations

import csv
import io
import shutil
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client import Client
from ..jobprotocol import is_job_id

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # the server's CSV guards these with "'"
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Point:
    """One reported value: ``step`` (the reported step, else the point's index in its
    series), ``t`` (unix seconds) and ``value`` (a float; NaN and infinities kept)."""

    step: int
    t: float
    value: float


def client_of(client: Client | None) -> Client:
    if client is not None:
        return client
    from ..jobs import _default_client

    return _default_client(None)


def job_ids(jobs: str | Iterable[Any]) -> list[str]:
    """Job ids from one id, or ids / ``Job`` objects / job dicts."""
    from ..jobs import _job_id

    ids = [jobs] if isinstance(jobs, str) else [_job_id(j) for j in jobs]
    for job_id in ids:
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r} (j- or r- and 12 hex characters)")
    return ids


def _metric_name(text: str) -> str:
    """A name as reported (the CSV's spreadsheet guard removed)."""
    if text[:1] == "'" and text[1:2] in _FORMULA_START:
        return text[1:]
    return text


def metric_series(client: Client, job_id: str) -> dict[str, list[Point]]:
    """Every point of every series of ``job_id``, by name, in the order reported."""
    text = client.get(f"lifecycle/jobs/{job_id}/metrics", params={"format": "csv"})
    if isinstance(text, bytes):
        text = text.decode()
    series: dict[str, list[Point]] = {}
    for row in csv.DictReader(io.StringIO(text or "")):
        step = int(row["step"]) if row["step"] else int(row["idx"])
        series.setdefault(_metric_name(row["name"]), []).append(
            Point(step, float(row["t"]), float(row["value"])))
    return series


def parameters(job: dict[str, Any]) -> dict[str, Any]:
    """The job's parameters as resolved (as given where none were resolved)."""
    return dict(job.get("resolved_parameters") or job.get("parameters") or {})


def model_file(client: Client, job: dict[str, Any], folder: Path) -> Path | None:
    """The job's registered model file: in place when the server's workspace is on this
    machine, else downloaded into ``folder``; ``None`` when the job registered none."""
    rel = (job.get("model") or {}).get("path")
    if not isinstance(rel, str) or not rel:
        return None
    workspace = (client.info().get("workspace") or {}).get("path")
    if workspace:
        local = Path(workspace) / str(job.get("job_dir") or "") / rel
        if local.is_file():
            return local
    target = folder / Path(rel).name
    quoted = "/".join(urllib.parse.quote(part, safe="") for part in rel.split("/"))
    conn, response = client._open("GET", f"lifecycle/artifacts/{job['id']}/{quoted}",
                                  headers={"Accept": "*/*"})
    try:
        with target.open("wb") as out:
            shutil.copyfileobj(response, out, _BLOCK)
    finally:
        conn.close()
    return target
