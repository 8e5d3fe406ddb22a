"""A job's row from its directory, for ``doctor --rebuild``: what the server had recorded,
from the files of the job protocol (docs/job-directory.md).

``row_from_dir`` is the row as the job started: a papermill job's from ``job.json``
(``submission.JOB_JSON_FIELDS``), an interactive run's from ``run.json``
(``supervisor.interactive_row``, as the supervisor registers a run). The tailer then reads
the job's files into it; ``ending_of`` decides, from what they said, the state the server
would have given it (``outcome``) and the fields its finisher writes. Which times a row had
that no file keeps (active time without the paused spans, notes, star, sweep) are
approximated or lost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from notebench.jobprotocol import JOB_JSON, RUN_JSON, check_run_fields

from ..jobs import states
from ..jobs.artifacts import list_files
from ..jobs.jobdir import read_json
from ..jobs.live import Followed
from ..jobs.machine import run_alive
from ..jobs.outcome import Ending, outcome
from ..jobs.store import COLUMNS, JSON_FIELDS
from ..jobs.submission import JOB_JSON_FIELDS
from ..jobs.supervisor import interactive_row
from ..jobs.tidy import dir_size

#: the reason of a job found queued (it never started): it is not run again
NEVER_STARTED = "queued when the store was lost; doctor --rebuild did not queue it again"
_LISTS = ("tags",)


def row_from_dir(job_dir: Path, now: float | None = None) -> dict[str, Any] | None:
    """The row of the job in ``job_dir`` as it started (state ``running``); None when
    neither ``job.json`` nor ``run.json`` says what it is."""
    now = time.time() if now is None else now
    job_id = job_dir.name
    if job_id.startswith("r-"):
        run = read_json(job_dir / RUN_JSON)
        if not isinstance(run, dict):
            return None
        try:
            params, tags = check_run_fields(run.get("params"), run.get("tags"))
        except ValueError:
            params, tags = {}, []
        started = _number(run.get("started")) or _mtime(job_dir)
        return interactive_row(job_dir, run, params, tags, started=started, now=now)
    job = read_json(job_dir / JOB_JSON)
    if not isinstance(job, dict) or job.get("id") != job_id:
        return None
    row = {k: job[k] for k in JOB_JSON_FIELDS if k in COLUMNS and job.get(k) is not None}
    for name in JSON_FIELDS:  # a field of the wrong shape is left to its column's default
        if name in row and not isinstance(row[name], list if name in _LISTS else dict):
            del row[name]
    created = _number(job.get("created")) or _mtime(job_dir)
    row.update({"id": job_id, "kind": "papermill", "name": str(job.get("name") or job_id),
                "state": states.RUNNING, "job_dir": str(job_dir), "created": created,
                "updated": now})
    return row


def ending_of(row: dict[str, Any], followed: Followed) -> tuple[str, str | None,
                                                               dict[str, Any]]:
    """(state, reason, fields) of a job whose files the tailer has read to their end.

    A job whose processes still run stays ``running`` (the next server adopts it); one
    that never started is ``cancelled``; else the server's ``outcome`` decides, as for a
    job whose processes ended while no server ran.
    """
    job_dir = Path(row["job_dir"])
    interactive = row["kind"] == "interactive"
    listing = list_files(job_dir)
    runner = followed.processes.get("runner") or {}
    started = (row["started"] if interactive
               else _number(runner.get("create_time")) or row["created"])
    fields: dict[str, Any] = {"started": started, "progress": dict(followed.progress),
                              "processes": dict(followed.processes)}
    end = followed.run_end if interactive else followed.finished
    if end is None:
        if not interactive and not followed.processes:
            return states.CANCELLED, NEVER_STARTED, {"ended": _newest(listing, job_dir)}
        pid_of = (followed.processes.get("kernel") if interactive else runner) or {}
        if run_alive(pid_of.get("pid"), started if interactive
                     else _number(runner.get("create_time"))):
            return states.RUNNING, None, fields
    state, reason = outcome(Ending(states.RUNNING, None, interactive=interactive,
                                   finished=followed.finished, run_end=followed.run_end,
                                   ended_unobserved=end is None))
    ended = _number((end or {}).get("t")) or _newest(listing, job_dir)
    fields.update({
        "ended": ended, "active_seconds": max(0.0, ended - float(started or ended)),
        "final_metrics": dict(followed.latest), "latest_metrics": dict(followed.latest),
        "artifact_count": len(listing), "disk_bytes": dir_size(job_dir),
    })
    if followed.error is not None:
        fields["error"] = followed.error
    return state, reason, fields


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _newest(listing: list[dict[str, Any]], job_dir: Path) -> float:
    """When the job last wrote a file (its directory's time when it has none)."""
    return max((float(f["modified"]) for f in listing), default=_mtime(job_dir))
