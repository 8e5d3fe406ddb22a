"""The one runner interface, and the executor that runs jobs as local processes.

The queue hands a job to an ``Executor``; nothing outside the executor assumes that a
job's processes are local children of the server: pause, stop, liveness, pids and
adoption after a restart all go through it (a Dask executor will implement the same
methods later). Methods are blocking (signals, psutil): the service calls them off the
event loop.

``LocalProcessExecutor`` starts ``python -m notebench.server.jobs.runner <job_dir>`` in a
session of its own (its own process group) with stdout and stderr going to
``papermill.log`` in the job directory, so the job outlives a server that dies. The
runner reports its pid, process group and start time, and the kernel's, in
``runner.jsonl``; the tailer hands those records to ``note_process``. A process is only
signalled while its start time matches the recorded one, so a reused pid is never hit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from notebench.jobprotocol import PAPERMILL_LOG

from ..scrubbing import without_secrets

log = logging.getLogger("notebench.jobs")

#: the tolerance when comparing process start times (psutil rounds them to 10 ms ticks)
_CREATE_TIME_SLACK = 0.05


@dataclass
class LaunchSpec:
    """What an executor needs to start a job.

    ``env`` is the job's whole environment. The server's credentials are never part of
    it, whatever the caller passed (``SECRET_ENV_NAMES``: the server's token, the hub's
    API token): a job acts with the rights its notebook is given explicitly.
    """

    job_id: str
    job_dir: Path
    env: dict[str, str]
    python: str = field(default_factory=lambda: sys.executable)

    def __post_init__(self) -> None:
        self.env = without_secrets(self.env)


@dataclass
class ProcessRef:
    """One recorded process of a job (``role``: runner, kernel)."""

    role: str
    pid: int
    pgid: int | None
    create_time: float | None

    def matches(self, proc: psutil.Process) -> bool:
        try:
            created = proc.create_time()
        except psutil.Error:
            return False
        return self.create_time is None or abs(created - self.create_time) <= _CREATE_TIME_SLACK


@dataclass
class ExecutorContext:
    """What the job service gives its executor once (``Executor.bind``)."""

    parent: Any  # the job service: the parent of an executor's own configurable
    tokens: Any  # ``credentials.JobTokens``: job-scoped credentials for remote jobs
    server_url: Callable[[], str]  # the server's base URL, as the machines running jobs see it
    runs_dir: Path
    workspace: Path  # what a job's input files (its assets) may be shipped from


class Executor(ABC):
    """How jobs run: the interface the job service uses, whatever runs them."""

    name: str = "abstract"
    #: whether the executor places jobs on machines of its own (a cluster): then the queue
    #: admits by ``free_slots`` and the server pins no local GPU
    places_jobs: bool = False

    def bind(self, context: ExecutorContext) -> None:
        """Called once, before ``open``, with what the service offers."""
        self.context = context

    def open(self) -> None:
        """Connect to what runs the jobs (blocking; a problem goes to ``problem``)."""
        return None

    def close(self) -> None:
        """Let go of the connection; running jobs keep running."""
        return None

    def problem(self) -> str | None:
        """Why jobs cannot start now (None: they can), for health and ``info``."""
        return None

    def refusal(self, resources: dict[str, Any]) -> str | None:
        """Why no machine could ever run a job asking for ``resources`` (None: one can)."""
        return None

    def free_slots(self, running: list[dict[str, Any]]) -> Any:
        """``queue.Slots`` free now for executors that place jobs (``running``: the rows of
        the jobs they run); None: the local slots apply."""
        return None

    #: the reason of a job that ended because the machine running it went away
    WORKER_LOST = "worker_lost"

    def loss(self, job_id: str) -> str | None:
        """Why a job ended without its runner's result, when the executor knows
        (``worker_lost``); None otherwise."""
        return None

    def remote_control(self) -> Any:
        """``remote_control.RemoteControl`` of an executor whose jobs run elsewhere (their
        forwarders read it through the ingest routes); None for local jobs."""
        return None

    def cluster(self) -> dict[str, Any]:
        """The machines that run jobs, their resources and use, and the queued tasks."""
        return {"executor": self.name, "workers": [], "queued": 0}

    @abstractmethod
    def launch(self, spec: LaunchSpec) -> dict[str, dict[str, Any]]:
        """Start a job; returns its process records (role -> record) known so far."""

    @abstractmethod
    def adopt(self, job_id: str, job_dir: Path, processes: dict[str, dict[str, Any]]) -> bool:
        """Take over a job a previous server started; True when its runner still runs."""

    @abstractmethod
    def note_process(self, job_id: str, role: str, record: dict[str, Any]) -> None:
        """A process the runner reported (pid, pgid, create_time)."""

    @abstractmethod
    def processes(self, job_id: str) -> dict[str, dict[str, Any]]:
        """The job's recorded processes (role -> record), for persistence."""

    @abstractmethod
    def is_running(self, job_id: str) -> bool:
        """Whether the job's runner still runs."""

    @abstractmethod
    def exit_code(self, job_id: str) -> int | None:
        """The runner's exit status when known (negative: killed by that signal)."""

    @abstractmethod
    def pause(self, job_id: str) -> int:
        """Freeze every process of the job; returns how many were signalled."""

    @abstractmethod
    def resume(self, job_id: str) -> int:
        """Continue every process of the job."""

    @abstractmethod
    def terminate(self, job_id: str) -> int:
        """Ask every process of the job to end (SIGTERM, continuing frozen ones)."""

    @abstractmethod
    def kill(self, job_id: str) -> int:
        """End every process of the job now (SIGKILL)."""

    @abstractmethod
    def pids(self, job_id: str) -> list[int]:
        """Every live process of the job (for resource accounting)."""

    @abstractmethod
    def forget(self, job_id: str) -> None:
        """Drop what is kept about a finished job."""

    def watch(self, job_id: str, on_exit: Callable[[], None]) -> bool:
        """Call ``on_exit`` (from any thread) once the job's runner has ended, so the job
        ends without waiting for a poll; False when this executor cannot tell (the
        service then notices on its tick)."""
        return False


@dataclass
class _LocalJob:
    job_dir: Path
    popen: subprocess.Popen[bytes] | None = None
    refs: dict[str, ProcessRef] = field(default_factory=dict)
    exit_code: int | None = None
    #: descendants seen while the job ran (pid -> start time): orphans are found again
    seen: dict[int, float] = field(default_factory=dict)


class LocalProcessExecutor(Executor):
    """Runs each job as a runner process in its own session on this machine."""

    name = "local"

    def __init__(self, preexec_fn: Callable[[], None] | None = None) -> None:
        self._jobs: dict[str, _LocalJob] = {}
        self._lock = threading.Lock()
        #: run in each runner process before it starts (a Dask worker's runner asks to die
        #: with the worker: ``remote_runner``)
        self.preexec_fn = preexec_fn

    # -- starting and adopting -----------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> dict[str, dict[str, Any]]:
        command = [spec.python, "-m", "notebench.server.jobs.runner", str(spec.job_dir)]
        with (spec.job_dir / PAPERMILL_LOG).open("ab") as output:
            popen = subprocess.Popen(
                command, cwd=spec.job_dir, env=spec.env, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True, preexec_fn=self.preexec_fn,
            )
        try:
            created: float | None = psutil.Process(popen.pid).create_time()
        except psutil.Error:
            created = None
        job = _LocalJob(spec.job_dir, popen)
        job.refs["runner"] = ProcessRef("runner", popen.pid, popen.pid, created)
        with self._lock:
            self._jobs[spec.job_id] = job
        return self.processes(spec.job_id)

    def adopt(self, job_id: str, job_dir: Path, processes: dict[str, dict[str, Any]]) -> bool:
        job = _LocalJob(job_dir)
        for role, record in processes.items():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                job.refs[role] = ProcessRef(role, int(record["pid"]), record.get("pgid"),
                                            record.get("create_time"))
        with self._lock:
            self._jobs[job_id] = job
        return self.is_running(job_id)

    def note_process(self, job_id: str, role: str, record: dict[str, Any]) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        with contextlib.suppress(KeyError, TypeError, ValueError):
            ref = ProcessRef(role, int(record["pid"]), record.get("pgid"),
                             record.get("create_time"))
            current = job.refs.get(role)
            # the runner's own record has the same pid as the launch's: keep the earliest
            if current is None or current.pid != ref.pid or current.create_time is None:
                job.refs[role] = ref

    def processes(self, job_id: str) -> dict[str, dict[str, Any]]:
        job = self._jobs.get(job_id)
        if job is None:
            return {}
        return {role: asdict(ref) for role, ref in job.refs.items()}

    # -- state ------------------------------------------------------------------------------

    def is_running(self, job_id: str) -> bool:
        job = self._jobs.get(job_id)
        if job is None:
            return False
        if job.popen is not None:
            code = job.popen.poll()  # reaps our own child
            if code is not None:
                job.exit_code = code
                return False
            return True
        ref = job.refs.get("runner")
        return ref is not None and self._live(ref) is not None

    def exit_code(self, job_id: str) -> int | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.exit_code

    def pids(self, job_id: str) -> list[int]:
        job = self._jobs.get(job_id)
        if job is None:
            return []
        return sorted(p.pid for p in self._members(job, scan_groups=False))

    # -- signals ----------------------------------------------------------------------------

    def pause(self, job_id: str) -> int:
        return self._signal(job_id, signal.SIGSTOP)

    def resume(self, job_id: str) -> int:
        return self._signal(job_id, signal.SIGCONT)

    def terminate(self, job_id: str) -> int:
        count = self._signal(job_id, signal.SIGTERM)
        self._signal(job_id, signal.SIGCONT)  # a frozen process handles SIGTERM only when continued
        return count

    def kill(self, job_id: str) -> int:
        count = self._signal(job_id, signal.SIGKILL)
        job = self._jobs.get(job_id)
        if job is not None and job.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.exit_code = job.popen.wait(timeout=5)
        return count

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def watch(self, job_id: str, on_exit: Callable[[], None]) -> bool:
        """A thread waits for the runner: ``waitpid`` for our own child, psutil's polling
        wait for an adopted one."""
        job = self._jobs.get(job_id)
        if job is None:
            return False
        threading.Thread(target=self._wait_for_exit, args=(job, on_exit),
                         name=f"notebench-watch-{job_id}", daemon=True).start()
        return True

    # -- internals --------------------------------------------------------------------------

    def _wait_for_exit(self, job: _LocalJob, on_exit: Callable[[], None]) -> None:
        try:
            if job.popen is not None:
                job.exit_code = job.popen.wait()
            else:
                ref = job.refs.get("runner")
                proc = self._live(ref) if ref is not None else None
                if proc is not None:
                    with contextlib.suppress(psutil.Error):
                        proc.wait()
        except Exception:
            log.exception("waiting for a job's runner failed")
        on_exit()

    def _live(self, ref: ProcessRef) -> psutil.Process | None:
        """The recorded process if it still runs (same start time, not a zombie)."""
        try:
            proc = psutil.Process(ref.pid)
            if not ref.matches(proc) or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def _groups(self, job: _LocalJob) -> set[int]:
        """Process groups of the job that are safe to signal.

        A group is ours while its leader is the recorded process, or while the leader is
        gone (members of a group keep its id from being reused).
        """
        groups = set()
        for ref in job.refs.values():
            if not ref.pgid or ref.pgid <= 1 or ref.pgid == os.getpgrp():
                continue
            if ref.pgid == ref.pid:
                try:
                    if not ref.matches(psutil.Process(ref.pid)):
                        continue  # the pid now belongs to another process
                except psutil.NoSuchProcess:
                    pass
                except psutil.Error:
                    continue
            groups.add(ref.pgid)
        return groups

    def _members(self, job: _LocalJob, *, scan_groups: bool) -> list[psutil.Process]:
        """Live processes of the job: recorded ones, their descendants, and (with
        ``scan_groups``) anything left in the job's process groups, e.g. orphaned
        DataLoader workers of a killed kernel."""
        found: dict[int, psutil.Process] = {}
        for ref in job.refs.values():
            proc = self._live(ref)
            if proc is None:
                continue
            found[proc.pid] = proc
            with contextlib.suppress(psutil.Error):
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        for pid, created in list(job.seen.items()):
            if pid in found:
                continue
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - created) <= _CREATE_TIME_SLACK:
                    found[pid] = proc
                else:
                    job.seen.pop(pid, None)
            except psutil.Error:
                job.seen.pop(pid, None)
        if scan_groups:
            groups = self._groups(job)
            if groups:
                for proc in psutil.process_iter():
                    with contextlib.suppress(OSError, psutil.Error):
                        if proc.pid not in found and os.getpgid(proc.pid) in groups:
                            found[proc.pid] = proc
        for proc in found.values():
            with contextlib.suppress(psutil.Error):
                job.seen.setdefault(proc.pid, proc.create_time())
        return [p for p in found.values() if _not_zombie(p)]

    def _signal(self, job_id: str, signum: int) -> int:
        job = self._jobs.get(job_id)
        if job is None:
            return 0
        signalled: set[int] = set()
        for attempt in range(2):  # twice: catch children forked during the first pass
            members = self._members(job, scan_groups=attempt == 0)
            for pgid in self._groups(job):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signum)
            for proc in members:
                if proc.pid == os.getpid():
                    continue
                try:
                    proc.send_signal(signum)
                    signalled.add(proc.pid)
                except psutil.Error:
                    pass
        return len(signalled)


def _not_zombie(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
