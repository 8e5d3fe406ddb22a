"""Shared helpers for the benchmark scripts.

A notebench server subprocess (``tests.server_process.ServerProcess``) in a temp folder,
JSON calls to its API with a chosen timeout, CPU accounting of a process, percentiles and
a plain-text results table. The scripts put the repository root on ``sys.path`` before
importing this module, so they run as ``python tests/benchmarks/<script>.py``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from tests.server_process import ServerProcess

# -- process set-up ----------------------------------------------------------------------------


def raise_nofile(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def sigterm_as_interrupt() -> None:
    """Make SIGTERM raise KeyboardInterrupt, so ``finally`` clean-up runs for it too."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


# -- the server --------------------------------------------------------------------------------


@contextlib.contextmanager
def running_server(extra: Sequence[str] = (), *, start_timeout: float = 90,
                   keep_logs: bool = False, gc_stats: bool = False,
                   gc_threshold: str | None = None) -> Iterator[ServerProcess]:
    """One notebench server subprocess in a temp folder, stopped (or killed) on exit.

    With ``gc_stats`` the server records its garbage collections (see ``GcStats``); the
    file is ``server.gc_stats_path``. ``gc_threshold`` ("700,10,10") is an experiment:
    the server runs with ``gc.set_threshold(...)``.
    """
    tmp = Path(tempfile.mkdtemp(prefix="notebench-bench-"))
    root = tmp / "root"
    root.mkdir()
    server = ServerProcess(root, extra=list(extra))
    server.gc_stats_path = None  # type: ignore[attr-defined]
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", GC_STATS_ENV, GC_THRESHOLD_ENV)}
    try:
        if gc_stats or gc_threshold:
            site_dir = tmp / "gc-site"
            site_dir.mkdir()
            (site_dir / "sitecustomize.py").write_text(_GC_SITECUSTOMIZE)
            if gc_stats:
                server.gc_stats_path = tmp / "gc-stats.json"  # type: ignore[attr-defined]
                os.environ[GC_STATS_ENV] = str(server.gc_stats_path)  # type: ignore[attr-defined]
            if gc_threshold:
                os.environ[GC_THRESHOLD_ENV] = gc_threshold
            os.environ["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(site_dir), saved["PYTHONPATH"]) if p)
        try:
            server.start(timeout=start_timeout)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        yield server
    except Exception:
        if server.log_path.exists():
            tail = server.log_path.read_text(errors="replace")[-3000:]
            print(f"--- server log tail ({server.log_path}) ---\n{tail}", file=sys.stderr)
        raise
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        with contextlib.suppress(Exception):
            server.kill()
        if not keep_logs:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


GC_STATS_ENV = "NBBENCH_GC_STATS"
GC_THRESHOLD_ENV = "NBBENCH_GC_THRESHOLD"

# Loaded by the server process only (its PYTHONPATH gets the folder): gc.callbacks that
# time every collection, written (rate limited) to the file named by NBBENCH_GC_STATS.
_GC_SITECUSTOMIZE = r'''
import gc, json, os, time
from collections import deque

_threshold = os.environ.pop("NBBENCH_GC_THRESHOLD", None)
if _threshold:
    gc.set_threshold(*(int(x) for x in _threshold.split(",")))

_path = os.environ.pop("NBBENCH_GC_STATS", None)
if _path:
    _totals = {"count": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]}
    _pauses = deque(maxlen=2000)  # (monotonic end, generation, ms) of pauses >= 1 ms
    _state = {"start": 0.0, "written": 0.0}

    def _dump(now):
        tmp = _path + ".tmp"
        with open(tmp, "w") as out:
            json.dump({"time": now, "totals": _totals, "pauses": list(_pauses),
                       "tracked_gen2": _state.get("heap")}, out)
        os.replace(tmp, _path)

    def _callback(phase, info):
        if phase == "start":
            _state["start"] = time.perf_counter()
            return
        elapsed = time.perf_counter() - _state["start"]
        gen = info["generation"]
        if gen == 2:  # after a full collection anyway: counting the survivors adds little
            _state["heap"] = len(gc.get_objects(2))
        _totals["count"][gen] += 1
        _totals["seconds"][gen] += elapsed
        now = time.monotonic()
        if elapsed >= 0.001:
            _pauses.append((now, gen, round(elapsed * 1000, 3)))
        if now - _state["written"] > 0.25:
            _state["written"] = now
            try:
                _dump(now)
            except OSError:
                pass

    gc.callbacks.append(_callback)
'''


class GcStats:
    """Garbage collections of the server between two snapshots (``running_server(gc_stats=)``)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.before = self._read()
        self.t0 = time.monotonic()

    def _read(self) -> dict[str, Any] | None:
        if self.path is None:
            return None
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def stop(self, settle: float = 0.3) -> dict[str, Any] | None:
        """Collections since the snapshot: count/seconds per generation, worst pauses."""
        t1 = time.monotonic()
        time.sleep(settle)  # the file is rewritten at most every 0.25 s
        after = self._read()
        if after is None:
            return None
        before = self.before or {"totals": {"count": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]}}
        wall = t1 - self.t0
        pauses = [p for p in after["pauses"] if self.t0 <= p[0] <= t1]
        result: dict[str, Any] = {"wall_s": wall}
        for gen in range(3):
            seconds = after["totals"]["seconds"][gen] - before["totals"]["seconds"][gen]
            result[f"gen{gen}_count"] = (after["totals"]["count"][gen]
                                         - before["totals"]["count"][gen])
            result[f"gen{gen}_seconds"] = seconds
            gen_pauses = [p[2] for p in pauses if p[1] == gen]
            result[f"gen{gen}_worst_ms"] = max(gen_pauses, default=0.0)
        result["gc_pct_of_core"] = 100.0 * sum(
            result[f"gen{g}_seconds"] for g in range(3)) / wall if wall > 0 else 0.0
        result["tracked_gen2_objects"] = after.get("tracked_gen2")
        return result


def api(server: ServerProcess, method: str, path: str, body: Any = None,
        timeout: float = 30) -> tuple[int, Any]:
    """``method notebench/api/<path>`` with the server's token; (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{server.url}notebench/api/{path}", data=data, method=method,
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# -- CPU accounting ----------------------------------------------------------------------------


def run_queue_wait(pid: int) -> float:
    """Seconds a process's main thread spent runnable but waiting for a CPU (schedstat)."""
    try:
        fields = Path(f"/proc/{pid}/schedstat").read_text().split()
        return int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return math.nan


class CpuMeter:
    """CPU time (user + system) a process used between ``start()`` and ``stop()``."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self._times0 = (0.0, 0.0)
        self._wall0 = 0.0
        self.user = 0.0
        self.system = 0.0
        self.wall = 0.0

        self._wait0 = 0.0
        self.run_wait = math.nan

    def _times(self) -> tuple[float, float]:
        times = self.process.cpu_times()
        return times.user, times.system

    def _run_wait(self) -> float:
        return run_queue_wait(self.process.pid)

    def start(self) -> CpuMeter:
        self._times0 = self._times()
        self._wait0 = self._run_wait()
        self._wall0 = time.monotonic()
        return self

    def stop(self) -> float:
        """Stop; the share of one core used meanwhile, in percent."""
        user, system = self._times()
        self.run_wait = self._run_wait() - self._wait0
        self.user = user - self._times0[0]
        self.system = system - self._times0[1]
        self.wall = time.monotonic() - self._wall0
        return self.percent

    @property
    def run_wait_percent(self) -> float:
        """Share of the wall time the main thread waited on the run queue (CPU contention)."""
        return 100.0 * self.run_wait / self.wall if self.wall > 0 else math.nan

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def system_percent(self) -> float:
        return 100.0 * self.system / self.wall if self.wall > 0 else 0.0

    @property
    def percent(self) -> float:
        return 100.0 * self.cpu / self.wall if self.wall > 0 else 0.0


# -- statistics and output ---------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return percentile(clean, 50) if clean else math.nan


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
                title: str | None = None, file: Any = None) -> None:
    """A right-aligned plain-text table (values already formatted or run through fmt)."""
    out = file or sys.stdout
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}", file=out)
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)), file=out)
    out.flush()


def report_goals(checks: Sequence[tuple[str, bool | None, str]], *, interrupted: bool,
                 strict: bool) -> int:
    """Print each check (PASS, FAIL, or info when ``ok`` is None) and the load average;
    the exit status: 130 when interrupted, 1 when ``strict`` and a goal was missed."""
    all_met = not interrupted
    for name, ok, detail in checks:
        if ok is not None:
            all_met &= bool(ok)
        mark = "info" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {mark:4}  {name}: {detail}")
    print(f"load average now: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if interrupted:
        return 130
    return 1 if strict and not all_met else 0


def log(message: str) -> None:
    """Progress on stderr, with a timestamp (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_summary() -> str:
    return (f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
            f"load avg {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
