"""``JobQueue``: jobs in (queued), and out into free slots (launched on the executor).

``enqueue`` writes the job directory and the row of a job ``Submission`` checked, then
announces it. Admission runs when something may have changed (a job queued, ended or was
cancelled) and at each tick: queued jobs go, by priority then age (``queue.admit``), into
the free CPU slots and GPUs. Launching resolves the ``auto`` parameters from the job's
share of the machine, writes the final ``job.json``, starts the runner through the
executor and makes the job live with the supervisor; a job that cannot start fails with
the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import (
    JOB_DIR_ENV,
    JOB_ID_ENV,
    JOB_JSON,
    NOTEBOOK,
    RESUME_ENV,
    write_json_atomic,
)

from . import states
from .executor import LaunchSpec
from .jobdir import boot_id
from .live import Followed, LiveJob
from .machine import job_profile, thread_env
from .params import coerce
from .queue import Admission, Slots, admit, waiting_of
from .templates import NotebookSource, read_notebook

if TYPE_CHECKING:
    from ..seams import HardwareView
    from .reading import JobReader
    from .repository import JobRepository
    from .submission import Submission
    from .supervisor import JobSupervisor
    from .transitions import JobEvents

log = logging.getLogger("notebench.jobs")

#: how often queued jobs are offered again to a cluster with no capacity for them
CLUSTER_RECHECK_SECONDS = 1.0


@dataclass
class QueueSettings:
    """The job service's settings admission and launching apply."""

    cpu_slots: int = 1
    runner_python: str = ""
    resolve_auto: list[str] = field(default_factory=list)


class JobQueue:
    """Queued jobs and their admission (see the module docstring)."""

    def __init__(self, *, repository: JobRepository, events: JobEvents,
                 supervisor: JobSupervisor, submission: Submission, reader: JobReader,
                 hardware: HardwareView | None, machine: Mapping[str, Any],
                 settings: QueueSettings, read_only: bool) -> None:
        self.repository = repository
        self.events = events
        self.supervisor = supervisor
        self.submission = submission
        self.reader = reader
        self.hardware = hardware
        self.machine = machine  # the machine's facts (cores, GPU UUIDs), filled at start
        self.settings = settings
        self.read_only = read_only
        self._lock = asyncio.Lock()
        self._wanted = False
        self._waiting_on_cluster = False  # jobs wait for a cluster's capacity
        self._checked = 0.0  # monotonic time of the last admission
        #: jobs left queued by the last admission (they keep the server busy)
        self.waiting = 0

    def gpu_uuids(self) -> list[str]:
        return list(self.machine.get("gpu_uuids") or [])

    # -- in ---

    async def create(self, source: NotebookSource, options: dict[str, Any], *,
                     template: str | None, **links: Any) -> dict[str, Any]:
        """A new queued job: checked (``Submission.job_row``; ``links``: its parent,
        checkpoint to resume from, sweep or the job it was cloned from), its directory
        and row written, announced, admitted soon."""
        row = await self.submission.job_row(source, options, template=template, **links)
        await self.submission.write_job_dir(row, source)
        try:
            await self.repository.insert(row)
        except BaseException:  # no orphaned directory
            await asyncio.to_thread(shutil.rmtree, row["job_dir"], True)
            raise
        job = await self.reader.get_job(row["id"])
        self.events.publish_state(job, None)
        self.events.lifecycle(logging.INFO, row["id"], f"job {row['id']} ({row['name']}) "
                              "queued")
        self.schedule_soon()
        return job

    # -- out ---

    def schedule_soon(self) -> None:
        """Admit queued jobs soon (now, when the supervisor runs; else at its start)."""
        self._wanted = True
        if self.supervisor.started:
            asyncio.get_running_loop().call_soon(
                lambda: self.supervisor.tasks.spawn(self.schedule()))

    async def schedule_if_wanted(self) -> None:
        """The tick's admission: when something asked for it since, or, on a cluster,
        while jobs wait (workers join and free up without telling the server), at most
        every ``CLUSTER_RECHECK_SECONDS``."""
        now = time.monotonic()
        if self._wanted or (self._waiting_on_cluster
                            and now - self._checked >= CLUSTER_RECHECK_SECONDS):
            await self.schedule()

    async def schedule(self) -> None:
        """Admit queued jobs into free slots (priority, then age)."""
        if not self.supervisor.started or self.read_only:
            return
        async with self._lock:
            self._wanted = False
            self._checked = time.monotonic()
            rows = await self.repository.in_states([states.QUEUED, *states.ACTIVE])
            queued = [r for r in rows if r["state"] == states.QUEUED]
            self._waiting_on_cluster = False
            self.waiting = len(queued)
            if not queued:
                return
            busy = [r for r in rows if r["state"] in states.ACTIVE and r["kind"] == "papermill"]
            free = await self._free_slots(busy)
            by_id = {r["id"]: r for r in queued}
            admitted = admit([waiting_of(r) for r in queued], free)
            self.waiting = len(queued) - len(admitted)
            self._waiting_on_cluster = (self.supervisor.executor.places_jobs
                                        and len(admitted) < len(queued))
            for admission in admitted:
                try:
                    await self._launch(by_id[admission.job_id], admission)
                except Exception as exc:
                    log.exception("job %s could not start", admission.job_id)
                    with contextlib.suppress(Exception):
                        await self.events.set_state(admission.job_id, states.FAILED,
                                                    f"could not start: {exc}"[:500],
                                                    ended=time.time())

    async def _free_slots(self, busy: list[dict[str, Any]]) -> Slots:
        """The executor's free slots when it places jobs itself (a cluster), else one per
        local GPU and ``cpu_slots`` on the CPU, less what ``busy`` jobs hold."""
        executor = self.supervisor.executor
        if executor.places_jobs:
            return await asyncio.to_thread(executor.free_slots, busy)
        used_gpus = {u for r in busy for u in (r["resources"].get("gpu_uuids") or [])}
        cpu_used = sum(1 for r in busy if not r["resources"].get("gpu_uuids"))
        return Slots(cpu_free=self.settings.cpu_slots - cpu_used,
                     gpus_free=[u for u in self.gpu_uuids() if u not in used_gpus])

    async def _launch(self, row: dict[str, Any], admission: Admission) -> None:
        async with self.supervisor.lock(row["id"]):
            current = await self.repository.row(row["id"])
            if current["state"] != states.QUEUED:
                return  # cancelled while the queue was deciding
            await self._launch_locked(current, admission)

    async def _launch_locked(self, row: dict[str, Any], admission: Admission) -> None:
        job_id = row["id"]
        job_dir = Path(row["job_dir"])
        resources = dict(row["resources"])
        remote = self.supervisor.executor.places_jobs
        # on a cluster the worker pins its own GPUs; the admission's names are placeholders
        resources["gpu_uuids"] = [] if remote else list(admission.gpu_uuids)
        # on a cluster a job not asking for CPUs gets its worker's share (set there)
        resources["threads"] = resources.get("cpus") or (None if remote
                                                         else self._default_cpus())
        # 'auto' settings describe the machine a job runs on: a cluster job's kernel
        # resolves its own on the worker (notebench.resolve_settings)
        resolved, auto = ((dict(row["resolved"]), {}) if remote
                          else await self._resolve_auto(row, resources))
        job_json = self.submission.job_json({**row, "resolved": resolved, "auto": auto,
                                             "resources": resources})
        await asyncio.to_thread(write_json_atomic, job_dir / JOB_JSON, job_json)
        spec = LaunchSpec(job_id, job_dir, self._environment(row, resources),
                          self.settings.runner_python or sys.executable)
        supervisor = self.supervisor
        processes = await asyncio.to_thread(supervisor.executor.launch, spec)
        clock = supervisor.new_clock()
        clock.resume()
        supervisor.add(LiveJob(job_id, "papermill", job_dir, clock,
                               Followed(job_id, job_dir, "papermill",
                                        processes=dict(processes), auto=dict(auto)),
                               row["timeout"] or None))
        try:
            await self.events.set_state(job_id, states.RUNNING, None, started=time.time(),
                                        resolved=resolved, auto=auto, resources=resources,
                                        processes=processes,
                                        segment_start=clock.segment_start, boot_id=boot_id())
        except BaseException:
            await supervisor.abandon(job_id)
            raise
        where = (f"submitted to the {supervisor.executor.name} cluster" if remote
                 else f"started (runner pid {processes['runner']['pid']})")
        self.events.lifecycle(logging.INFO, job_id, f"job {job_id} {where}")

    def _environment(self, row: dict[str, Any], resources: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env[JOB_ID_ENV] = row["id"]
        env[JOB_DIR_ENV] = row["job_dir"]
        env.pop(RESUME_ENV, None)
        if row["resume_from"]:
            env[RESUME_ENV] = row["resume_from"]
        if not self.supervisor.executor.places_jobs and (
                self.gpu_uuids() or resources.get("gpu_uuids")):
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
            env["CUDA_VISIBLE_DEVICES"] = ",".join(resources.get("gpu_uuids") or [])
        if resources["threads"]:
            env.update(thread_env(int(resources["threads"])))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def _resolve_auto(self, row: dict[str, Any], resources: dict[str, Any]
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
        """'auto' values of ``resolve_auto`` parameters, from the job's share of the machine."""
        resolved = dict(row["resolved"])
        wanted = [n for n, v in resolved.items()
                  if v == "auto" and n in self.settings.resolve_auto]
        if not wanted or self.hardware is None:
            return resolved, {}
        source = await asyncio.to_thread(read_notebook, Path(row["job_dir"]) / NOTEBOOK,
                                         NOTEBOOK)
        kernel = row["kernel_name"] or source.kernel_name  # the kernel the job will run
        try:  # its environment's torch facts (another venv's, maybe), the machine's share
            profile = await self.hardware.profile(kernel)
        except Exception as exc:
            log.warning("job %s: no hardware profile of kernel %s to resolve 'auto' (%s)",
                        row["id"], kernel, exc)
            return resolved, {}
        from notebench.hardware import recommended_settings

        view = job_profile(profile, resources)
        settings = await asyncio.to_thread(recommended_settings, view)
        facts = profile.get("facts_from", {}).get("torch", {})
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
                          "source": "server", "kernel_name": facts.get("kernel_name"),
                          "python": facts.get("python")}
        return resolved, auto

    def _default_cpus(self) -> int:
        cores = int(self.machine.get("cores") or os.cpu_count() or 1)
        slots = max(1, self.settings.cpu_slots + len(self.gpu_uuids()))
        return max(1, cores // slots)
