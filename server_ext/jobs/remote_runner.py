"""``run_remote_job(spec)``: the body of a job's Dask task, on the worker.

It writes the job directory on the worker (``<worker local_directory>/notebench-jobs/
<job id>``; a temporary folder outside a worker; the server's own directory when they
share a file system), starts the runner as ``LocalProcessExecutor`` starts it (a session
of its own, output to ``papermill.log``) that also dies with the worker
(``PR_SET_PDEATHSIG``), and runs a ``Forwarder`` that ships the job's files to the
server and applies its control until the runner ended and everything was sent.

A retry of the task after a lost worker (Dask reruns a task whose worker died) is
refused: the server already has the first run's records, or has ended the job.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from notebench.discovery import ENV_TOKEN, ENV_URL
from notebench.jobprotocol import JOB_DIR_ENV, JOB_ID_ENV, RESUME_ENV, write_bytes_atomic

from ..scrubbing import without_secrets
from .executor import LaunchSpec, LocalProcessExecutor
from .forwarder import Forwarder, ForwarderSettings, host_name
from .ingest import STREAMS
from .ingest_client import IngestClient, IngestError
from .machine import thread_env
from .worker_gpus import LEASES, GpuShortage, worker_gpus

log = logging.getLogger("notebench.jobs")

#: the folder of job directories under a worker's local directory
JOBS_FOLDER = "notebench-jobs"
#: where a restart's checkpoint goes (hidden: it came from the server, it is not sent back)
RESUME_FOLDER = ".resume"
_PR_SET_PDEATHSIG = 1


def run_remote_job(spec: Mapping[str, Any], *, local_root: Path | None = None
                   ) -> dict[str, Any]:
    """Run one job here and forward it; blocks until the runner ended and all was sent.

    Returns ``{"exit_code", "worker", "host", "flushed"}``, or ``{"refused": True, ...}``
    for a retry (the job ran elsewhere or ended). ``local_root`` replaces the worker's
    local directory (tests). Raises ``ConnectionError`` when the server stays unreachable
    for the grace period before the job starts.
    """
    job_id = str(spec["job_id"])
    settings = ForwarderSettings.from_dict(spec.get("settings"))
    worker, worker_dir = _worker()
    place = {"worker": worker, "host": host_name()}
    client = IngestClient(str(spec["server_url"]), job_id, str(spec["token"]))
    state = _first_contact(client, settings)
    if state is None or _ran_elsewhere(state):
        client.close()
        log.warning("job %s: not run again on %s: it ran elsewhere or ended", job_id,
                    place["host"])
        return {"refused": True, **place}
    shared = spec.get("shared_dir")
    job_dir = Path(shared) if shared else _local_job_dir(local_root or worker_dir, job_id)
    env = _write_job_dir(job_dir, spec, shared=bool(shared))
    try:
        place.update(_pin_hardware(env, job_id, spec))
    except GpuShortage:
        client.close()
        raise
    executor = LocalProcessExecutor(preexec_fn=_die_with_parent())
    forwarder = Forwarder(job_dir=job_dir, client=client, executor=executor, job_id=job_id,
                          settings=settings, placement=place, forward=not shared)
    # this thread starts the runner and waits for it: PR_SET_PDEATHSIG follows the thread
    launch = LaunchSpec(job_id, job_dir, env)
    launch.env[ENV_TOKEN] = str(spec["token"])  # job-scoped: its own ingest and record
    forwarder.files.came_from_server()  # the job's inputs are not sent back
    try:
        executor.launch(launch)
        forwarder.sync(state)
        executor.watch(job_id, forwarder.runner_exited)
        forwarder.start()
        forwarder.join()
    finally:
        if executor.is_running(job_id):  # the server ended it, or the forwarder failed
            executor.kill(job_id)
        client.close()
        LEASES.give_back(job_id)
    if forwarder.error is not None:
        raise RuntimeError(f"the forwarder of job {job_id} failed") from forwarder.error
    if not shared and (forwarder.flushed or forwarder.ended_by_server):
        shutil.rmtree(job_dir, ignore_errors=True)
    return {"exit_code": executor.exit_code(job_id), **place, "flushed": forwarder.flushed}


def _pin_hardware(env: dict[str, str], job_id: str, spec: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """Pin the job's GPUs by UUID (those of this worker it leases) and its CPU threads
    (as asked, else this worker's cores shared by its task threads) in ``env``; where
    the job runs, for its record."""
    gpus = int(spec.get("gpus") or 0)
    devices = worker_gpus(os.environ)
    leased = LEASES.take(job_id, gpus, devices)
    if devices or gpus:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(leased)  # "" hides the GPUs of a CPU job
    threads = spec.get("threads")
    if not isinstance(threads, int) or threads < 1:
        threads = max(1, (os.cpu_count() or 1) // _worker_threads())
    env.update(thread_env(threads))
    return {"gpu_uuids": leased, "threads": threads}


def _worker_threads() -> int:
    """The task threads of the Dask worker running this task (1 outside one)."""
    distributed = sys.modules.get("distributed")
    if distributed is not None:
        try:
            return max(1, int(distributed.get_worker().state.nthreads))
        except (ValueError, AttributeError):
            pass
    return 1


def _worker() -> tuple[str | None, Path]:
    """The Dask worker running this task (address, local directory); outside one, none
    and the temporary folder."""
    distributed = sys.modules.get("distributed")  # a worker has imported it
    if distributed is not None:
        try:
            worker = distributed.get_worker()
            return str(worker.address), Path(worker.local_directory)
        except ValueError:  # not inside a task of a worker
            pass
    return None, Path(tempfile.gettempdir())


def _first_contact(client: IngestClient, settings: ForwarderSettings
                   ) -> dict[str, Any] | None:
    """``GET ingest`` until it answers; None when the job ended (or its token does not
    count any more). Raises ``ConnectionError`` after ``grace_seconds`` without answer."""
    started = time.monotonic()
    delay = settings.poll_seconds
    while True:
        try:
            return client.state()
        except IngestError as exc:
            if exc.code == "job_ended" or exc.status == 403:
                return None
            problem: Exception = exc
        except ConnectionError as exc:
            problem = exc
        if time.monotonic() - started >= settings.grace_seconds:
            raise ConnectionError(f"the server did not answer for "
                                  f"{settings.grace_seconds:g} s: {problem}") from problem
        time.sleep(delay)  # nothing else to wait for: the job has not started
        delay = min(delay * 2, 5.0)


def _ran_elsewhere(state: Mapping[str, Any]) -> bool:
    """The server holds output of this job already: this is a retry after a lost worker."""
    streams = state.get("streams")
    streams = streams if isinstance(streams, dict) else {}
    return any(isinstance(streams.get(name), int) and streams[name] > 0 for name in STREAMS)


def _local_job_dir(root: Path, job_id: str) -> Path:
    job_dir = root / JOBS_FOLDER / job_id
    shutil.rmtree(job_dir, ignore_errors=True)  # what a run that never reached the server left
    job_dir.mkdir(parents=True)
    return job_dir


def _write_job_dir(job_dir: Path, spec: Mapping[str, Any], *, shared: bool) -> dict[str, str]:
    """The job's files (``files``: relative path -> bytes; a shared directory keeps
    those it has) and its environment: the worker's, then the job's, then where the job
    directory, the checkpoint and the server are."""
    for rel, data in (spec.get("files") or {}).items():
        path = PurePosixPath(rel)
        if path.is_absolute() or not path.parts or ".." in path.parts:
            raise ValueError(f"a job file must be a relative path inside the job: {rel!r}")
        if not (shared and (job_dir / rel).exists()):
            write_bytes_atomic(job_dir / rel, bytes(data))
    env = {**without_secrets(os.environ), **dict(spec.get("env") or {})}
    env[JOB_ID_ENV] = str(spec["job_id"])
    env[JOB_DIR_ENV] = str(job_dir)
    env[ENV_URL] = str(spec["server_url"])
    env.pop(RESUME_ENV, None)
    resume = spec.get("resume")
    if resume:
        target = job_dir / RESUME_FOLDER / Path(str(resume["name"])).name
        write_bytes_atomic(target, bytes(resume["data"]))
        env[RESUME_ENV] = str(target)
    return env


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the runner killed when the thread that started it ends
    (Linux ``PR_SET_PDEATHSIG``: a killed worker leaves no runner); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child must not import
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the worker died before the prctl took effect
            os._exit(1)

    return preexec
