"""A real Dask cluster on this machine: a scheduler and worker processes, each a process of
its own (``dask scheduler``, ``dask worker --no-nanny``, so a ``kill -9`` of a worker is
final), each worker with a local directory of its own. Used by the cluster tests and
``tests/benchmarks/bench_dask.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]
CPU_WORKER = "cpu-worker"
GPU_WORKER = "gpu-worker"
#: the device the GPU worker hands out (this machine has none: the worker's
#: CUDA_VISIBLE_DEVICES names it, as a GPU worker's environment would)
FAKE_GPU = "GPU-5e1f0a2b-0000-4000-8000-00000000d45c"


@dataclass
class DaskCluster:
    address: str
    root: Path
    scheduler: subprocess.Popen[bytes]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_worker(self, name: str, *resources: str,
                     environment: dict[str, str] | None = None) -> None:
        local = self.root / name
        local.mkdir(exist_ok=True)
        command = [*WORKER, self.address, "--no-nanny", "--nthreads", "1", "--name", name,
                   "--local-directory", str(local), "--no-dashboard"]
        if resources:
            command += ["--resources", " ".join(resources)]
        log = (self.root / f"{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                              env={**_worker_env(), **(environment or {})},
                                              start_new_session=True)

    def wait_for_workers(self, names: set[str], timeout: float = 90.0) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.address, timeout="30s", set_as_default=False) as client:
            while time.monotonic() < deadline:
                info = client.scheduler_info(n_workers=-1)["workers"]
                if names <= {w.get("name") for w in info.values()}:
                    return
                time.sleep(0.2)
        raise AssertionError(f"workers {names} did not join in {timeout}s: "
                             + (self.root / "scheduler.log").read_text()[-2000:])

    def kill_worker(self, name: str) -> None:
        self.workers[name].send_signal(signal.SIGKILL)
        self.workers[name].wait(timeout=10)

    def stop(self) -> None:
        for process in [*self.workers.values(), self.scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NOTEBENCH_SERVER_TOKEN", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env



#: the workers of the cluster tests: CPU units on one, a GPU (a named device) on the other
TEST_WORKERS = {CPU_WORKER: ("CPU=2",), GPU_WORKER: ("GPU=1",)}
TEST_ENVIRONMENTS = {GPU_WORKER: {"CUDA_VISIBLE_DEVICES": FAKE_GPU}}


def start_test_cluster(root: Path) -> DaskCluster:
    """A scheduler and the cluster tests' two workers (``TEST_WORKERS``)."""
    return start_cluster(root, TEST_WORKERS, TEST_ENVIRONMENTS)


def start_cluster(root: Path, workers: dict[str, tuple[str, ...]],
                  environments: dict[str, dict[str, str]] | None = None) -> DaskCluster:
    """A scheduler and the named workers (name -> its ``--resources``; ``environments``:
    name -> variables of its own), all joined."""
    scheduler_file = root / "scheduler.json"
    log = (root / "scheduler.log").open("ab")
    scheduler = subprocess.Popen(
        [*DASK, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(scheduler_file)],
        stdout=log, stderr=subprocess.STDOUT, env=_worker_env(), start_new_session=True)
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    address = json.loads(scheduler_file.read_text())["address"]
    cluster = DaskCluster(address, root, scheduler)
    try:
        for name, resources in workers.items():
            cluster.start_worker(name, *resources,
                                 environment=(environments or {}).get(name))
        cluster.wait_for_workers(set(workers))
    except BaseException:
        cluster.stop()
        raise
    return cluster
