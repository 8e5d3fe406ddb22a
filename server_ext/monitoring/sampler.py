"""The one sampler of a server: a thread that measures the machine and the jobs.

It runs on a drift-free schedule (tick ``k`` is due at ``start + k * interval``; a tick
that comes too late is skipped, never run twice), off the event loop, on the ``clock`` it
is given (``notebench.server.clock``: the system's by default). Every sample goes
to ``on_sample`` (called in the sampler thread); clients receive that cached sample, so
the cost does not grow with the number of clients.

What it reads per tick: CPU (total, per core, load), memory (cgroup-aware, through
``notebench.hardware.system.memory_info``), swap, network and disk I/O rates, free space
of the roots, GPUs through the one NVML wrapper (``nvml.sample()``; names and MIG devices
every ``static_interval``), and per job: CPU % and RSS of every process the executor
reports (``psutil.Process`` objects are kept between samples, so ``cpu_percent`` measures
the time since the previous sample), PSS every ``pss_interval`` (reading it walks the
process's memory map and takes its lock: never every second) and GPU memory.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from notebench.hardware.cgroups import CgroupLimits, read_cgroup_limits
from notebench.hardware.nvml import nvml as default_nvml
from notebench.hardware.system import memory_info

from ..clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("notebench.monitoring")

Sample = dict[str, Any]


class _Proc:
    """A job process followed between samples."""

    __slots__ = ("primed", "process", "pss", "pss_at")

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.primed = False
        self.pss: int | None = None
        self.pss_at = -math.inf


class Sampler:
    """Measures at a fixed interval in its own thread; ``on_sample`` gets each sample."""

    def __init__(self, *, interval: float, on_sample: Callable[[Sample], None],
                 roots: list[tuple[str, Path]] | None = None,
                 job_pids: Callable[[], dict[str, list[int]]] | None = None,
                 pss_interval: float = 30.0, static_interval: float = 30.0,
                 nvml: Any = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.interval = max(0.01, float(interval))
        self.clock = clock
        self.on_sample = on_sample
        self.roots = list(roots or [])
        self.job_pids = job_pids
        self.pss_interval = pss_interval
        self.static_interval = static_interval
        self.nvml = nvml if nvml is not None else default_nvml
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._procs: dict[int, _Proc] = {}
        self._last_io: tuple[float, Any, Any] | None = None
        self._gpu_static: dict[int, dict[str, Any]] = {}
        self._gpu_static_at = -math.inf
        self._cgroup_limits: CgroupLimits | None = None
        self._cgroup_at = -math.inf
        self.gpu_status: dict[str, Any] = {"available": False, "reason": None, "count": 0,
                                           "error": None}
        # figures read by stats and health
        self.samples = 0
        self.skipped = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_sample_mono: float | None = None
        self.last_cost: dict[str, float] = {}
        self.total_cpu_seconds = 0.0
        self.max_cpu_seconds = 0.0
        self.seq = 0

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._prime()
        self._thread = threading.Thread(target=self._run, name="notebench-monitoring-sampler",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _prime(self) -> None:
        """First readings: rates and percentages need a previous value."""
        with contextlib.suppress(Exception):
            psutil.cpu_percent(percpu=True)
        with contextlib.suppress(Exception):
            self._last_io = (self.clock.monotonic(), _net_counters(), _disk_counters())

    def _run(self) -> None:
        due = self.clock.monotonic()
        while not self._stop.is_set():
            try:
                sample = self.sample_once()
            except Exception as exc:  # one bad tick must not end monitoring
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.errors <= 3 or self.errors % 100 == 0:
                    log.exception("the monitoring sampler failed (%d times)", self.errors)
            else:
                try:
                    self.on_sample(sample)
                except Exception:
                    log.exception("handing a sample over failed")
            due += self.interval
            now = self.clock.monotonic()
            if due < now:  # late: skip the ticks that were missed, keep the phase
                missed = math.ceil((now - due) / self.interval)
                self.skipped += missed
                due += missed * self.interval
            self.clock.wait_until(self._stop, due)

    # -- one sample --------------------------------------------------------------------------

    def sample_once(self) -> Sample:
        """Measure everything once (blocking: the sampler thread calls it)."""
        cpu0 = time.thread_time()
        wall0 = time.perf_counter()
        ts = self.clock.time()
        mono = self.clock.monotonic()
        sample: Sample = {"ts": ts, "seq": self.seq + 1, "interval": self.interval}
        sample["cpu"] = self._cpu()
        sample["memory"], sample["swap"] = self._memory(mono)
        sample["network"], sample["disk_io"] = self._io(mono)
        sample["storage"] = self._storage()
        gpus, gpu_memory_by_pid = self._gpus(mono)
        sample["gpus"] = gpus
        sample["gpu_status"] = dict(self.gpu_status)
        sample["jobs"] = self._jobs(mono, gpu_memory_by_pid)
        cpu_seconds = time.thread_time() - cpu0
        wall = time.perf_counter() - wall0
        sample["cost"] = {"cpu_seconds": round(cpu_seconds, 6), "wall_seconds": round(wall, 6)}
        self.seq += 1
        self.samples += 1
        self.last_sample_mono = mono
        self.last_cost = sample["cost"]
        self.total_cpu_seconds += cpu_seconds
        self.max_cpu_seconds = max(self.max_cpu_seconds, cpu_seconds)
        return sample

    def _cpu(self) -> dict[str, Any]:
        per_core = psutil.cpu_percent(percpu=True)
        try:
            load = list(os.getloadavg())
        except OSError:
            load = None
        total = sum(per_core) / len(per_core) if per_core else None
        return {"percent": None if total is None else round(total, 2),
                "per_core": [round(v, 1) for v in per_core], "count": len(per_core),
                "load": load}

    def _cgroup(self, mono: float) -> CgroupLimits:
        """The cgroup's limits and usage: read each tick under a memory limit (the usage
        moves), else re-read only every ``static_interval`` (a limit may be set later)."""
        cached = self._cgroup_limits
        if cached is None or cached.memory_limit_bytes is not None or \
                mono - self._cgroup_at >= self.static_interval:
            cached = self._cgroup_limits = read_cgroup_limits()
            self._cgroup_at = mono
        return cached

    def _memory(self, mono: float) -> tuple[dict[str, Any], dict[str, Any]]:
        info = memory_info(self._cgroup(mono))
        total = info["effective_total_bytes"]
        available = info["effective_available_bytes"]
        used = max(0, total - available) if total is not None else None
        memory = {
            "total_bytes": total, "available_bytes": available, "used_bytes": used,
            "percent": round(100.0 * used / total, 2) if total else None,
            "host_total_bytes": info["total_bytes"],
            "host_available_bytes": info["available_bytes"],
            "cgroup_limit_bytes": info["cgroup_limit_bytes"],
            "limited_by": "cgroup" if info["cgroup_limit_bytes"] is not None
            and info["cgroup_limit_bytes"] < info["total_bytes"] else "host",
        }
        try:
            sw = psutil.swap_memory()
            swap = {"total_bytes": sw.total, "used_bytes": sw.used,
                    "percent": round(sw.percent, 2) if sw.total else 0.0}
        except Exception:
            swap = {"total_bytes": None, "used_bytes": None, "percent": None}
        return memory, swap

    def _io(self, mono: float) -> tuple[dict[str, Any], dict[str, Any]]:
        net, disk = _net_counters(), _disk_counters()
        network: dict[str, Any] = {"rx_bytes_total": net[0] if net else None,
                                   "tx_bytes_total": net[1] if net else None,
                                   "rx_bytes_per_second": None, "tx_bytes_per_second": None}
        disk_io: dict[str, Any] = {"read_bytes_total": disk[0] if disk else None,
                                   "write_bytes_total": disk[1] if disk else None,
                                   "read_bytes_per_second": None, "write_bytes_per_second": None}
        if self._last_io is not None:
            then, net0, disk0 = self._last_io
            dt = mono - then
            if dt > 0:
                if net and net0:
                    network["rx_bytes_per_second"] = round(max(0, net[0] - net0[0]) / dt, 1)
                    network["tx_bytes_per_second"] = round(max(0, net[1] - net0[1]) / dt, 1)
                if disk and disk0:
                    disk_io["read_bytes_per_second"] = round(max(0, disk[0] - disk0[0]) / dt, 1)
                    disk_io["write_bytes_per_second"] = round(max(0, disk[1] - disk0[1]) / dt,
                                                              1)
        self._last_io = (mono, net, disk)
        return network, disk_io

    def _storage(self) -> list[dict[str, Any]]:
        out = []
        for name, path in self.roots:
            target = _existing(path)
            try:
                usage = shutil.disk_usage(target)
            except OSError:
                out.append({"root": name, "path": str(path), "total_bytes": None,
                            "free_bytes": None, "free_percent": None})
                continue
            out.append({"root": name, "path": str(path), "total_bytes": usage.total,
                        "free_bytes": usage.free,
                        "free_percent": round(100.0 * usage.free / usage.total, 3)
                        if usage.total else None})
        return out

    def _gpus(self, mono: float) -> tuple[list[dict[str, Any]], dict[int, int] | None]:
        nv = self.nvml
        try:
            rows = nv.sample()
        except Exception as exc:  # the wrapper never raises; a stand-in might
            rows = []
            self.gpu_status["error"] = f"{type(exc).__name__}: {exc}"
        if mono - self._gpu_static_at >= self.static_interval:
            self._gpu_static_at = mono
            try:
                self._gpu_static = {d["index"]: d for d in nv.devices()}
                self.gpu_status["available"] = bool(self._gpu_static)
                self.gpu_status["reason"] = nv.reason()
                self.gpu_status["count"] = len(self._gpu_static)
            except Exception as exc:
                self.gpu_status["error"] = f"{type(exc).__name__}: {exc}"
        gpus = []
        for row in rows:
            static = self._gpu_static.get(row.get("index"), {})
            total, used = row.get("memory_total_bytes"), row.get("memory_used_bytes")
            gpus.append({
                "index": row.get("index"), "uuid": row.get("uuid"), "name": static.get("name"),
                "utilization_percent": row.get("utilization_gpu_percent"),
                "memory_utilization_percent": row.get("utilization_memory_percent"),
                "memory_used_bytes": used, "memory_total_bytes": total,
                "memory_percent": round(100.0 * used / total, 2) if total and used is not None
                else None,
                "temperature_c": row.get("temperature_c"), "power_watts": row.get("power_watts"),
                "power_limit_watts": static.get("power_limit_watts"),
                "clock_sm_mhz": row.get("clocks_sm_mhz"),
                "clock_mem_mhz": row.get("clocks_mem_mhz"),
                "mig_mode": static.get("mig_mode"),
                "mig_devices": static.get("mig_devices") or [],
            })
        self.gpu_status["seen"] = len(gpus)
        return gpus, self._gpu_process_memory() if gpus else None

    def _gpu_process_memory(self) -> dict[int, int] | None:
        """GPU memory per pid, when the NVML wrapper offers ``processes()``."""
        processes = getattr(self.nvml, "processes", None)
        if processes is None:
            return None
        by_pid: dict[int, int] = {}
        try:
            for entry in processes():
                pid, used = entry.get("pid"), entry.get("used_bytes")
                if isinstance(pid, int) and isinstance(used, int):
                    by_pid[pid] = by_pid.get(pid, 0) + used
        except Exception:
            return None
        return by_pid

    def _jobs(self, mono: float, gpu_by_pid: dict[int, int] | None) -> dict[str, Any]:
        if self.job_pids is None:
            return {}
        try:
            wanted = self.job_pids()
        except Exception:
            log.debug("listing job processes failed", exc_info=True)
            return {}
        seen: set[int] = set()
        out: dict[str, Any] = {}
        for job_id, pids in wanted.items():
            cpu = 0.0
            rss = 0
            pss_total = 0
            pss_known = True
            count = 0
            for pid in pids:
                entry = self._process(pid)
                if entry is None:
                    continue
                seen.add(pid)
                proc = entry.process
                try:
                    with proc.oneshot():
                        if entry.primed:  # a new one was just given its baseline
                            cpu += proc.cpu_percent(None)
                        entry.primed = True
                        rss += proc.memory_info().rss
                except psutil.Error:
                    continue
                count += 1
                if mono - entry.pss_at >= self.pss_interval:
                    entry.pss_at = mono
                    try:
                        entry.pss = int(proc.memory_full_info().pss)
                    except (psutil.Error, AttributeError, OSError):
                        entry.pss = None
                if entry.pss is None:
                    pss_known = False
                else:
                    pss_total += entry.pss
            gpu = None
            if gpu_by_pid is not None:
                gpu = sum(gpu_by_pid.get(pid, 0) for pid in pids)
            out[job_id] = {"cpu_percent": round(cpu, 2), "rss_bytes": rss,
                           "pss_bytes": pss_total if pss_known and count else None,
                           "gpu_memory_bytes": gpu, "processes": count}
        for pid in [p for p in self._procs if p not in seen]:
            del self._procs[pid]
        return out

    def _process(self, pid: int) -> _Proc | None:
        entry = self._procs.get(pid)
        if entry is not None:
            try:
                if entry.process.is_running():
                    return entry
            except psutil.Error:
                pass
        try:
            process = psutil.Process(pid)
            process.cpu_percent(None)  # the baseline: the next sample measures from here
        except psutil.Error:
            self._procs.pop(pid, None)
            return None
        entry = self._procs[pid] = _Proc(process)
        return entry


def _net_counters() -> tuple[int, int] | None:
    try:
        nics = psutil.net_io_counters(pernic=True)
    except Exception:
        return None
    rx = tx = 0
    for name, counters in nics.items():
        if name == "lo":
            continue
        rx += counters.bytes_recv
        tx += counters.bytes_sent
    return rx, tx


def _disk_counters() -> tuple[int, int] | None:
    try:
        counters = psutil.disk_io_counters()
    except Exception:
        return None
    if counters is None:
        return None
    return counters.read_bytes, counters.write_bytes


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
