"""``DaskExecutor``: jobs run as Dask tasks on a cluster's workers.

One job is one task (``key`` = the job id, ``fire_and_forget``): a restarted server finds
its running jobs again with ``distributed.Future(job_id)``. The task
(``remote_runner.run_remote_job``) supervises the runner as a subprocess on the worker,
and a forwarder ships the job's files to the server's ingest routes with a job-scoped
token; the server's tailer reads them from the server-side job directory as it reads a
local job's. Control (pause, resume, signals, the stop request) travels back in the
answers to the forwarder's requests (``RemoteControl``): the channel the worker already
holds open, so it needs no route from the server to the workers (which clusters rarely
allow) and follows the job wherever the scheduler placed it.

The scheduler is named by ``c.NotebenchDaskCluster.scheduler_address`` or made by a
factory (``cluster_factory``: a ``dask_jobqueue.SLURMCluster``, a ``dask_kubernetes``
cluster, a Dask Gateway cluster). A job asking for ``gpus: n`` needs a worker that
advertises the resource ``GPU`` (``dask worker --resources GPU=2``), and the task pins the
devices it leases there by UUID (``worker_gpus``); a job asking for ``cpus: n`` needs the
resource ``CPU`` where workers advertise it (``--resources "GPU=2 CPU=32"``; where none
does, ``cpus`` only sets the job's thread count). A job that no worker could ever run is
refused when it is submitted; one that only waits for a free worker stays queued.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from traitlets import Bool, Dict, Float, Int, Unicode
from traitlets.config import LoggingConfigurable

from notebench.jobprotocol import ENVIRONMENT, JOB_JSON, NOTEBOOK, RESUME_ENV

from .executor import Executor, ExecutorContext, LaunchSpec
from .jobdir import read_json
from .queue import Slots
from .remote_control import RemoteControl
from .shipper import UPLOAD_THRESHOLD

log = logging.getLogger("notebench.jobs")

#: the Dask resources a job's ``gpus`` and ``cpus`` ask for
GPU_RESOURCE = "GPU"
CPU_RESOURCE = "CPU"
WORKER_LOST = Executor.WORKER_LOST
UNBOUNDED = 64  # the slots offered while not connected (each launch fails at once)
INPUTS_DIR = "inputs"  # where a remote job's shipped input files lie in its directory
MAX_SHIPPED_INPUT = 512 * 1024 * 1024


class NotebenchDaskCluster(LoggingConfigurable):
    """Where the Dask executor runs jobs (``c.NotebenchDaskCluster.<option>``)."""

    scheduler_address = Unicode(
        "", help="The Dask scheduler to submit jobs to (tcp://host:8786). Ignored when "
        "cluster_factory is set.").tag(config=True)
    cluster_factory = Unicode(
        "", help="A callable (module.attribute) that returns a Dask cluster, called with "
        "cluster_options: dask_jobqueue.SLURMCluster, dask_kubernetes.operator.KubeCluster, "
        "or a function that returns a Dask Gateway cluster.").tag(config=True)
    cluster_options = Dict(help="Keyword arguments for cluster_factory.").tag(config=True)
    connect_timeout = Float(10.0, help="Seconds to reach the scheduler before giving up."
                            ).tag(config=True)
    shared_filesystem = Bool(
        False, help="Workers see the server's job directories at the same paths (a "
        "cluster file system): jobs write there and nothing is forwarded.").tag(config=True)
    server_url = Unicode(
        "", help="The server's URL as the workers reach it (default: the server's own "
        "connection URL). Workers must reach its notebench/api/ ingest routes."
    ).tag(config=True)
    heartbeat_seconds = Float(1.0, help="Seconds between a forwarder's contacts at most."
                              ).tag(config=True)
    grace_seconds = Float(
        60.0, help="Seconds a forwarder may fail to reach the server before it stops its "
        "job rather than train blind.").tag(config=True)
    buffer_bytes = Int(
        1 << 30, help="Bytes a job may have written that the server has not received "
        "yet; above this the forwarder pauses the job until it caught up.").tag(config=True)
    upload_threshold_bytes = Int(
        UPLOAD_THRESHOLD, help="Files a job writes above this size are sent with the "
        "resumable upload protocol (chunks, resumed from the server's offset after a cut); "
        "smaller ones in one request.").tag(config=True)
    lost_after_seconds = Float(
        30.0, help="A job whose forwarder was heard and then stays silent this long is "
        "ended worker_lost.").tag(config=True)


class DaskExecutor(Executor):
    """Runs each job as a Dask task (see the module docstring)."""

    name = "dask"
    places_jobs = True

    def __init__(self) -> None:
        self.control = RemoteControl()
        self.settings: NotebenchDaskCluster | None = None
        self._client: Any = None
        self._cluster: Any = None
        self._problem: str | None = "the Dask executor is not connected yet"
        self._futures: dict[str, Any] = {}
        self._asked: dict[str, dict[str, float]] = {}  # job id -> its task's resources
        self._processes: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # -- connection ---

    def bind(self, context: ExecutorContext) -> None:
        super().bind(context)
        self.settings = NotebenchDaskCluster(parent=context.parent)

    def open(self) -> None:
        settings = self._settings()
        try:
            from distributed import Client
        except ImportError:
            self._problem = ("the Dask executor needs the distributed package: "
                             "pip install 'notebench[cluster]'")
            return
        try:
            target: Any = settings.scheduler_address
            if settings.cluster_factory:
                module, _, attribute = settings.cluster_factory.rpartition(".")
                factory = getattr(importlib.import_module(module), attribute)
                # the cluster itself: it knows its scheduler and the security to reach it
                # (a Dask Gateway cluster's TLS credentials)
                target = self._cluster = factory(**settings.cluster_options)
            if not target:
                self._problem = ("no Dask scheduler configured: set "
                                 "c.NotebenchDaskCluster.scheduler_address or cluster_factory")
                return
            self._client = Client(target, timeout=f"{settings.connect_timeout}s",
                                  set_as_default=False)
        except Exception as exc:
            self._problem = f"cannot reach the Dask scheduler: {exc}"
            log.error("the Dask executor: %s", self._problem)
            return
        self._problem = None

    def close(self) -> None:
        """Close the client; a cluster the factory made is closed with the server (its
        jobs end with it); a scheduler named by address outlives the server, and a
        restarted server adopts the jobs still running there."""
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        for part in (client, cluster):
            if part is None:
                continue
            try:
                part.close()
            except Exception:
                log.debug("closing %s failed", type(part).__name__, exc_info=True)

    def problem(self) -> str | None:
        return self._problem

    def remote_control(self) -> RemoteControl:
        return self.control

    def _settings(self) -> NotebenchDaskCluster:
        if self.settings is None:
            self.settings = NotebenchDaskCluster()
        return self.settings

    def _connected(self) -> Any:
        if self._client is None:
            raise RuntimeError(self._problem or "the Dask executor is not connected")
        return self._client

    # -- placement ---

    def _workers(self) -> dict[str, dict[str, Any]]:
        return dict(self._connected().scheduler_info(n_workers=-1).get("workers") or {})

    def refusal(self, resources: dict[str, Any]) -> str | None:
        if resources.get("pinned"):
            return ("GPUs are pinned by UUID only on the server's own machine: ask for a "
                    "number of GPUs on a cluster")
        if self._client is None:
            return None  # not connected: the job is queued and fails saying why
        try:
            workers = self._workers()
        except Exception as exc:
            return f"cannot reach the Dask scheduler: {exc}"
        if not workers:
            return None  # workers may join (adaptive clusters): the job waits
        asked = task_resources(resources, workers)
        if any(all(_units(w, name) >= need for name, need in asked.items())
               for w in workers.values()):
            return None
        wanted = " and ".join(f"{need:g} {name}" for name, need in asked.items())
        return (f"{wanted} asked for, but no Dask worker advertises that much (the worker "
                f"resources {', '.join(asked)})")

    def free_slots(self, running: list[dict[str, Any]]) -> Slots:
        """Free worker threads for CPU jobs, free ``GPU`` units for GPU jobs, minus what
        notebench's own tasks hold (a job holds one thread of its worker), and the most
        ``CPU`` units free on one worker where workers advertise them. Not connected:
        every job is admitted, and its launch fails with the reason."""
        if self._client is None:
            return Slots(cpu_free=len(running) + UNBOUNDED,
                         gpus_free=[f"unconnected#{i}" for i in range(UNBOUNDED)])
        try:
            workers = self._workers()
            processing = self._connected().processing()
        except Exception:
            return Slots(cpu_free=0)
        cpu_free = 0
        gpus_free: list[str] = []
        cpu_units: list[int] = []
        placed: set[str] = set()
        for address, worker in workers.items():
            keys = [str(k) for k in processing.get(address, ())]
            placed.update(keys)
            threads = max(0, int(worker.get("nthreads") or 1) - len(keys))
            units = int(_units(worker, GPU_RESOURCE) - self._held(keys, GPU_RESOURCE))
            cpu_free += threads
            gpus_free += [f"{address}#{i}" for i in range(max(0, min(units, threads)))]
            if CPU_RESOURCE in (worker.get("resources") or {}) and threads:
                cpu_units.append(int(_units(worker, CPU_RESOURCE)
                                     - self._held(keys, CPU_RESOURCE)))
        # submitted but not placed yet: they take the next free threads
        unplaced = sum(1 for key, future in list(self._futures.items())
                       if future.status == "pending" and key not in placed)
        return Slots(cpu_free=max(0, cpu_free - unplaced), gpus_free=gpus_free,
                     cpu_units=max(cpu_units, default=0) if cpu_units else None)

    def _held(self, keys: list[str], resource: str) -> float:
        with self._lock:
            return sum(self._asked.get(k, {}).get(resource, 0.0) for k in keys)

    # -- running ---

    def launch(self, spec: LaunchSpec) -> dict[str, dict[str, Any]]:
        client = self._connected()
        from distributed import fire_and_forget

        from .remote_runner import run_remote_job

        settings = self._settings()
        job_dir = Path(spec.job_dir)
        env = dict(spec.env)
        files = {name: (job_dir / name).read_bytes() for name in (NOTEBOOK, ENVIRONMENT)}
        job = read_json(job_dir / JOB_JSON)
        job = job if isinstance(job, dict) else {}
        if not settings.shared_filesystem:
            files.update(_ship_inputs(job, self.context.workspace))
        files[JOB_JSON] = orjson.dumps(job, option=orjson.OPT_INDENT_2)
        resume = None
        if env.get(RESUME_ENV):
            source = Path(env[RESUME_ENV])
            resume = {"name": source.name, "data": source.read_bytes()}
        resources = job.get("resources") or {}
        asked = task_resources(resources, self._workers())
        remote = {
            "job_id": spec.job_id, "files": files, "resume": resume, "env": env,
            "gpus": int(resources.get("gpus") or 0), "threads": resources.get("cpus"),
            "server_url": settings.server_url or self.context.server_url(),
            "token": self.context.tokens.mint(spec.job_id),
            "shared_dir": str(job_dir) if settings.shared_filesystem else None,
            "settings": {"heartbeat_seconds": settings.heartbeat_seconds,
                         "grace_seconds": settings.grace_seconds,
                         "buffer_bytes": settings.buffer_bytes,
                         "upload_threshold_bytes": settings.upload_threshold_bytes},
        }
        self.context.tokens.allow(spec.job_id)
        future = client.submit(run_remote_job, remote, key=spec.job_id, pure=False,
                               resources=asked or None, retries=0)
        fire_and_forget(future)
        with self._lock:
            self._futures[spec.job_id] = future
            self._asked[spec.job_id] = asked
        return self.processes(spec.job_id)

    def adopt(self, job_id: str, job_dir: Path, processes: dict[str, dict[str, Any]]) -> bool:
        try:
            client = self._connected()
            known = client.run_on_scheduler(_scheduler_has, key=job_id)
        except Exception as exc:
            log.warning("job %s: cannot ask the Dask scheduler about it: %s", job_id, exc)
            return False
        if not known:
            return False
        from distributed import Future

        with self._lock:
            self._futures[job_id] = Future(job_id, client)
            self._processes[job_id] = dict(processes)
        self.context.tokens.allow(job_id)
        self.control.heard(job_id, {})  # the lost-worker clock starts at the adoption
        return self.is_running(job_id)

    def note_process(self, job_id: str, role: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._processes.setdefault(job_id, {})[role] = dict(record)

    def processes(self, job_id: str) -> dict[str, dict[str, Any]]:
        placement = self.control.placement(job_id)
        with self._lock:
            recorded = {role: dict(r) for role, r in self._processes.get(job_id, {}).items()}
        runner = recorded.setdefault("runner", {"pid": None})
        runner.update({k: placement[k] for k in ("worker", "host", "gpu_uuids", "threads")
                       if k in placement})
        runner["executor"] = self.name
        return recorded

    def _future(self, job_id: str) -> Any:
        return self._futures.get(job_id)

    def _silent_too_long(self, job_id: str) -> bool:
        heard = self.control.last_heard(job_id)
        limit = self._settings().lost_after_seconds
        return heard is not None and limit > 0 and time.monotonic() - heard > limit

    def is_running(self, job_id: str) -> bool:
        future = self._future(job_id)
        if future is None or future.status != "pending":
            return False
        return not self._silent_too_long(job_id)

    def _result(self, job_id: str) -> dict[str, Any] | None:
        future = self._future(job_id)
        if future is None or future.status != "finished":
            return None
        try:
            result = future.result(timeout=5)
        except Exception:
            return None
        return result if isinstance(result, dict) else None

    def exit_code(self, job_id: str) -> int | None:
        code = (self._result(job_id) or {}).get("exit_code")
        return code if isinstance(code, int) else None

    def loss(self, job_id: str) -> str | None:
        future = self._future(job_id)
        if future is None:
            return None
        if future.status == "pending" and self._silent_too_long(job_id):
            return WORKER_LOST
        if future.status == "error":
            return _task_failure(future)
        if (self._result(job_id) or {}).get("refused"):
            return WORKER_LOST  # a retry after the first worker died: it did not run again
        return None

    def pause(self, job_id: str) -> int:
        self.control.set_paused(job_id, True)
        return 1

    def resume(self, job_id: str) -> int:
        self.control.set_paused(job_id, False)
        return 1

    def terminate(self, job_id: str) -> int:
        self.control.send_signal(job_id, "term")
        return 1

    def kill(self, job_id: str) -> int:
        if not self.is_running(job_id):
            return 0
        self.control.send_signal(job_id, "kill")
        return 1

    def pids(self, job_id: str) -> list[int]:
        return []  # the job's processes run on another machine

    def forget(self, job_id: str) -> None:
        self.context.tokens.revoke(job_id)
        self.control.forget(job_id)
        with self._lock:
            self._futures.pop(job_id, None)
            self._asked.pop(job_id, None)
            self._processes.pop(job_id, None)

    def watch(self, job_id: str, on_exit: Any) -> bool:
        future = self._future(job_id)
        if future is None:
            return False
        future.add_done_callback(lambda _future: on_exit())
        return True

    # -- the cluster view ---

    def cluster(self) -> dict[str, Any]:
        out: dict[str, Any] = {"executor": self.name, "problem": self._problem,
                               "workers": [], "queued": 0}
        if self._client is None:
            return out
        try:
            workers = self._workers()
            processing = self._client.processing()
        except Exception as exc:
            out["problem"] = f"cannot reach the Dask scheduler: {exc}"
            return out
        out["scheduler"] = self._client.scheduler.address
        for address, worker in sorted(workers.items()):
            keys = [str(k) for k in processing.get(address, ())]
            out["workers"].append({
                "address": address, "host": worker.get("host"), "name": worker.get("name"),
                "threads": worker.get("nthreads"), "memory_limit": worker.get("memory_limit"),
                "resources": worker.get("resources") or {},
                "jobs": [k for k in keys if k in self._futures], "tasks": len(keys),
            })
        running = {j for w in out["workers"] for j in w["jobs"]}
        out["queued"] = sum(1 for key, f in list(self._futures.items())
                            if f.status == "pending" and key not in running)
        return out


def task_resources(resources: dict[str, Any], workers: dict[str, dict[str, Any]]
                   ) -> dict[str, float]:
    """The Dask resources a job's task asks for: ``GPU`` for its GPUs, ``CPU`` for its
    CPUs where some worker advertises ``CPU`` (else ``cpus`` only sets its threads)."""
    asked: dict[str, float] = {}
    gpus = int(resources.get("gpus") or 0)
    if gpus:
        asked[GPU_RESOURCE] = float(gpus)
    cpus = resources.get("cpus")
    if cpus and any(CPU_RESOURCE in (w.get("resources") or {}) for w in workers.values()):
        asked[CPU_RESOURCE] = float(cpus)
    return asked


def _units(worker: dict[str, Any], resource: str) -> float:
    return float((worker.get("resources") or {}).get(resource, 0))


def _task_failure(future: Any) -> str:
    """Why a task ended in error: its worker died (``worker_lost``), or the task raised
    (a short reason with the error)."""
    try:
        error = future.exception(timeout=5)
    except Exception:
        return WORKER_LOST
    if error is None or type(error).__name__ == "KilledWorker":
        return WORKER_LOST
    return f"failed on the worker: {type(error).__name__}: {error}"[:500]


def _scheduler_has(dask_scheduler: Any, key: str) -> bool:
    """On the scheduler: whether it still holds the task ``key`` (not forgotten)."""
    task = dask_scheduler.tasks.get(key)
    return task is not None and task.state not in ("forgotten", "released", "erred")



def _ship_inputs(job: dict[str, Any], workspace: Path) -> dict[str, bytes]:
    """The workspace files a job's resolved parameters name (its datasets and other
    assets), as files of the shipped job directory (``inputs/<name>``); the job's
    ``resolved`` values are changed to those relative paths (the runner works in the
    job directory). Files over ``MAX_SHIPPED_INPUT`` bytes stay behind: such a job needs
    a cluster file system (``shared_filesystem``) or data the workers reach themselves."""
    shipped: dict[str, bytes] = {}
    resolved = dict(job.get("resolved") or {})
    root = workspace.resolve()
    for name, value in resolved.items():
        if not isinstance(value, str) or not value.startswith("/"):
            continue
        path = Path(value)
        try:
            inside = path.resolve().is_relative_to(root) and path.is_file()
        except OSError:
            continue
        if not inside or path.stat().st_size > MAX_SHIPPED_INPUT:
            continue
        relative = f"{INPUTS_DIR}/{name}{path.suffix}"
        shipped[relative] = path.read_bytes()
        resolved[name] = relative
    job["resolved"] = resolved
    return shipped
