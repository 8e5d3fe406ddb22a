"""``NotebenchJobService``: submission, the queue, reading, recovery of training jobs.

Handlers parse and answer; everything a job goes through happens here, on the event
loop, with blocking work (files, signals, psutil, SQLite) off it. Users configure it as
``c.NotebenchJobService.<option>`` (it is a child configurable of the extension).

The executor runs the jobs (``executor_class``, the local process executor by default),
the tailer follows their files, the store keeps their rows. A tick (``tick_seconds``)
notices runners that ended, timeouts and stalls on the jobs' own active clock (monotonic,
paused time excluded), and admits queued jobs. The active clocks read the service's
``clock`` (``notebench.server.clock``: the system's by default; tests set a manual one
before a job starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Float, Instance, Int, List, Type, Unicode
from traitlets.config import LoggingConfigurable

from notebench.jobprotocol import (
    ENVIRONMENT,
    JOB_DIR_ENV,
    JOB_ID_ENV,
    JOB_JSON,
    JOBS_TOPIC,
    NOTEBOOK,
    RESUME_ENV,
    cells_fraction,
    headline,
    job_topic,
    new_job_id,
    progress_fraction,
    steps_fraction,
    write_json_atomic,
)

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ApiError, bad_request, conflict, not_found
from ..logs.text import printable
from . import states
from . import store as jobstore
from .compare import SeriesCache
from .control import ControlMixin
from .executor import Executor, LaunchSpec, LocalProcessExecutor
from .finalize import FinalizeMixin
from .jobdir import boot_id
from .machine import job_profile, machine_facts, run_alive
from .params import ParameterError, check_values, coerce
from .queue import Admission, Slots, Waiting, admit, position
from .reading import ReadingMixin
from .runs import RunsMixin, load_snippet
from .submission import installed_packages, submission_options, write_job_dir
from .tailer import Followed, Tailer
from .templates import (
    NotebookSource,
    describe_template,
    list_templates,
    read_notebook,
    safe_child,
    template_path,
)

if TYPE_CHECKING:
    from ..seams import UsageSource
    from ..services import Services

log = logging.getLogger("notebench.jobs")

LIFECYCLE_SOURCE = "jobs"
MAX_PAGE = 500
DEFAULT_MAX_POINTS = 1000
MAX_POINTS_LIMIT = 10_000
ACTIVITY_KEY = "notebench_jobs_last_activity"


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
class Active:
    """What the service keeps in memory about a job whose processes may run."""

    job_id: str
    kind: str
    job_dir: Path
    clock: ActiveClock
    timeout: float | None = None
    run_pid: int | None = None  # interactive runs: the kernel that started the run
    run_started: float | None = None
    escalation: asyncio.Task[None] | None = None
    finalizing: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class NotebenchJobService(ControlMixin, FinalizeMixin, ReadingMixin, RunsMixin,
                 LoggingConfigurable):
    """Training jobs: the queue, the executor, the tailer and the job rows."""

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
    series_cache_points = Int(
        5_000_000, help="Metric points kept in memory for comparing runs (about 17 bytes "
        "each; least recently used series are dropped first)."
    ).tag(config=True)

    services = Instance("notebench.server.services.Services", allow_none=True)

    def __init__(self, *, services: Services, clock: Clock = SYSTEM_CLOCK,
                 **kwargs: Any) -> None:
        super().__init__(services=services, **kwargs)
        #: what the active clocks of jobs started from now on read (the tick reads them)
        self.clock: Clock = clock
        self.ticks = 0  # completed ticks: tests wait for one after moving ``clock``
        self.store = services.store
        self.bus = services.bus
        self.logs = services.logs
        self.workspace = services.workspace
        self.runs_dir = self.workspace.root("artifacts") / "jobs"
        self.executor: Executor = self.executor_class()
        self.tailer = Tailer(self.store, self.bus, self.logs, interval=self.tail_interval,
                             runs_dir=self.runs_dir, on_process=self._on_process,
                             on_new_run=self._on_new_run)
        self._active: dict[str, Active] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tick_task: asyncio.Task[None] | None = None
        self._schedule_lock = asyncio.Lock()
        self._schedule_wanted = False
        self._machine: dict[str, Any] | None = None
        self._packages: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.started = False
        self.last_activity: float | None = None
        self.series_cache = SeriesCache(self.series_cache_points)
        self._disk_checked = 0.0
        self._disk_measured: dict[str, float] = {}
        self._retention_checked = time.monotonic()
        self._usage_sources: list[UsageSource] = []

    # -- life cycle ---

    async def start(self) -> None:
        """Recover jobs a previous server left, then follow, tick and admit."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.runs_dir.mkdir, parents=True, exist_ok=True)
        self._machine = await asyncio.to_thread(machine_facts, self.workspace.path)
        known = await self.store.read(lambda conn: [r[0] for r in conn.execute(
            "SELECT id FROM jobs WHERE kind = 'interactive'").fetchall()])
        self.tailer.known_runs.update(known)
        await self.recover()
        self.tailer.start()
        self.started = True
        self._tick_task = asyncio.ensure_future(self._tick_loop())
        self._spawn(asyncio.to_thread(_warm_imports))
        self._schedule_soon()

    async def stop(self) -> None:
        """Stop following; jobs keep running (the next server adopts them)."""
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tick_task
            self._tick_task = None
        for active in self._active.values():
            if active.escalation is not None:
                active.escalation.cancel()
        for task in list(self._background):
            task.cancel()
        await asyncio.to_thread(self.tailer.stop)
        # the active clocks go to the store so that the next server continues them
        for active in list(self._active.values()):
            with contextlib.suppress(Exception):
                await self.store.write(lambda conn, a=active: jobstore.update_job(
                    conn, a.job_id, active_seconds=a.clock.accumulated,
                    segment_start=a.clock.segment_start))
        self.started = False

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _lock(self, job_id: str) -> asyncio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = asyncio.Lock()
        return lock

    # -- what other capabilities use ---

    def pids(self, job_id: str) -> list[int]:
        """Every live process of a job, from its executor (blocking: call off the loop)."""
        if job_id not in self._active:
            return []
        return self.executor.pids(job_id)

    async def job_pids(self, job_id: str) -> list[int]:
        """``pids`` off the event loop."""
        return await asyncio.to_thread(self.pids, job_id)

    def active_job_ids(self) -> list[str]:
        """Jobs and runs whose processes may run (running, paused, stopping)."""
        return list(self._active)

    def active_seconds(self, job_id: str) -> float | None:
        """A job's active time (paused time excluded), for stall and timeout rules."""
        active = self._active.get(job_id)
        return None if active is None else active.clock.seconds()

    def seconds_since_metric(self, job_id: str) -> float | None:
        """Active seconds since the job's last metric point (or since it started)."""
        active = self._active.get(job_id)
        if active is None:
            return None
        return max(0.0, active.clock.seconds() - active.clock.at_last_metric)

    def health(self) -> dict[str, Any]:
        """Whether the runner machinery works: the tick and the tailer thread run."""
        if self.workspace.read_only:
            return {"ok": True, "status": "read_only",
                    "detail": "this server only reads the workspace: its owner runs the jobs"}
        problems = []
        if not self.started:
            problems.append("the job service is not started")
        elif self._tick_task is None or self._tick_task.done():
            problems.append("the job tick ended")
        if self.started and not self.tailer.alive():
            problems.append("the job file tailer ended")
        if problems:
            return {"ok": False, "status": "failed", "detail": "; ".join(problems)}
        return {"ok": True, "status": "ok",
                "detail": f"running ({len(self._active)} active jobs, executor "
                          f"{self.executor.name})"}

    def add_usage_source(self, source: UsageSource) -> None:
        """Fill the jobs' ``usage`` field from ``source`` (a later capability's figures:
        monitoring subscribes when it is created); the first answer that is not None wins."""
        self._usage_sources.append(source)

    def _usage(self, job_id: str) -> dict[str, Any] | None:
        for source in self._usage_sources:
            usage = None
            with contextlib.suppress(Exception):
                usage = source(job_id)
            if usage is not None:
                return usage
        return None

    def current_activity(self) -> list[dict[str, Any]] | None:
        """What keeps the server busy: the active jobs (None when there are none)."""
        if not self._active:
            return None
        return [{"type": "notebench_job", "job_id": a.job_id, "kind": a.kind}
                for a in self._active.values()]

    # -- discovery ---

    def _server_root(self) -> Path:
        app = self.services.config if self.services else None
        root = getattr(getattr(app, "serverapp", None), "root_dir", None)
        return Path(root or self.workspace.path.parent).expanduser().resolve()

    def _display_path(self, path: Path) -> str:
        root = self._server_root()
        try:
            return path.resolve().relative_to(root).as_posix()
        except ValueError:
            return path.name

    async def templates(self) -> list[dict[str, Any]]:
        notebooks = self.workspace.root("notebooks")
        sources = await asyncio.to_thread(list_templates, notebooks)
        estimates = await self.store.read(jobstore.template_durations)
        out = []
        for source in sources:
            source.display_path = self._display_path(source.path)
            out.append(describe_template(source, estimates.get(source.path.stem)))
        return out

    async def notebook_parameters(self, path: str) -> dict[str, Any]:
        source = await asyncio.to_thread(self._read_user_notebook, path, False)
        return {"path": source.display_path, "kernel_name": source.kernel_name,
                "parameters_cell": source.cell.index,
                "parameters": [p.describe() for p in source.cell.parameters],
                "problems": source.cell.problems}

    def _read_user_notebook(self, path: str, validate: bool) -> NotebookSource:
        root = self._server_root()
        target = safe_child(root, path)
        return read_notebook(target, target.relative_to(root).as_posix(), validate=validate)

    def _read_template(self, name: str, validate: bool) -> NotebookSource:
        path = template_path(self.workspace.root("notebooks"), name)
        return read_notebook(path, self._display_path(path), validate=validate)

    # -- submission ---

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a request, snapshot the notebook and queue the job (400 on any problem)."""
        self._require_writable()
        if body.get("from_job") is not None:
            if body.get("notebook") is not None or body.get("template") is not None:
                raise bad_request("name exactly one of 'notebook', 'template' or 'from_job'",
                                  "invalid_request")
            return await self.clone(body)
        source, template = await self._source_of(body)
        options = submission_options(body, self.default_timeout)
        return await self._create(source, options, template=template)

    async def _source_of(self, body: dict[str, Any]) -> tuple[NotebookSource, str | None]:
        """The notebook a request names (``notebook`` or ``template``), validated."""
        notebook = body.get("notebook")
        template = body.get("template")
        if (notebook is None) == (template is None):
            raise bad_request("name exactly one of 'notebook' (a path under the server root), "
                              "'template' or 'from_job'", "invalid_request")
        if notebook is not None and not isinstance(notebook, str):
            raise bad_request("'notebook' must be a path", "invalid_request")
        if template is not None and not isinstance(template, str):
            raise bad_request("'template' must be a template name", "invalid_request")
        if template is not None:
            source = await asyncio.to_thread(self._read_template, template, True)
        else:
            try:
                source = await asyncio.to_thread(self._read_user_notebook, notebook, True)
            except ApiError as exc:
                if exc.status == 404:
                    raise bad_request(f"no such notebook: {notebook}", "unknown_notebook"
                                      ) from None
                raise
        return source, template

    async def _create(self, source: NotebookSource, options: dict[str, Any], *,
                      template: str | None, parent: dict[str, Any] | None = None,
                      resume_from: str | None = None, sweep_id: str | None = None,
                      cloned_from: str | None = None) -> dict[str, Any]:
        if source.cell.problems:
            raise bad_request("the parameters cell cannot be used: "
                              + "; ".join(source.cell.problems), "invalid_notebook")
        given = options["parameters"]
        try:
            checked = check_values(source.cell, given)
        except ParameterError as exc:
            raise bad_request(f"invalid parameters: {exc}", "invalid_parameters",
                              problems=exc.problems) from None
        resolved = await self._resolve_assets(source, checked)
        kernel_name = options.get("kernel_name") or source.kernel_name
        if not kernel_name:
            raise bad_request("the notebook names no kernel (metadata.kernelspec.name): "
                              "pass 'kernel_name'", "unknown_kernel")
        await self._check_kernel(kernel_name)
        resources = self._check_resources(options["resources"])

        job_id = new_job_id()
        job_dir = self.runs_dir / job_id
        now = time.time()
        name = options.get("name") or (template or Path(source.display_path).stem)
        row: dict[str, Any] = {
            "id": job_id, "kind": "papermill", "name": name, "state": states.QUEUED,
            "template": Path(source.path).stem if template else None,
            "notebook_path": source.display_path, "notebook_hash": source.sha256,
            "kernel_name": kernel_name, "job_dir": str(job_dir), "parameters": given,
            "resolved": resolved, "auto": {}, "resources": resources,
            "priority": options["priority"], "tags": options["tags"],
            "timeout": options["timeout"], "parent_id": parent["id"] if parent else None,
            "resume_from": resume_from, "created": now, "updated": now,
            "sweep_id": sweep_id, "cloned_from": cloned_from,
        }
        packages = await self._package_list()
        await asyncio.to_thread(write_job_dir, job_dir, source.data, packages,
                                self._job_json(row))
        try:
            await self.store.write(lambda conn: jobstore.insert_job(conn, row))
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, job_dir, True)  # no orphaned directory
            raise
        job = await self.get_job(job_id)
        self._publish_state(job, None)
        self._lifecycle(logging.INFO, job_id, f"job {job_id} ({name}) queued")
        self._schedule_soon()
        return job

    def _job_json(self, row: dict[str, Any]) -> dict[str, Any]:
        fields = ("id", "kind", "name", "template", "notebook_path", "notebook_hash",
                  "kernel_name", "parameters", "resolved", "auto", "resources", "priority",
                  "tags", "timeout", "parent_id", "resume_from", "created")
        return {**{k: row.get(k) for k in fields}, "notebook": NOTEBOOK,
                "environment": ENVIRONMENT, "autosave_seconds": self.autosave_seconds,
                "start_timeout": self.kernel_start_timeout}

    async def _resolve_assets(self, source: NotebookSource, checked: dict[str, Any]
                              ) -> dict[str, Any]:
        """Literal defaults and given values; asset references replaced by their paths."""
        resolved: dict[str, Any] = {}
        for param in source.cell.parameters:
            if param.name in checked:
                resolved[param.name] = checked[param.name]
            elif param.has_default and param.default_is_literal:
                resolved[param.name] = _json_default(param.default)
        assets = self.services.assets if self.services else None
        problems = []
        for param in source.cell.parameters:
            if not param.asset or param.name not in resolved:
                continue
            ref = resolved[param.name]
            if not isinstance(ref, str) or not ref:
                continue
            if assets is None:
                if Path(ref).is_absolute() and Path(ref).exists():
                    continue
                problems.append({"name": param.name, "message": "the asset registry is not "
                                 "available to resolve this asset"})
                continue
            try:
                asset = await assets.resolve(ref, param.asset)
            except ApiError as exc:
                problems.append({"name": param.name,
                                 "message": f"no {param.asset} asset {ref!r}: {exc.message}"})
                continue
            resolved[param.name] = str(asset["path"])
        if problems:
            message = "; ".join(f"{p['name']}: {p['message']}" for p in problems)
            raise bad_request(f"invalid parameters: {message}", "invalid_parameters",
                              problems=problems)
        return resolved

    async def _check_kernel(self, kernel_name: str) -> None:
        app = self.services.config if self.services else None
        manager = getattr(getattr(app, "serverapp", None), "kernel_spec_manager", None)
        if manager is None:
            from jupyter_client.kernelspec import KernelSpecManager

            manager = KernelSpecManager()
        try:
            specs = await asyncio.to_thread(manager.find_kernel_specs)
        except Exception:
            return
        if kernel_name not in specs:
            raise bad_request(f"no kernel named {kernel_name!r} (installed: "
                              f"{', '.join(sorted(specs)) or 'none'})", "unknown_kernel")

    def _check_resources(self, resources: dict[str, Any]) -> dict[str, Any]:
        gpus_known = self._gpu_uuids()
        gpus = resources.get("gpus")
        out: dict[str, Any] = {}
        if isinstance(gpus, list):
            if not all(isinstance(u, str) for u in gpus):
                raise bad_request("resources.gpus must be a count or a list of GPU UUIDs",
                                  "invalid_resources")
            unknown = [u for u in gpus if u not in gpus_known]
            if unknown:
                raise bad_request(f"unknown GPU UUIDs: {', '.join(unknown)}",
                                  "invalid_resources")
            out["gpu_uuids"] = list(dict.fromkeys(gpus))
            out["gpus"] = len(out["gpu_uuids"])
            out["pinned"] = True
        else:
            count = 1 if gpus is None and gpus_known else (0 if gpus is None else gpus)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise bad_request("resources.gpus must be a count or a list of GPU UUIDs",
                                  "invalid_resources")
            if count > len(gpus_known):
                raise bad_request(f"{count} GPUs asked for, {len(gpus_known)} available",
                                  "invalid_resources")
            out["gpus"] = count
        cpus = resources.get("cpus")
        if cpus is not None:
            if not isinstance(cpus, int) or isinstance(cpus, bool) or cpus < 1:
                raise bad_request("resources.cpus must be a positive integer",
                                  "invalid_resources")
            out["cpus"] = cpus
        return out

    async def _package_list(self) -> str:
        if self._packages is None:
            self._packages = await asyncio.to_thread(installed_packages)
        return self._packages

    # -- reading ---

    async def get_row(self, job_id: str) -> dict[str, Any]:
        row = await self.store.read(lambda conn: jobstore.get_job(conn, job_id))
        if row is None:
            raise not_found(f"no job {job_id}", "unknown_job")
        return row

    async def get_job(self, job_id: str) -> dict[str, Any]:
        row = await self.get_row(job_id)
        if row["trashed_at"] is None and self._disk_stale(job_id, row["disk_bytes"]):
            row["disk_bytes"] = await self._measure_disk(job_id, Path(row["job_dir"]))
        waiting = None
        if row["state"] == states.QUEUED:
            waiting = await self._waiting()
        return self._public(row, waiting)

    async def list_jobs(self, *, states_filter: list[str] | None = None,
                        tag: str | None = None, kind: str | None = None,
                        template: str | None = None, parent_id: str | None = None,
                        limit: int = 100, offset: int = 0, **more: Any) -> dict[str, Any]:
        """A page of jobs; ``more``: the other filters and ``sort`` of ``store.list_jobs``."""
        rows, total = await self.store.read(lambda conn: jobstore.list_jobs(
            conn, states=states_filter, tag=tag, kind=kind, template=template,
            parent_id=parent_id, limit=limit, offset=offset, **more))
        waiting = await self._waiting() if any(
            r["state"] == states.QUEUED for r in rows) else None
        return {"jobs": [self._public(r, waiting) for r in rows], "total": total,
                "limit": limit, "offset": offset}

    def _public(self, row: dict[str, Any], waiting: list[Waiting] | None = None
                ) -> dict[str, Any]:
        job_id = row["id"]
        active = self._active.get(job_id)
        followed = self.tailer.get(job_id)
        progress = dict(followed.progress) if followed is not None else dict(row["progress"])
        latest = dict(followed.latest) if followed is not None else dict(row["latest_metrics"])
        error = (followed.error if followed is not None and followed.error else row["error"])
        duration = active.clock.seconds() if active is not None else row["active_seconds"]
        for key, fraction in (("fraction_cells", cells_fraction(progress)),
                              ("fraction_steps", steps_fraction(progress))):
            if fraction is not None:
                progress[key] = fraction
        progress["fraction"] = progress_fraction(progress, row["state"])
        progress.update(self._eta(job_id, progress, row["state"]))
        usage = self._usage(job_id)
        return {
            "id": job_id, "kind": row["kind"], "name": row["name"], "state": row["state"],
            "reason": row["reason"], "template": row["template"],
            "notebook": {"path": row["notebook_path"], "sha256": row["notebook_hash"],
                         "kernel_name": row["kernel_name"]},
            "job_dir": self._workspace_relative(Path(row["job_dir"])),
            "parameters": row["parameters"], "resolved_parameters": row["resolved"],
            "auto": dict(followed.auto) if followed is not None and followed.auto else row["auto"],
            "resources": row["resources"], "priority": row["priority"],
            "tags": row["tags"], "timeout": row["timeout"], "parent_id": row["parent_id"],
            "resume_from": row["resume_from"], "created": row["created"],
            "started": row["started"], "ended": row["ended"], "updated": row["updated"],
            "duration": round(duration or 0.0, 3), "progress": progress,
            "latest_metrics": latest, "headline": headline(latest),
            "final_metrics": row["final_metrics"], "error": error,
            "artifact_count": row["artifact_count"], "model": row["model"],
            "processes": (dict(followed.processes) if followed is not None
                          and followed.processes else row["processes"]),
            "usage": usage, "stalled": bool(active and active.clock.stalled),
            "stop_requested": row["stop_requested"],
            "queue_position": (position(waiting, job_id) if waiting is not None
                               and row["state"] == states.QUEUED else None),
            "notes": row["notes"], "starred": bool(row["starred"]),
            "sweep_id": row["sweep_id"], "cloned_from": row["cloned_from"],
            "trashed_at": row["trashed_at"], "disk_bytes": row["disk_bytes"],
            "load_snippet": (load_snippet(job_id) if row["model"]
                             or row["state"] in (states.SUCCEEDED, states.STOPPED) else None),
        }

    def _workspace_relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.workspace.path).as_posix()
        except ValueError:
            return path.name

    # -- states and events ---

    async def _set_state(self, job_id: str, target: str, reason: str | None,
                         **fields: Any) -> dict[str, Any]:
        row = await self.get_row(job_id)
        previous = row["state"]
        if previous != target and not states.can_move(previous, target):
            raise conflict(f"a {previous} job cannot become {target}", "invalid_transition",
                           state=previous)
        now = time.time()
        update = {"state": target, "reason": reason, "updated": now, **fields}
        await self.store.write(lambda conn: jobstore.update_job(conn, job_id, **update))
        row.update(update)
        job = self._public(row)
        if previous != target:
            self._publish_state(job, previous)
        return job

    def _publish_state(self, job: dict[str, Any], previous: str | None) -> None:
        data = {"job_id": job["id"], "state": job["state"], "previous": previous,
                "reason": job["reason"], "job": job}
        self.bus.publish(JOBS_TOPIC, "state", data)
        self.bus.publish(job_topic(job["id"]), "state", data)

    def _lifecycle(self, level: int, job_id: str, message: str) -> None:
        """One lifecycle record: one line (names and reasons in it are user text)."""
        if self.logs.writable:
            self.logs.append(level, LIFECYCLE_SOURCE, printable(message), job_id=job_id)

    def _require_writable(self) -> None:
        if self.workspace.read_only:
            raise ApiError(409, "read_only", self.workspace.read_only_reason())

    # -- the queue ---

    def _schedule_soon(self) -> None:
        self._schedule_wanted = True
        if self.started and self._loop is not None:
            self._loop.call_soon(lambda: self._spawn(self._schedule()))

    async def _waiting(self) -> list[Waiting]:
        rows = await self.store.read(lambda conn: jobstore.jobs_in_states(conn, [states.QUEUED]))
        return [_waiting(r) for r in rows]

    async def _schedule(self) -> None:
        """Admit queued jobs into free slots (priority, then age)."""
        if not self.started or self.workspace.read_only:
            return
        async with self._schedule_lock:
            self._schedule_wanted = False
            rows = await self.store.read(lambda conn: jobstore.jobs_in_states(
                conn, [states.QUEUED, *states.ACTIVE]))
            queued = [r for r in rows if r["state"] == states.QUEUED]
            if not queued:
                return
            busy = [r for r in rows if r["state"] in states.ACTIVE and r["kind"] == "papermill"]
            used_gpus = {u for r in busy for u in (r["resources"].get("gpu_uuids") or [])}
            cpu_used = sum(1 for r in busy if not r["resources"].get("gpu_uuids"))
            free = Slots(cpu_free=self.cpu_slots - cpu_used,
                         gpus_free=[u for u in self._gpu_uuids() if u not in used_gpus])
            by_id = {r["id"]: r for r in queued}
            for admission in admit([_waiting(r) for r in queued], free):
                try:
                    await self._launch(by_id[admission.job_id], admission)
                except Exception as exc:
                    log.exception("job %s could not start", admission.job_id)
                    with contextlib.suppress(Exception):
                        await self._set_state(admission.job_id, states.FAILED,
                                              f"could not start: {exc}"[:500], ended=time.time())

    async def _launch(self, row: dict[str, Any], admission: Admission) -> None:
        async with self._lock(row["id"]):
            current = await self.get_row(row["id"])
            if current["state"] != states.QUEUED:
                return  # cancelled while the queue was deciding
            await self._launch_locked(current, admission)

    async def _launch_locked(self, row: dict[str, Any], admission: Admission) -> None:
        job_id = row["id"]
        job_dir = Path(row["job_dir"])
        resources = dict(row["resources"])
        resources["gpu_uuids"] = list(admission.gpu_uuids)
        resources["threads"] = resources.get("cpus") or self._default_cpus()
        resolved, auto = await self._resolve_auto(row, resources)
        job_json = self._job_json({**row, "resolved": resolved, "auto": auto,
                                   "resources": resources})
        await asyncio.to_thread(write_json_atomic, job_dir / JOB_JSON, job_json)
        env = self._environment(row, resources)
        spec = LaunchSpec(job_id, job_dir, env, self.runner_python or sys.executable)
        processes = await asyncio.to_thread(self.executor.launch, spec)
        clock = ActiveClock(source=self.clock)
        clock.resume()
        timeout = row["timeout"] if row["timeout"] else None
        self._active[job_id] = Active(job_id, "papermill", job_dir, clock, timeout)
        self.tailer.follow(Followed(job_id, job_dir, "papermill", processes=dict(processes),
                                    auto=dict(auto)))
        self._watch(self._active[job_id])
        try:
            await self._set_state(job_id, states.RUNNING, None, started=time.time(),
                                  resolved=resolved, auto=auto, resources=resources,
                                  processes=processes, segment_start=clock.segment_start,
                                  boot_id=boot_id())
        except BaseException:
            # the job did not become running: nothing of it may keep running
            self.tailer.unfollow(job_id)
            self._active.pop(job_id, None)
            await asyncio.to_thread(self.executor.kill, job_id)
            self.executor.forget(job_id)
            raise
        self._lifecycle(logging.INFO, job_id,
                        f"job {job_id} started (runner pid {processes['runner']['pid']})")

    def _environment(self, row: dict[str, Any], resources: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env[JOB_ID_ENV] = row["id"]
        env[JOB_DIR_ENV] = row["job_dir"]
        env.pop(RESUME_ENV, None)
        if row["resume_from"]:
            env[RESUME_ENV] = row["resume_from"]
        if self._gpu_uuids() or resources.get("gpu_uuids"):
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
            env["CUDA_VISIBLE_DEVICES"] = ",".join(resources.get("gpu_uuids") or [])
        threads = str(resources["threads"])
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = env["NOTEBENCH_NUM_THREADS"] = threads
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def _resolve_auto(self, row: dict[str, Any], resources: dict[str, Any]
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
        """'auto' values of ``resolve_auto`` parameters, from the job's share of the machine."""
        resolved = dict(row["resolved"])
        wanted = [n for n, v in resolved.items() if v == "auto" and n in self.resolve_auto]
        hardware = self.services.hardware if self.services else None
        if not wanted or hardware is None:
            return resolved, {}
        try:
            profile = await hardware.profile()
        except Exception as exc:
            log.warning("job %s: no hardware profile to resolve 'auto' (%s)", row["id"], exc)
            return resolved, {}
        from notebench.hardware import recommended_settings

        view = job_profile(profile, resources)
        settings = await asyncio.to_thread(recommended_settings, view)
        source = await asyncio.to_thread(read_notebook, Path(row["job_dir"]) / NOTEBOOK,
                                         NOTEBOOK)
        params = source.cell.by_name()
        auto: dict[str, Any] = {}
        for name in wanted:
            setting = settings.get(name)
            if not setting or name not in params:
                continue
            try:
                value = coerce(params[name], setting["value"])
            except ValueError:
                continue
            resolved[name] = value
            auto[name] = {"value": value, "reason": setting.get("reason", ""),
                          "source": "server"}
        return resolved, auto

    def _default_cpus(self) -> int:
        cores = int((self._machine or {}).get("cores") or os.cpu_count() or 1)
        slots = max(1, self.cpu_slots + len(self._gpu_uuids()))
        return max(1, cores // slots)

    def _gpu_uuids(self) -> list[str]:
        return list((self._machine or {}).get("gpu_uuids") or [])

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
            await asyncio.sleep(self.tick_seconds)

    async def _tick(self) -> None:
        if self._active:
            self._note_activity()
        ids = [a.job_id for a in self._active.values() if not a.finalizing]
        alive = await asyncio.to_thread(self._liveness, ids) if ids else {}
        for job_id in ids:
            active = self._active.get(job_id)
            if active is None or active.finalizing:
                continue
            followed = self.tailer.get(job_id)
            ended = not alive.get(job_id, True)
            if active.kind == "interactive" and followed is not None and followed.run_end:
                ended = True
            if ended:
                self._job_ended(job_id)
                continue
            self._check_clock(active, followed)
            self._note_rate(active, followed)
        if self._schedule_wanted:
            await self._schedule()
        await self._refresh_disk()
        await self._retention_tick()

    def _liveness(self, ids: list[str]) -> dict[str, bool]:
        out = {}
        for job_id in ids:
            active = self._active.get(job_id)
            if active is None:
                continue
            if active.kind == "interactive":
                out[job_id] = run_alive(active.run_pid, active.run_started)
            else:
                out[job_id] = self.executor.is_running(job_id)
        return out

    def _check_clock(self, active: Active, followed: Followed | None) -> None:
        clock = active.clock
        if followed is not None and followed.metric_points != clock.points_seen:
            clock.points_seen = followed.metric_points
            clock.at_last_metric = clock.seconds()
            if clock.stalled:
                clock.stalled = False
                self.bus.publish(job_topic(active.job_id), "stalled",
                                 {"job_id": active.job_id, "stalled": False})
        if clock.segment_start is None:
            return  # paused: neither the timeout nor the stall clock runs
        if (active.timeout and clock.seconds() > active.timeout
                and "timeout" not in active.extra):
            active.extra["timeout"] = True
            self._spawn(self._timeout(active.job_id))
        stall = self.stall_minutes * 60
        if stall > 0 and not clock.stalled and clock.seconds() - clock.at_last_metric > stall:
            clock.stalled = True
            data = {"job_id": active.job_id, "stalled": True,
                    "seconds_since_metric": round(clock.seconds() - clock.at_last_metric, 1)}
            self.bus.publish(job_topic(active.job_id), "stalled", data)
            self.bus.publish(JOBS_TOPIC, "stalled", data)
            self._lifecycle(logging.WARNING, active.job_id,
                            f"job {active.job_id} reported no metric for "
                            f"{data['seconds_since_metric']:g} active seconds")

    async def _timeout(self, job_id: str) -> None:
        async with self._lock(job_id):
            row = await self.get_row(job_id)
            if row["state"] not in (states.RUNNING, states.PAUSED):
                return
            self._lifecycle(logging.WARNING, job_id,
                            f"job {job_id} ran past its timeout of {row['timeout']:g}s")
            await self._begin_stop(row, "timeout")

    def _note_activity(self) -> None:
        self.last_activity = time.time()
        app = self.services.config if self.services else None
        web_app = getattr(getattr(app, "serverapp", None), "web_app", None)
        if web_app is not None:
            web_app.settings[ACTIVITY_KEY] = datetime.datetime.now(datetime.timezone.utc)

    # -- interactive runs ---

    def _on_process(self, job_id: str, role: str, record: dict[str, Any]) -> None:
        """Tailer thread: the runner reported a process."""
        self.executor.note_process(job_id, role, record)

    def _on_new_run(self, run_dir: Path, run: dict[str, Any]) -> None:
        """Tailer thread: a new interactive run directory appeared."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(lambda: self._spawn(self._register_run(run_dir, run)))

    async def _register_run(self, run_dir: Path, run: dict[str, Any]) -> None:
        job_id = run_dir.name
        existing = await self.store.read(lambda conn: jobstore.get_job(conn, job_id))
        if existing is not None:
            return
        now = time.time()
        pid = run.get("pid") if isinstance(run.get("pid"), int) else None
        started = float(run.get("started") or now)
        row = {"id": job_id, "kind": "interactive", "name": str(run.get("name") or job_id),
               "state": states.RUNNING, "job_dir": str(run_dir), "created": started,
               "started": started, "updated": now, "boot_id": boot_id(),
               "processes": {"kernel": {"pid": pid}} if pid else {}}
        await self.store.write(lambda conn: jobstore.insert_job(conn, row))
        clock = ActiveClock(source=self.clock)
        clock.resume()
        self._active[job_id] = Active(job_id, "interactive", run_dir, clock, None, pid, started)
        self.tailer.follow(Followed(job_id, run_dir, "interactive"))
        job = await self.get_job(job_id)
        self._publish_state(job, None)
        self._lifecycle(logging.INFO, job_id,
                        f"interactive run {job_id} ({row['name']}) found")

    # -- recovery ---

    async def recover(self) -> None:
        """Adopt the jobs whose processes still run; end those whose processes are gone."""
        if self.workspace.read_only:
            return
        rows = await self.store.read(lambda conn: jobstore.jobs_in_states(conn, states.ACTIVE))
        this_boot = boot_id()
        for row in rows:
            job_id = row["id"]
            job_dir = Path(row["job_dir"])
            offsets = await self.store.read(lambda conn, j=job_id: jobstore.get_offsets(conn, j))
            counters = await self.store.read(
                lambda conn, j=job_id: jobstore.metric_counters(conn, j))
            clock = ActiveClock(float(row["active_seconds"] or 0.0), source=self.clock)
            if (row["state"] != states.PAUSED and row["segment_start"] is not None
                    and row["boot_id"] == this_boot):
                clock.segment_start = float(row["segment_start"])
            elif row["state"] != states.PAUSED:
                clock.resume()
            followed = Followed(job_id, job_dir, row["kind"], offsets=offsets,
                                counters=counters, latest=dict(row["latest_metrics"]),
                                progress=dict(row["progress"]),
                                processes=dict(row["processes"]), auto=dict(row["auto"]))
            if row["kind"] == "interactive":
                pid = (row["processes"].get("kernel") or {}).get("pid")
                active = Active(job_id, "interactive", job_dir, clock, None, pid, row["started"])
                alive = await asyncio.to_thread(run_alive, pid, row["started"])
            else:
                active = Active(job_id, "papermill", job_dir, clock, row["timeout"] or None)
                alive = await asyncio.to_thread(self.executor.adopt, job_id, job_dir,
                                                row["processes"])
            self._active[job_id] = active
            self.tailer.follow(followed)
            if alive:
                self._lifecycle(logging.INFO, job_id, f"job {job_id} adopted: its processes "
                                "still run")
                self._watch(active)
                if row["state"] == states.STOPPING and row["kind"] == "papermill":
                    waited = time.time() - float(row["stop_requested"] or time.time())
                    active.escalation = self._spawn(
                        self._escalate(job_id, self.stop_grace_seconds - waited))
            else:
                active.extra["server_down"] = True
                active.finalizing = True
                await self._finalize(job_id)


# -- helpers ---------------------------------------------------------------------------------------


def _waiting(row: dict[str, Any]) -> Waiting:
    resources = row["resources"] or {}
    pinned = tuple(resources.get("gpu_uuids") or ())
    return Waiting(row["id"], int(row["priority"]), float(row["created"]),
                   int(row.get("seq") or 0), int(resources.get("gpus") or 0), pinned)


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def _warm_imports() -> None:
    """Import papermill's translators once, in a thread, before a request needs them."""
    with contextlib.suppress(Exception):
        import papermill.translators  # noqa: F401
