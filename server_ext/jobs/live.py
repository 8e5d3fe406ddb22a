"""The one record of a live job: what the server keeps in memory while a job's processes
may run (running, paused, stopping), from its launch or adoption to its finalization.

``LiveJobs`` is the only place such records live. The supervisor adds and removes them;
the tailer's thread reads the ``Followed`` part (what the job's files said so far) and
writes into it; the handlers' views, the tick and monitoring (through the jobs view) read
the rest. The executor keeps only how to reach the job's processes, by job id.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock

#: reads of one job whose writes may wait in the store's queue: the tailer reads no further
#: ahead of the writer, so what waits (and what the collector traverses) stays bounded
MAX_IN_FLIGHT = 2
#: the window of (active seconds, step) samples the step rate is measured over
RATE_WINDOW_SECONDS = 120.0


@dataclass
class ActiveClock:
    """A job's active time: monotonic, paused (and server-down-but-unknown) time excluded."""

    accumulated: float = 0.0
    segment_start: float | None = None  # source.monotonic() of the running segment's start
    at_last_metric: float = 0.0
    points_seen: int = 0
    stalled: bool = False
    source: Clock = field(default=SYSTEM_CLOCK, repr=False)

    def seconds(self) -> float:
        if self.segment_start is None:
            return self.accumulated
        return self.accumulated + max(0.0, self.source.monotonic() - self.segment_start)

    def pause(self) -> None:
        self.accumulated = self.seconds()
        self.segment_start = None

    def resume(self) -> None:
        if self.segment_start is None:
            self.segment_start = self.source.monotonic()


@dataclass
class Followed:
    """What a live job's files said so far (written by the tailer's thread under ``lock``)."""

    job_id: str
    job_dir: Path
    kind: str
    offsets: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    latest: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    auto: dict[str, Any] = field(default_factory=dict)  # how "auto" values were resolved
    hparams: dict[str, Any] = field(default_factory=dict)  # the ``hparams`` events, merged
    finished: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    stopping_seen: bool = False
    run_end: dict[str, Any] | None = None
    last_metric_mono: float | None = None
    metric_points: int = 0
    bad_lines: int = 0
    bad_hparams: int = 0  # ``hparams`` events ignored (the first few are warned about)
    behind: bool = False  # the last read stopped at the chunk limit
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: threading.Semaphore = field(
        default_factory=lambda: threading.Semaphore(MAX_IN_FLIGHT))
    progress_published: float = 0.0


@dataclass
class LiveJob:
    """A job whose processes may run: its clock, limits, files and the tasks acting on it."""

    job_id: str
    kind: str  # "papermill" or "interactive"
    job_dir: Path
    clock: ActiveClock
    followed: Followed
    timeout: float | None = None
    run_pid: int | None = None  # interactive runs: the kernel that started the run
    run_started: float | None = None
    escalation: asyncio.Task[None] | None = None
    finalizing: bool = False
    timed_out: bool = False  # the timeout's stop was started
    ended_unobserved: bool = False  # it ended while no server watched it
    rate: deque[tuple[float, int]] = field(default_factory=deque)  # (active s, step)

    @property
    def papermill(self) -> bool:
        return self.kind == "papermill"

    def note_step(self) -> None:
        """Sample the job's step against its active time (for the step rate and ETA)."""
        step = self.followed.progress.get("step")
        if not isinstance(step, int):
            return
        samples = self.rate
        now = self.clock.seconds()
        if samples and samples[-1][1] == step:
            return
        if samples and step < samples[-1][1]:
            samples.clear()  # the steps started over
        samples.append((now, step))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_SECONDS:
            samples.popleft()


class LiveJobs:
    """The live jobs by id. Changed on the event loop; read on any thread."""

    def __init__(self) -> None:
        self._jobs: dict[str, LiveJob] = {}
        self._lock = threading.Lock()

    def add(self, job: LiveJob) -> None:
        with self._lock:
            self._jobs[job.job_id] = job

    def remove(self, job_id: str) -> LiveJob | None:
        with self._lock:
            return self._jobs.pop(job_id, None)

    def get(self, job_id: str) -> LiveJob | None:
        return self._jobs.get(job_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def records(self) -> list[LiveJob]:
        with self._lock:
            return list(self._jobs.values())

    def followed(self) -> list[Followed]:
        """What the tailer reads, a snapshot (any thread)."""
        with self._lock:
            return [job.followed for job in self._jobs.values()]

    def followed_of(self, job_id: str) -> Followed | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.followed
