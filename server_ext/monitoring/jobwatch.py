"""What the training alerts need of jobs: failures, non-finite losses, time since a metric.

A bus subscriber on the ``jobs`` topic (state changes) and on ``job:<id>`` of each active
job (metric points), kept up to date as jobs start and end. At each evaluation it gives
the alert engine these series (labels ``job_id``, ``job_name``):

- ``job_failed`` = 1 for ``failed_seconds`` after a job failed;
- ``job_loss_nonfinite`` (also ``metric_name``) = 1 while a job's latest value of a loss
  metric is NaN or infinite, 0 once it is finite again; kept ``linger_seconds`` after the
  job ends, so a job that dies right after a NaN is still seen;
- ``job_seconds_since_metric``: from the job service's active clock (monotonic, paused
  time excluded), for running and paused jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import (
    FAILED,
    JOBS_TOPIC,
    PAUSED,
    RUNNING,
    TERMINAL,
    job_topic,
    nonfinite_kind,
)

from .series import SeriesKey

if TYPE_CHECKING:
    from ..events.bus import EventBus
    from ..seams import JobsView

log = logging.getLogger("notebench.monitoring")


@dataclass
class _Job:
    job_id: str
    name: str
    state: str
    ended_at: float | None = None
    failed_at: float | None = None
    reason: str | None = None
    loss: dict[str, str | None] = field(default_factory=dict)  # name -> nonfinite kind


class JobWatch:
    """Follows job states and loss values from the bus (loop only)."""

    internal = True  # a follower inside the server, not a client's stream

    def __init__(self, bus: EventBus, jobs: JobsView | None, *, loss_patterns: list[str],
                 failed_seconds: float = 300.0, linger_seconds: float = 300.0) -> None:
        self.bus = bus
        self.jobs = jobs
        self.loss_patterns = list(loss_patterns)
        self._loss_names: dict[str, bool] = {}  # metric name -> matches a loss pattern
        self.failed_seconds = failed_seconds
        self.linger_seconds = linger_seconds
        self.topics: frozenset[str] = frozenset({JOBS_TOPIC})
        self._jobs: dict[str, _Job] = {}
        self._subscribed = False
        self._resubscribe_pending = False

    async def start(self) -> None:
        if self.jobs is None:
            return
        for job_id in list(self.jobs.active_job_ids()):
            with contextlib.suppress(Exception):
                job = await self.jobs.get_job(job_id)
                self._note(job_id, job.get("name") or job_id, job.get("state") or RUNNING,
                           job.get("reason"), None)
                for name, value in (job.get("latest_metrics") or {}).items():
                    self._loss(self._jobs[job_id], name, value)
        self._resubscribe()

    def stop(self) -> None:
        if self._subscribed:
            self.bus.unsubscribe(self)
            self._subscribed = False

    # -- the bus ---------------------------------------------------------------------------

    def push(self, events: list[Any]) -> None:
        for event in events:
            data = event.data
            if not isinstance(data, dict):
                continue
            if event.topic == JOBS_TOPIC:
                if event.type == "state":
                    job = data.get("job") or {}
                    self._note(str(data.get("job_id")), job.get("name") or data.get("job_id"),
                               str(data.get("state")), data.get("reason"), event.ts)
            elif event.type == "metrics":
                job = self._jobs.get(str(data.get("job_id")))
                if job is None:
                    continue
                for name, value in (data.get("latest") or {}).items():
                    self._loss(job, name, value)

    def push_heartbeat(self) -> None:
        pass

    def _note(self, job_id: str, name: str, state: str, reason: str | None,
              ts: float | None) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            job = self._jobs[job_id] = _Job(job_id, str(name), state)
        job.name, job.state = str(name), state
        if state in TERMINAL:
            job.ended_at = ts if ts is not None else job.ended_at
            if state == FAILED:
                job.failed_at = ts
                job.reason = reason
        self._schedule_resubscribe()

    def _is_loss(self, name: str) -> bool:
        known = self._loss_names.get(name)
        if known is None:
            known = self._loss_names[name] = any(fnmatchcase(name, p)
                                                 for p in self.loss_patterns)
        return known

    def _loss(self, job: _Job, name: str, value: Any) -> None:
        if not self._is_loss(name):
            return
        job.loss[name] = nonfinite_kind(value)

    def _schedule_resubscribe(self) -> None:
        if self._resubscribe_pending:
            return
        self._resubscribe_pending = True
        try:
            asyncio.get_running_loop().call_soon(self._resubscribe)
        except RuntimeError:
            self._resubscribe()

    def _resubscribe(self) -> None:
        self._resubscribe_pending = False
        wanted = frozenset({JOBS_TOPIC} | {job_topic(j.job_id) for j in self._jobs.values()
                                           if j.state not in TERMINAL})
        if self._subscribed and wanted == self.topics:
            return
        if self._subscribed:
            self.bus.unsubscribe(self)
        self.topics = wanted
        self.bus.subscribe(self)
        self._subscribed = True

    # -- series ------------------------------------------------------------------------------

    def series(self, now: float) -> tuple[dict[SeriesKey, float],
                                           dict[SeriesKey, dict[str, str]]]:
        values: dict[SeriesKey, float] = {}
        context: dict[SeriesKey, dict[str, str]] = {}
        for job_id, job in list(self._jobs.items()):
            base = (("job_id", job_id), ("job_name", job.name))
            ended = job.ended_at
            if ended is not None and now - ended > max(self.linger_seconds,
                                                        self.failed_seconds):
                del self._jobs[job_id]
                continue
            if job.failed_at is not None and now - job.failed_at < self.failed_seconds:
                key = ("job_failed", base)
                values[key] = 1.0
                context[key] = {"reason": job.reason or "unknown reason"}
            if ended is None or now - ended <= self.linger_seconds:
                for name, special in job.loss.items():
                    key = ("job_loss_nonfinite", tuple(sorted((*base, ("metric_name", name)))))
                    values[key] = 0.0 if special is None else 1.0
                    context[key] = {"nonfinite": special or ""}
            if job.state in (RUNNING, PAUSED) and self.jobs is not None:
                seconds = None
                with contextlib.suppress(Exception):
                    seconds = self.jobs.seconds_since_metric(job_id)
                if seconds is not None:
                    values[("job_seconds_since_metric", base)] = float(seconds)
        return values, context

    def states(self) -> dict[str, str]:
        return {job_id: job.state for job_id, job in self._jobs.items()}
