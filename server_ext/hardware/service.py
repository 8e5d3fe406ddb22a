"""The hardware capability: profile, torch facts, benchmark runs, recommendations.

The server never imports torch: torch facts come from a probe subprocess (cached in the
store per interpreter and torch version), and the benchmark runs in a worker process
under ``nice``. Collecting the rest of the profile (psutil, NVML, cgroups) runs in a
thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
import time
from typing import Any

import orjson

from notebench.hardware import collect_static_profile, fingerprint, recommended_settings
from notebench.hardware.torch_probe import parse_probe_output, probe_cache_key, probe_command

from ..errors import conflict
from ..events.bus import EventBus
from ..store import Store
from ..workspace import Workspace
from .environments import SERVER_ENVIRONMENT, KernelEnvironment, KernelSpecs, kernel_environment

log = logging.getLogger("notebench.hardware")

HARDWARE_TOPIC = "hardware"


class HardwareService:
    """Answers the hardware routes; owns the benchmark worker."""

    def __init__(self, workspace: Workspace, store: Store, bus: EventBus, *,
                 probe_timeout: float = 180.0, benchmark_nice: int = 10,
                 benchmark_disk_mb: int = 256, benchmark_quick: bool = False,
                 kernel_specs: KernelSpecs | None = None) -> None:
        self.workspace = workspace
        self.store = store
        self.bus = bus
        self.probe_timeout = probe_timeout
        self.benchmark_nice = benchmark_nice
        self.benchmark_disk_mb = benchmark_disk_mb
        self.benchmark_quick = benchmark_quick
        self.kernel_specs = kernel_specs
        # per interpreter (kernelspecs name a few): the facts, and the probe under way
        self._torch: dict[str, dict[str, Any]] = {}
        self._torch_tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._benchmark: BenchmarkRun | None = None

    # -- profile -----------------------------------------------------------------------

    async def environment(self, kernel_name: str | None = None) -> KernelEnvironment:
        """The interpreter of ``kernel_name`` (None: the server's); 400 for no such kernel."""
        return await asyncio.to_thread(kernel_environment, self.kernel_specs, kernel_name)

    async def profile(self, kernel_name: str | None = None) -> dict[str, Any]:
        """The profile, its torch facts (and benchmark) from ``kernel_name``'s environment."""
        env = await self.environment(kernel_name)
        static, torch = await asyncio.gather(
            asyncio.to_thread(collect_static_profile, self.workspace.path),
            self.torch_info(env))
        profile = {**static, "torch": torch}
        profile["fingerprint"] = fingerprint(profile)
        profile["benchmark"] = await self.latest_benchmark(profile["fingerprint"])
        profile["facts_from"] = facts_from(env)
        return profile

    async def recommendations(self, kernel_name: str | None = None) -> dict[str, Any]:
        profile = await self.profile(kernel_name)
        settings = await asyncio.to_thread(recommended_settings, profile)
        return {"fingerprint": profile["fingerprint"], "settings": settings,
                "facts_from": profile["facts_from"]}

    async def torch_info(self, env: KernelEnvironment = SERVER_ENVIRONMENT) -> dict[str, Any]:
        """torch facts of ``env`` from the probe subprocess, cached in memory and in the
        store (per interpreter and torch version)."""
        known = self._torch.get(env.python)
        if known is not None:
            return known
        task = self._torch_tasks.get(env.python)
        if task is None or task.done():
            task = self._torch_tasks[env.python] = asyncio.ensure_future(
                self._load_torch_info(env))
        return await asyncio.shield(task)

    async def _load_torch_info(self, env: KernelEnvironment) -> dict[str, Any]:
        key = "torch_probe:" + await asyncio.to_thread(probe_cache_key, env.python)
        info = await self.store.read(lambda conn: _kv_get(conn, key))
        if info is None:
            info = await self._run_probe(env)
            # a definite answer (torch there or not) holds while the key's version does
            if info.get("installed") is not None and not self.store.read_only:
                await self.store.write(lambda conn: _kv_put(conn, key, info))
        if not info.get("error"):  # kept in memory only with torch: an install is noticed
            self._torch[env.python] = info
        return info

    async def _run_probe(self, env: KernelEnvironment) -> dict[str, Any]:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *probe_command(env.python), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), self.probe_timeout)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            error = f"torch probe timed out after {self.probe_timeout}s"
            return {"installed": None, "error": error}
        info = parse_probe_output(stdout)
        if proc.returncode != 0 and not info.get("error"):
            info["error"] = stderr.decode(errors="replace")[-500:] or f"exit {proc.returncode}"
        info["probe_seconds"] = round(time.monotonic() - started, 3)
        return info

    # -- benchmark ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.recover()

    async def recover(self) -> None:
        """Runs left 'running' by a server that died are failed: their worker is gone."""
        if self.store.read_only:
            return
        await self.store.write(lambda conn: conn.execute(
            "UPDATE hardware_benchmarks SET state = 'failed', finished = ?, "
            "error = 'the server stopped during the run' WHERE state = 'running'",
            (time.time(),)))

    async def latest_benchmark(self, fp: str) -> dict[str, Any] | None:
        return await self.store.read(lambda conn: _latest_benchmark(conn, fp))

    async def benchmark_status(self, kernel_name: str | None = None) -> dict[str, Any]:
        run = self._benchmark
        if run is not None and run.running:
            return run.as_dict()
        env = await self.environment(kernel_name)
        profile_fp = fingerprint({**await asyncio.to_thread(collect_static_profile,
                                                            self.workspace.path),
                                  "torch": await self.torch_info(env)})
        latest = await self.latest_benchmark(profile_fp)
        if latest is None:
            return {"state": "none", "fingerprint": profile_fp}
        return latest

    async def start_benchmark(self, kernel_name: str | None = None) -> dict[str, Any]:
        """A benchmark run in ``kernel_name``'s environment (which needs notebench)."""
        if self._benchmark is not None and self._benchmark.running:
            raise conflict("a hardware benchmark is already running", "benchmark_running",
                           run_id=self._benchmark.run_id)
        env = await self.environment(kernel_name)
        profile = {**await asyncio.to_thread(collect_static_profile, self.workspace.path),
                   "torch": await self.torch_info(env)}
        fp = fingerprint(profile)
        run_id = await self.store.write(lambda conn: _insert_benchmark(conn, fp))
        command = ["nice", "-n", str(self.benchmark_nice), *_benchmark_command(
            env.python, self.workspace.tmp_dir, self.benchmark_disk_mb, self.benchmark_quick)]
        run = BenchmarkRun(run_id, fp, command, self)
        self._benchmark = run
        await run.start()
        return run.as_dict()

    async def stop(self) -> None:
        if self._benchmark is not None:
            await self._benchmark.kill()

    def publish(self, type_: str, data: dict[str, Any]) -> None:
        self.bus.publish(HARDWARE_TOPIC, type_, data)


class BenchmarkRun:
    """One benchmark worker process and what it reported."""

    def __init__(self, run_id: int, fp: str, command: list[str], service: HardwareService):
        self.run_id = run_id
        self.fingerprint = fp
        self.command = command
        self.service = service
        self.state = "running"
        self.started = time.time()
        self.progress: dict[str, Any] = {"stage": "starting", "fraction": 0.0}
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.run_id, "state": self.state, "fingerprint": self.fingerprint,
                "started": self.started, "progress": self.progress, "result": self.result,
                "error": self.error}

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        log.info("hardware benchmark %s started (pid %s)", self.run_id, self._proc.pid)
        self.service.publish("benchmark.started", self.as_dict())
        self._task = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        stderr_task = asyncio.ensure_future(proc.stderr.read())
        async for raw in proc.stdout:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            kind = line.get("type")
            if kind == "progress":
                self.progress = {k: line.get(k) for k in ("stage", "fraction", "message")}
                self.service.publish("benchmark.progress", {"id": self.run_id, **self.progress})
            elif kind == "result":
                self.result = line.get("result")
            elif kind == "error":
                self.error = str(line.get("message"))
        code = await proc.wait()
        stderr = (await stderr_task).decode(errors="replace")
        if code == 0 and self.result is not None:
            self.state = "succeeded"
            self.progress = {"stage": "done", "fraction": 1.0, "message": None}
        else:
            self.state = "failed"
            self.error = self.error or stderr[-500:] or f"benchmark worker exited with {code}"
        await self._persist()
        if self.state == "succeeded":
            log.info("hardware benchmark %s finished", self.run_id)
            self.service.publish("benchmark.result", self.as_dict())
        else:
            log.warning("hardware benchmark %s failed: %s", self.run_id, self.error)
            self.service.publish("benchmark.failed", self.as_dict())

    async def _persist(self) -> None:
        store = self.service.store
        if store.read_only:
            return
        finished = time.time()
        result = orjson.dumps(self.result) if self.result is not None else None
        await store.write(lambda conn: conn.execute(
            "UPDATE hardware_benchmarks SET finished = ?, state = ?, result = ?, error = ? "
            "WHERE id = ?", (finished, self.state, result, self.error, self.run_id)))

    async def kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)


def facts_from(env: KernelEnvironment) -> dict[str, Any]:
    """Where each part of a profile came from: the machine's facts from the server's
    process, torch's (and so the benchmark's) from the kernel's interpreter."""
    return {"system": {"source": "server", "python": sys.executable,
                       "facts": ["cpu", "memory", "gpus", "gpu_status", "storage", "python"]},
            "torch": {**env.describe(), "facts": ["torch", "benchmark"]}}


def _benchmark_command(python: str, directory: Any, disk_mb: int, quick: bool) -> list[str]:
    command = [python, "-m", "notebench.hardware.benchmark", "--dir", str(directory),
               "--disk-mb", str(disk_mb)]
    return [*command, "--quick"] if quick else command


def _insert_benchmark(conn: sqlite3.Connection, fp: str) -> int:
    cursor = conn.execute(
        "INSERT INTO hardware_benchmarks (fingerprint, started, state) VALUES (?, ?, 'running')",
        (fp, time.time()),
    )
    return int(cursor.lastrowid or 0)


def _latest_benchmark(conn: sqlite3.Connection, fp: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT id, fingerprint, started, finished, state, result, error FROM hardware_benchmarks "
        "WHERE fingerprint = ? AND state = 'succeeded' ORDER BY id DESC LIMIT 1",
        (fp,),
    ).fetchone()
    if row is None:
        return None
    return {"id": row["id"], "state": row["state"], "fingerprint": row["fingerprint"],
            "started": row["started"], "finished": row["finished"],
            "result": orjson.loads(row["result"]) if row["result"] else None,
            "error": row["error"]}


def _kv_get(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM kv_cache WHERE key = ?", (key,)).fetchone()
    return None if row is None else orjson.loads(row[0])


def _kv_put(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO kv_cache (key, value, updated) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
        (key, orjson.dumps(value), time.time()),
    )
