"""``JobSupervisor``: the one owner of the live jobs and what happens to them over time.

It keeps the ``LiveJobs`` records (``live``), the tailer that reads their files, the
per-job locks, and the tick (``tick_seconds``): it notices runners that ended (the
executor's ``watch`` says so at once; the tick's liveness check is the fallback),
timeouts and stalls on each job's active clock (read from the injectable ``clock``), and
the step rate for the ETA. It adopts the jobs a previous server left running, registers
interactive runs the tailer discovers, escalates a stop that is not obeyed (SIGTERM, then
SIGKILL), and hands an ended job to the ``Finisher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import check_run_fields

from ..clock import SYSTEM_CLOCK, Clock
from . import states
from .jobdir import boot_id
from .live import ActiveClock, Followed, LiveJob, LiveJobs
from .machine import run_alive
from .tailer import Tailer

if TYPE_CHECKING:
    from ..events.bus import EventBus
    from ..logs.store import LogStore
    from ..store import Store
    from ..tasks import TaskSet
    from .executor import Executor
    from .finalize import Finisher
    from .repository import JobRepository
    from .transitions import JobEvents

log = logging.getLogger("notebench.jobs")



def run_pid(run: dict[str, Any]) -> int | None:
    """The kernel pid an interactive run's ``run.json`` names (None: none)."""
    pid = run.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


def interactive_row(run_dir: Path, run: dict[str, Any], params: dict[str, Any],
                    tags: list[str], *, started: float, now: float) -> dict[str, Any]:
    """The row of an interactive run found in ``run_dir`` (its ``run.json``: ``run``, the
    checked ``params`` and ``tags``), running since ``started``."""
    job_id = run_dir.name
    pid = run_pid(run)
    return {"id": job_id, "kind": "interactive", "name": str(run.get("name") or job_id),
            "state": states.RUNNING, "job_dir": str(run_dir), "created": started,
            "started": started, "updated": now, "parameters": params, "resolved": params,
            "tags": tags, "processes": {"kernel": {"pid": pid}} if pid else {}}

@dataclass
class SupervisorSettings:
    """The job service's settings the supervisor applies."""

    tick_seconds: float = 0.5
    tail_interval: float = 0.05
    stall_minutes: float = 10.0
    kill_grace_seconds: float = 5.0
    stop_grace_seconds: float = 30.0


class JobSupervisor:
    """Live jobs: their records, the tick, adoption, escalation (see the module docstring)."""

    def __init__(self, *, live: LiveJobs, repository: JobRepository, events: JobEvents,
                 executor: Executor, tasks: TaskSet, settings: SupervisorSettings, runs_dir: Path,
                 store: Store, bus: EventBus, logs: LogStore,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.repository = repository
        self.events = events
        self.executor = executor
        self.tasks = tasks
        self.settings = settings
        self.clock = clock  # what the active clocks of jobs started from now on read
        self.live = live
        self.tailer = Tailer(store, bus, logs, self.live,
                             interval=settings.tail_interval, runs_dir=runs_dir,
                             on_process=executor.note_process, on_new_run=self._on_new_run)
        self.finisher: Finisher | None = None  # set by the service once built
        #: started when a job runs past its timeout (the service's graceful stop)
        self.on_timeout: Callable[[str], Awaitable[None]] | None = None
        #: called at each tick while jobs are live (the server's activity)
        self.on_busy: Callable[[], None] | None = None
        #: called when a slot may have become free or a job wants admitting
        self.on_slot_free: Callable[[], None] | None = None
        #: called with the id of each job that stops being live (after the executor forgot it)
        self.retire_hooks: list[Callable[[str], None]] = []
        self.ticks = 0  # completed ticks: tests wait for one after moving ``clock``
        self.started = False
        self._locks: dict[str, asyncio.Lock] = {}
        self._tick_task: asyncio.Task[None] | None = None
        self._tick_extras: list[Callable[[], Awaitable[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life cycle ---

    async def start(self, *, recover: bool) -> None:
        """Adopt what a previous server left (``recover``), then follow and tick."""
        self._loop = asyncio.get_running_loop()
        self.tailer.known_runs.update(await self.repository.interactive_ids())
        if recover:
            await self.recover()
        self.tailer.start()
        self.started = True
        self._tick_task = asyncio.ensure_future(self._tick_loop())

    async def stop(self) -> None:
        """Stop following; jobs keep running (the next server adopts them)."""
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tick_task
            self._tick_task = None
        for job in self.live.records():
            if job.escalation is not None:
                job.escalation.cancel()
        await asyncio.to_thread(self.tailer.stop)
        # the active clocks go to the store so that the next server continues them
        for job in self.live.records():
            with contextlib.suppress(Exception):
                await self.repository.update(job.job_id, active_seconds=job.clock.accumulated,
                                             segment_start=job.clock.segment_start)
        self.started = False

    def every_tick(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` at the end of each tick (admission, disk use, retention)."""
        self._tick_extras.append(work)

    def lock(self, key: str) -> asyncio.Lock:
        """The lock of a job (or of another per-job key), held while its state changes."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def forget_locks(self, *keys: str) -> None:
        for key in keys:
            self._locks.pop(key, None)

    def alive(self) -> list[str]:
        """What is wrong with the machinery (empty: the tick and the tailer run)."""
        problems = []
        if not self.started:
            problems.append("the job service is not started")
        elif self._tick_task is None or self._tick_task.done():
            problems.append("the job tick ended")
        if self.started and not self.tailer.alive():
            problems.append("the job file tailer ended")
        return problems

    # -- live records ---

    def new_clock(self, accumulated: float = 0.0) -> ActiveClock:
        return ActiveClock(accumulated, source=self.clock)

    def add(self, job: LiveJob) -> LiveJob:
        """Make a job live: followed from now on, its runner watched."""
        self.live.add(job)
        self.tailer.wake()
        self._watch(job)
        return job

    async def abandon(self, job_id: str) -> None:
        """A launch that did not become running: nothing of it may keep running."""
        self.live.remove(job_id)
        await asyncio.to_thread(self.executor.kill, job_id)
        self.executor.forget(job_id)

    def retire(self, job_id: str) -> None:
        """A finished job stops being live (the finisher, under the job's lock)."""
        self.live.remove(job_id)
        self.executor.forget(job_id)
        for hook in self.retire_hooks:
            hook(job_id)

    def _watch(self, job: LiveJob) -> None:
        """Have the executor say when the job's runner exits (on any thread)."""
        loop = self._loop
        if loop is None or not job.papermill:
            return
        job_id = job.job_id

        def exited() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is going
                loop.call_soon_threadsafe(self.job_ended, job_id)

        self.executor.watch(job_id, exited)

    def job_ended(self, job_id: str) -> None:
        """The job's processes ended (or its run said so): finalize it once (loop thread)."""
        job = self.live.get(job_id)
        if job is None or job.finalizing or not self.started or self.finisher is None:
            return
        job.finalizing = True
        self.tasks.spawn(self.finisher.finalize(job_id))

    # -- the tick ---

    async def _tick_loop(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the job tick failed")
            self.ticks += 1
            await asyncio.sleep(self.settings.tick_seconds)

    async def _tick(self) -> None:
        if len(self.live) and self.on_busy is not None:
            self.on_busy()
        ids = [j.job_id for j in self.live.records() if not j.finalizing]
        running = await asyncio.to_thread(self._liveness, ids) if ids else {}
        for job_id in ids:
            job = self.live.get(job_id)
            if job is None or job.finalizing:
                continue
            ended = not running.get(job_id, True)
            if not job.papermill and job.followed.run_end:
                ended = True
            if ended:
                self.job_ended(job_id)
                continue
            self._check_clock(job)
            job.note_step()
        for work in self._tick_extras:
            await work()

    def _liveness(self, ids: list[str]) -> dict[str, bool]:
        out = {}
        for job_id in ids:
            job = self.live.get(job_id)
            if job is None:
                continue
            if job.papermill:
                out[job_id] = self.executor.is_running(job_id)
            else:
                out[job_id] = run_alive(job.run_pid, job.run_started)
        return out

    def _check_clock(self, job: LiveJob) -> None:
        clock = job.clock
        if job.followed.metric_points != clock.points_seen:
            clock.points_seen = job.followed.metric_points
            clock.at_last_metric = clock.seconds()
            if clock.stalled:
                clock.stalled = False
                self.events.publish(job.job_id, "stalled",
                                    {"job_id": job.job_id, "stalled": False}, to_all=False)
        if clock.segment_start is None:
            return  # paused: neither the timeout nor the stall clock runs
        if job.timeout and clock.seconds() > job.timeout and not job.timed_out:
            job.timed_out = True
            if self.on_timeout is not None:
                self.tasks.spawn(self.on_timeout(job.job_id))
        stall = self.settings.stall_minutes * 60
        if stall > 0 and not clock.stalled and clock.seconds() - clock.at_last_metric > stall:
            clock.stalled = True
            data = {"job_id": job.job_id, "stalled": True,
                    "seconds_since_metric": round(clock.seconds() - clock.at_last_metric, 1)}
            self.events.publish(job.job_id, "stalled", data)
            self.events.lifecycle(logging.WARNING, job.job_id,
                                  f"job {job.job_id} reported no metric for "
                                  f"{data['seconds_since_metric']:g} active seconds")

    # -- escalation ---

    def escalate_later(self, job: LiveJob, grace: float) -> None:
        """SIGTERM the job after ``grace`` seconds unless it ended (a stop was asked)."""
        if job.papermill:
            job.escalation = self.tasks.spawn(self._escalate(job.job_id, grace))

    async def _escalate(self, job_id: str, grace: float) -> None:
        await asyncio.sleep(max(0.0, grace))
        if not await asyncio.to_thread(self.executor.is_running, job_id):
            return
        self.events.lifecycle(logging.WARNING, job_id,
                              f"job {job_id} did not stop within {grace:g}s: SIGTERM")
        await asyncio.to_thread(self.executor.terminate, job_id)
        await asyncio.sleep(max(0.0, self.settings.kill_grace_seconds))
        if await asyncio.to_thread(self.executor.is_running, job_id):
            self.events.lifecycle(logging.WARNING, job_id,
                                  f"job {job_id} ignored SIGTERM: SIGKILL")
            await asyncio.to_thread(self.executor.kill, job_id)

    # -- interactive runs ---

    def _on_new_run(self, run_dir: Path, run: dict[str, Any]) -> None:
        """Tailer thread: a new interactive run directory appeared. Its ``params`` and
        ``tags`` are checked here, off the loop (the kernel checked them; the file is
        checked again before it is trusted)."""
        try:
            fields = check_run_fields(run.get("params"), run.get("tags"))
            refused = None
        except ValueError as error:
            fields, refused = ({}, []), str(error)
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(
                lambda: self.tasks.spawn(self._register_run(run_dir, run, fields, refused)))

    async def _register_run(self, run_dir: Path, run: dict[str, Any],
                            fields: tuple[dict[str, Any], list[str]],
                            refused: str | None) -> None:
        job_id = run_dir.name
        if await self.repository.find(job_id) is not None:
            return
        now = time.time()
        started = float(run.get("started") or now)
        row = {**interactive_row(run_dir, run, *fields, started=started, now=now),
               "boot_id": boot_id()}
        pid = run_pid(run)
        await self.repository.insert(row)
        if refused is not None:
            self.events.lifecycle(logging.WARNING, job_id, f"interactive run {job_id}: its "
                                  f"params and tags in run.json are ignored: {refused}")
        clock = self.new_clock()
        clock.resume()
        self.add(LiveJob(job_id, "interactive", run_dir, clock,
                         Followed(job_id, run_dir, "interactive"), None, pid, started))
        self.events.publish_state(self.events.presenter.public(
            await self.repository.row(job_id)), None)
        self.events.lifecycle(logging.INFO, job_id,
                              f"interactive run {job_id} ({row['name']}) found")

    # -- recovery ---

    async def recover(self) -> None:
        """Adopt the jobs whose processes still run; end those whose processes are gone."""
        this_boot = boot_id()
        for row in await self.repository.in_states(states.ACTIVE):
            job_id = row["id"]
            job_dir = Path(row["job_dir"])
            offsets, counters = await self.repository.tail_position(job_id)
            clock = self.new_clock(float(row["active_seconds"] or 0.0))
            if (row["state"] != states.PAUSED and row["segment_start"] is not None
                    and row["boot_id"] == this_boot):
                clock.segment_start = float(row["segment_start"])
            elif row["state"] != states.PAUSED:
                clock.resume()
            followed = Followed(job_id, job_dir, row["kind"], offsets=offsets,
                                counters=counters, latest=dict(row["latest_metrics"]),
                                progress=dict(row["progress"]),
                                processes=dict(row["processes"]), auto=dict(row["auto"]),
                                hparams=dict(row["hparams"]))
            if row["kind"] == "interactive":
                pid = (row["processes"].get("kernel") or {}).get("pid")
                job = LiveJob(job_id, "interactive", job_dir, clock, followed, None, pid,
                              row["started"])
                running = await asyncio.to_thread(run_alive, pid, row["started"])
            else:
                job = LiveJob(job_id, "papermill", job_dir, clock, followed,
                              row["timeout"] or None)
                running = await asyncio.to_thread(self.executor.adopt, job_id, job_dir,
                                                  row["processes"])
            self.live.add(job)
            if running:
                self.events.lifecycle(logging.INFO, job_id,
                                      f"job {job_id} adopted: its processes still run")
                self._watch(job)
                if row["state"] == states.STOPPING:
                    waited = time.time() - float(row["stop_requested"] or time.time())
                    self.escalate_later(job, self.settings.stop_grace_seconds - waited)
            elif self.finisher is not None:
                job.ended_unobserved = True
                job.finalizing = True
                await self.finisher.finalize(job_id)
