"""``NotebenchJobService``: the jobs capability's facade, configured as
``c.NotebenchJobService.<option>`` (a child configurable of the extension).

It holds the settings and wires the collaborators, each with one job:

- ``JobRepository`` (``repository``): every read and write of the jobs' tables;
- ``Submission`` (``submission``): a request to a checked job row and its directory;
- ``JobQueue`` (``jobqueue``): queued jobs in, admitted ones out through the executor;
- ``JobSupervisor`` (``supervisor``): the one owner of live jobs (``LiveJobs``), the tick,
  timeouts and stalls on an injectable clock, adoption, escalation; the ``Finisher``
  (``finalize``) ends them;
- ``JobControl`` (``control``): pause, resume, stop, cancel;
- ``RunsCatalogue`` (``runs``) and ``JobTrash`` (``trashcan``): working with runs;
- ``JobReader`` (``reading``) and ``JobPresenter`` (``presenting``): what the API shows.

Handlers call this facade; other capabilities see it through ``seams.JobsView``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Float, Instance, Int, List, Type, Unicode
from traitlets.config import LoggingConfigurable

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ApiError, bad_request
from ..logs.query import LogQuery
from ..tasks import TaskSet
from .compare import SeriesCache
from .control import JobControl
from .executor import Executor, ExecutorContext, LocalProcessExecutor
from .finalize import Finisher
from .ingest import IngestSink
from .jobdir import JOBS_FOLDER
from .jobqueue import JobQueue, QueueSettings
from .live import LiveJobs
from .machine import machine_facts
from .presenting import JobPresenter
from .reading import JobReader
from .repository import JobRepository
from .runs import RunsCatalogue
from .submission import Submission, SubmissionSettings, submission_options
from .supervisor import JobSupervisor, SupervisorSettings
from .transitions import JobEvents
from .trashcan import JobTrash, RetentionSettings

if TYPE_CHECKING:
    from ..seams import UsageSource
    from ..services import Services
    from .remote_control import RemoteControl

ACTIVITY_KEY = "notebench_jobs_last_activity"
#: what each kind of a forwarder's note says in the job's log
REMOTE_NOTES = {
    "reconnected": "its worker reaches the server again and resends what it buffered",
    "grace_stop": "its worker could not reach the server for the grace period: stopping",
    "buffer_full": "its worker holds too much unsent output: the job is paused there",
    "buffer_drained": "its worker sent what it held: the job continues",
}


class NotebenchJobService(LoggingConfigurable):
    """Training jobs: the settings and the collaborators (see the module docstring)."""

    cpu_slots = Int(1, help="Jobs that may run at once on the CPU (GPU jobs: one per GPU)."
                    ).tag(config=True)
    stop_grace_seconds = Float(
        30.0, help="Seconds a stopping job has to checkpoint and end before SIGTERM."
    ).tag(config=True)
    kill_grace_seconds = Float(
        5.0, help="Seconds between SIGTERM and SIGKILL when a job does not end."
    ).tag(config=True)
    default_timeout = Float(
        0.0, help="Active seconds a job may run when it names no timeout (0: no limit)."
    ).tag(config=True)
    stall_minutes = Float(
        10.0, help="Active minutes without a new metric after which a running job is "
        "reported stalled (0: never)."
    ).tag(config=True)
    tick_seconds = Float(0.5, help="Seconds between checks of running jobs.").tag(config=True)
    tail_interval = Float(
        0.05, help="Seconds between reads of the files of active jobs."
    ).tag(config=True)
    autosave_seconds = Int(
        10, help="papermill saves the output notebook at least this often during a cell."
    ).tag(config=True)
    kernel_start_timeout = Int(60, help="Seconds a job's kernel may take to start.").tag(
        config=True)
    resolve_auto = List(
        Unicode(), ["device", "precision", "num_workers"],
        help="Parameters whose value 'auto' the server resolves from the hardware profile "
        "when a job starts (others, like batch_size, are resolved by the kernel by "
        "measuring the real model).",
    ).tag(config=True)
    runner_python = Unicode(
        "", help="The Python that runs the papermill runner (default: the server's)."
    ).tag(config=True)
    executor_class = Type(
        LocalProcessExecutor, klass=Executor, help="How jobs run (the runner interface)."
    ).tag(config=True)
    retention_days = Float(
        0.0, help="Finished, unstarred jobs that ended more than this many days ago go to the "
        "trash (0: keep them all)."
    ).tag(config=True)
    trash_retention_days = Float(
        30.0, help="Jobs in the trash longer than this many days are purged for good "
        "(0: never automatically)."
    ).tag(config=True)
    retention_interval_seconds = Float(
        3600.0, help="Seconds between applications of the retention settings (0: never)."
    ).tag(config=True)
    max_sweep_jobs = Int(256, help="The most jobs one sweep may create.").tag(config=True)
    max_ingest_file_bytes = Int(
        20 * 1024**3, help="The largest file a remote job may forward to the server (413 "
        "past it)."
    ).tag(config=True)
    series_cache_points = Int(
        5_000_000, help="Metric points kept in memory for comparing runs (about 17 bytes "
        "each; least recently used series are dropped first)."
    ).tag(config=True)

    services = Instance("notebench.server.services.Services", allow_none=True)

    def __init__(self, *, services: Services, clock: Clock = SYSTEM_CLOCK,
                 **kwargs: Any) -> None:
        super().__init__(services=services, **kwargs)
        self.workspace = services.workspace
        self.runs_dir = self.workspace.root("artifacts") / JOBS_FOLDER
        self.executor: Executor = self.executor_class()
        self.executor.bind(ExecutorContext(parent=self, tokens=services.job_tokens,
                                           server_url=self._server_url,
                                           runs_dir=self.runs_dir,
                                           workspace=self.workspace.path))
        #: what remote jobs' forwarders read in the ingest answers (None: jobs run here)
        self.remote_control: RemoteControl | None = self.executor.remote_control()
        #: remote jobs' bytes into their server-side directories (the ingest routes)
        self.ingest = IngestSink(self.runs_dir)
        self.tasks = TaskSet()
        #: the machine's facts (cores, GPU UUIDs), read at start
        self.machine: dict[str, Any] = {}
        self.last_activity: float | None = None
        read_only = bool(self.workspace.read_only)
        app = services.config
        serverapp = getattr(app, "serverapp", None)
        self.repository = JobRepository(services.store, SeriesCache(self.series_cache_points))
        live = LiveJobs()
        self.presenter = JobPresenter(
            live, self.workspace.path,
            self.remote_control.placement if self.remote_control is not None else None,
            self.executor.name)
        self.events = JobEvents(self.repository, self.presenter, services.bus, services.logs)
        self.supervisor = JobSupervisor(
            live=live, repository=self.repository, events=self.events,
            executor=self.executor, tasks=self.tasks, runs_dir=self.runs_dir,
            store=services.store, bus=services.bus, logs=services.logs, clock=clock,
            settings=SupervisorSettings(
                tick_seconds=self.tick_seconds, tail_interval=self.tail_interval,
                stall_minutes=self.stall_minutes, kill_grace_seconds=self.kill_grace_seconds,
                stop_grace_seconds=self.stop_grace_seconds))
        self.reader = JobReader(self.repository, self.presenter, live)
        self.submission = Submission(
            server_root=_server_root(serverapp, self.workspace.path),
            notebooks=self.workspace.root("notebooks"), runs_dir=self.runs_dir,
            assets=services.assets, kernel_names=_kernel_names(serverapp),
            gpu_uuids=self._gpu_uuids,
            placement=self.executor.refusal if self.executor.places_jobs else None,
            settings=SubmissionSettings(
                default_timeout=self.default_timeout, autosave_seconds=self.autosave_seconds,
                kernel_start_timeout=self.kernel_start_timeout))
        self.jobqueue = JobQueue(
            repository=self.repository, events=self.events, supervisor=self.supervisor,
            submission=self.submission, reader=self.reader, hardware=services.hardware,
            machine=self.machine, read_only=read_only, settings=QueueSettings(
                cpu_slots=self.cpu_slots, runner_python=self.runner_python,
                resolve_auto=list(self.resolve_auto)))
        self.control_desk = JobControl(
            supervisor=self.supervisor, repository=self.repository, events=self.events,
            stop_grace_seconds=self.stop_grace_seconds,
            on_slot_free=self.jobqueue.schedule_soon)
        self.runs = RunsCatalogue(
            repository=self.repository, events=self.events, queue=self.jobqueue,
            reader=self.reader, supervisor=self.supervisor,
            default_timeout=self.default_timeout, max_sweep_jobs=self.max_sweep_jobs)
        self.trash = JobTrash(
            repository=self.repository, events=self.events, reader=self.reader,
            supervisor=self.supervisor, tasks=self.tasks, assets=services.assets,
            runs_dir=self.runs_dir, artifacts_root=self.workspace.root("artifacts"),
            read_only=read_only, settings=RetentionSettings(
                days=self.retention_days, trash_days=self.trash_retention_days,
                interval_seconds=self.retention_interval_seconds))
        self.supervisor.finisher = Finisher(
            supervisor=self.supervisor, repository=self.repository, events=self.events,
            tasks=self.tasks, assets=services.assets, on_slot_free=self.jobqueue.schedule_soon,
            resubmit=self.runs.restart)
        self.supervisor.on_timeout = self.control_desk.stop_for_timeout
        self.supervisor.on_busy = self._note_activity
        self.supervisor.retire_hooks.append(self.ingest.forget)
        self.supervisor.every_tick(self.jobqueue.schedule_if_wanted)
        self.supervisor.every_tick(self._note_queued_activity)
        self.supervisor.every_tick(self.reader.refresh_disk)
        self.supervisor.every_tick(self.trash.retention_tick)
        self._serverapp = serverapp

    # -- life cycle ---

    async def start(self) -> None:
        """Adopt the jobs a previous server left, then follow, tick and admit."""
        await asyncio.to_thread(self.runs_dir.mkdir, parents=True, exist_ok=True)
        self.machine.update(await asyncio.to_thread(machine_facts, self.workspace.path))
        await asyncio.to_thread(self.executor.open)
        await self.supervisor.start(recover=not self.workspace.read_only)
        self.tasks.spawn(asyncio.to_thread(_warm_imports))
        self.jobqueue.schedule_soon()

    async def stop(self) -> None:
        """Stop following; jobs keep running (the next server adopts them)."""
        self.tasks.cancel()
        await self.supervisor.stop()
        await asyncio.to_thread(self.executor.close)

    async def settle(self) -> None:
        """Wait for every background follow-up (artifact registration, admission …)."""
        await self.tasks.settle()

    @property
    def clock(self) -> Clock:
        """What the active clocks of jobs started from now on read (tests set a manual one)."""
        return self.supervisor.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.supervisor.clock = clock

    @property
    def ticks(self) -> int:
        """Completed ticks: tests wait for one after moving ``clock``."""
        return self.supervisor.ticks

    @property
    def started(self) -> bool:
        return self.supervisor.started

    def _gpu_uuids(self) -> list[str]:
        return list(self.machine.get("gpu_uuids") or [])

    def _require_writable(self) -> None:
        if self.workspace.read_only:
            raise ApiError(409, "read_only", self.workspace.read_only_reason())

    def _server_url(self) -> str:
        """The server's base URL (what remote jobs' forwarders send to)."""
        return str(getattr(self._serverapp, "connection_url", "") or "")

    async def placed(self, job_id: str) -> None:
        """A remote job's heartbeat said where it runs (first, or somewhere new): its
        record as an ``updated`` event, so views show the place."""
        self.events.publish_change(await self.get_job(job_id), "updated")

    def remote_note(self, job_id: str, note: dict[str, Any]) -> None:
        """What a remote job's forwarder reported (a cut, the grace's stop, its buffer):
        a lifecycle record of the job and a ``remote`` event on the ``jobs`` topic."""
        figures = ", ".join(f"{k} {v:g}" for k, v in note.items() if k != "kind")
        level = logging.INFO if note["kind"] in ("reconnected", "buffer_drained") else (
            logging.WARNING)
        self.events.lifecycle(level, job_id, f"job {job_id}: {REMOTE_NOTES[note['kind']]}"
                              + (f" ({figures})" if figures else ""))
        self.events.publish(job_id, "remote", {"job_id": job_id, **note})

    async def cluster(self) -> dict[str, Any]:
        """``GET lifecycle/cluster``: where jobs run (the executor's view)."""
        return await asyncio.to_thread(self.executor.cluster)

    async def _note_queued_activity(self) -> None:
        """Jobs waiting in the queue keep the server busy too (running ones already do):
        an idle culler must not stop a server with work in flight."""
        if not len(self.supervisor.live) and self.jobqueue.waiting:
            self._note_activity()

    def _note_activity(self) -> None:
        self.last_activity = time.time()
        web_app = getattr(self._serverapp, "web_app", None)
        if web_app is not None:
            web_app.settings[ACTIVITY_KEY] = datetime.datetime.now(datetime.timezone.utc)

    # -- what other capabilities use (``seams.JobsView``) and the app's hooks ---

    def pids(self, job_id: str) -> list[int]:
        """Every live process of a job, from its executor (blocking: call off the loop)."""
        if job_id not in self.supervisor.live:
            return []
        return self.executor.pids(job_id)

    async def job_pids(self, job_id: str) -> list[int]:
        """``pids`` off the event loop."""
        return await asyncio.to_thread(self.pids, job_id)

    def active_job_ids(self) -> list[str]:
        """Jobs and runs whose processes may run (running, paused, stopping)."""
        return self.supervisor.live.ids()

    def active_seconds(self, job_id: str) -> float | None:
        """A job's active time (paused time excluded), for stall and timeout rules."""
        job = self.supervisor.live.get(job_id)
        return None if job is None else job.clock.seconds()

    def seconds_since_metric(self, job_id: str) -> float | None:
        """Active seconds since the job's last metric point (or since it started)."""
        job = self.supervisor.live.get(job_id)
        if job is None:
            return None
        return max(0.0, job.clock.seconds() - job.clock.at_last_metric)

    def add_usage_source(self, source: UsageSource) -> None:
        """Fill the jobs' ``usage`` field from ``source`` (a later capability's figures:
        monitoring subscribes when it is created); the first answer that is not None wins."""
        self.presenter.add_usage_source(source)

    def health(self) -> dict[str, Any]:
        """Whether the runner machinery works: the tick and the tailer thread run."""
        if self.workspace.read_only:
            return {"ok": True, "status": "read_only",
                    "detail": "this server only reads the workspace: its owner runs the jobs"}
        problems = self.supervisor.alive()
        executor_problem = self.executor.problem()
        if executor_problem:
            problems.append(f"executor {self.executor.name}: {executor_problem}")
        if problems:
            return {"ok": False, "status": "failed", "detail": "; ".join(problems)}
        return {"ok": True, "status": "ok",
                "detail": f"running ({len(self.supervisor.live)} active jobs, executor "
                          f"{self.executor.name})"}

    def current_activity(self) -> list[dict[str, Any]] | None:
        """What keeps the server busy: the active jobs (None when there are none)."""
        records = self.supervisor.live.records()
        queued = self.jobqueue.waiting
        if not records and not queued:
            return None
        active = [{"type": "notebench_job", "job_id": j.job_id, "kind": j.kind}
                  for j in records]
        return active + ([{"type": "notebench_queued_jobs", "count": queued}] if queued else [])

    # -- the handlers' operations ---

    async def templates(self) -> dict[str, list[dict[str, Any]]]:
        """``{"templates": offered, "unavailable": not offered, with the reason}``."""
        return await self.submission.templates(await self.repository.template_durations())

    async def notebook_parameters(self, path: str) -> dict[str, Any]:
        return await self.submission.notebook_parameters(path)

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a request, snapshot the notebook and queue the job (400 on any problem)."""
        self._require_writable()
        if body.get("from_job") is not None:
            if body.get("notebook") is not None or body.get("template") is not None:
                raise bad_request("name exactly one of 'notebook', 'template' or 'from_job'",
                                  "invalid_request")
            return await self.runs.clone(body)
        source, template = await self.submission.source_of(body)
        options = submission_options(body, self.default_timeout)
        return await self.jobqueue.create(source, options, template=template)

    async def control(self, job_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """pause | resume | stop | cancel | restart; 409 with the state when not allowed."""
        self.control_desk.check_action(action)
        self._require_writable()
        if action == "restart":
            return await self.runs.restart(job_id, body)
        await self.control_desk.act(job_id, action)
        return await self.get_job(job_id)

    async def get_job(self, job_id: str) -> dict[str, Any]:
        return await self.reader.get_job(job_id)

    async def list_jobs(self, **filters: Any) -> dict[str, Any]:
        """A page of jobs (``JobReader.list_jobs``'s filters)."""
        return await self.reader.list_jobs(**filters)

    async def update_job(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self._require_writable()
        return await self.runs.update_job(job_id, body)

    async def compare(self, ids: list[str], modes: dict[str, str] | None = None
                      ) -> dict[str, Any]:
        return await self.runs.compare(ids, modes)

    async def runs_metrics_json(self, ids: list[str], names: list[str] | None,
                                max_points: int, layout: str = "buckets") -> bytes:
        return await self.runs.runs_metrics_json(ids, names, max_points, layout)

    async def submit_sweep(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require_writable()
        return await self.runs.submit_sweep(body)

    async def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        return await self.runs.get_sweep(sweep_id)

    async def list_sweeps(self, limit: int, offset: int) -> dict[str, Any]:
        return await self.runs.list_sweeps(limit, offset)

    async def delete_job(self, job_id: str) -> dict[str, Any]:
        self._require_writable()
        return await self.trash.delete_job(job_id)

    async def list_trash(self) -> dict[str, Any]:
        return await self.trash.list_trash()

    async def restore_job(self, job_id: str) -> dict[str, Any]:
        self._require_writable()
        return await self.trash.restore_job(job_id)

    async def purge_job(self, job_id: str) -> dict[str, Any]:
        self._require_writable()
        return await self.trash.purge_job(job_id)

    async def purge_trash(self, older_than_days: float | None = None) -> dict[str, Any]:
        return await self.trash.purge_trash(older_than_days)

    async def apply_retention(self, *, days: float | None = None,
                              trash_days: float | None = None) -> dict[str, Any]:
        return await self.trash.apply_retention(days=days, trash_days=trash_days)

    async def metrics(self, job_id: str, *, names: list[str] | None, since: float | None,
                      max_points: int | None, axis: str) -> dict[str, Any]:
        return await self.reader.metrics(job_id, names=names, since=since,
                                         max_points=max_points, axis=axis)

    def metrics_csv(self, job_id: str, *, names: list[str] | None,
                    since: float | None) -> AsyncIterator[bytes]:
        return self.reader.metrics_csv(job_id, names=names, since=since)

    async def job_logs(self, job_id: str, query: LogQuery) -> dict[str, Any]:
        return await self.reader.job_logs(job_id, query)

    async def output(self, job_id: str) -> bytes:
        return await self.reader.output(job_id)

    async def artifacts(self, job_id: str) -> dict[str, Any]:
        return await self.reader.artifacts(job_id)

    async def artifact_file(self, job_id: str, relative: str) -> Path:
        return await self.reader.artifact_file(job_id, relative)

    async def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return await self.repository.checkpoints(job_id)


def _server_root(serverapp: Any, workspace: Path) -> Path:
    """The Jupyter server's root directory (user notebooks are paths under it)."""
    root = getattr(serverapp, "root_dir", None)
    return Path(root or workspace.parent).expanduser().resolve()


def _kernel_names(serverapp: Any) -> Callable[[], Iterable[str]]:
    """The installed kernels' names, from the server's kernel spec manager (blocking)."""
    manager = getattr(serverapp, "kernel_spec_manager", None)
    if manager is None:
        from jupyter_client.kernelspec import KernelSpecManager

        manager = KernelSpecManager()
    return lambda: manager.find_kernel_specs().keys()


def _warm_imports() -> None:
    """Import papermill's translators once, in a thread, before a request needs them."""
    with contextlib.suppress(Exception):
        import papermill.translators  # noqa: F401
