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

log = logging.getLogger("notebench.hardware")

HARDWARE_TOPIC = "hardware"


class HardwareService:
    """Answers the hardware routes; owns the benchmark worker."""

    def __init__(self, workspace: Workspace, store: Store, bus: EventBus, *,
                 probe_timeout: float = 180.0, benchmark_nice: int = 10,
                 benchmark_disk_mb: int = 256, benchmark_quick: bool = False) -> None:
        self.workspace = workspace
        self.store = store
        self.bus = bus
        self.probe_timeout = probe_timeout
        self.benchmark_nice = benchmark_nice
        self.benchmark_disk_mb = benchmark_disk_mb
        self.benchmark_quick = benchmark_quick
        self._torch: dict[str, Any] | None = None
        self._torch_task: asyncio.Task[dict[str, Any]] | None = None
        self._benchmark: BenchmarkRun | None = None

    # -- profile -----------------------------------------------------------------------

    async def profile(self) -> dict[str, Any]:
        static, torch = await asyncio.gather(
            asyncio.to_thread(collect_static_profile, self.workspace.path), self.torch_info()
        )
        profile = {**static, "torch": torch}
        profile["fingerprint"] = fingerprint(profile)
        profile["benchmark"] = await self.latest_benchmark(profile["fingerprint"])
        return profile

    async def recommendations(self) -> dict[str, Any]:
        profile = await self.profile()
        settings = await asyncio.to_thread(recommended_settings, profile)
        return {"fingerprint": profile["fingerprint"], "settings": settings}

    async def torch_info(self) -> dict[str, Any]:
        """torch facts from the probe subprocess, cached in memory and in the store."""
        if self._torch is not None:
            return self._torch
        if self._torch_task is None or (self._torch_task.done() and self._torch is None):
            self._torch_task = asyncio.ensure_future(self._load_torch_info())
        return await asyncio.shield(self._torch_task)

    async def _load_torch_info(self) -> dict[str, Any]:
        key = "torch_probe:" + await asyncio.to_thread(probe_cache_key)
        cached = await self.store.read(lambda conn: _kv_get(conn, key))
        if cached is not None:
            self._torch = cached
            return cached
        info = await self._run_probe()
        if not info.get("error") and not self.store.read_only:
            await self.store.write(lambda conn: _kv_put(conn, key, info))
        self._torch = info if not info.get("error") else None
        return info

    async def _run_probe(self) -> dict[str, Any]:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *probe_command(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
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

    async def benchmark_status(self) -> dict[str, Any]:
        run = self._benchmark
        if run is not None and run.running:
            return run.as_dict()
        profile_fp = fingerprint({**await asyncio.to_thread(collect_static_profile,
                                                            self.workspace.path),
                                  "torch": await self.torch_info()})
        latest = await self.latest_benchmark(profile_fp)
        if latest is None:
            return {"state": "none", "fingerprint": profile_fp}
        return latest

    async def start_benchmark(self) -> dict[str, Any]:
        if self._benchmark is not None and self._benchmark.running:
            raise conflict("a hardware benchmark is already running", "benchmark_running",
                           run_id=self._benchmark.run_id)
        profile = {**await asyncio.to_thread(collect_static_profile, self.workspace.path),
                   "torch": await self.torch_info()}
        fp = fingerprint(profile)
        run_id = await self.store.write(lambda conn: _insert_benchmark(conn, fp))
        command = ["nice", "-n", str(self.benchmark_nice), *_benchmark_command(
            self.workspace.tmp_dir, self.benchmark_disk_mb, self.benchmark_quick)]
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


def _benchmark_command(directory: Any, disk_mb: int, quick: bool) -> list[str]:
    command = [sys.executable, "-m", "notebench.hardware.benchmark", "--dir", str(directory),
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
