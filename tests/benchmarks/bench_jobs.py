"""Training jobs benchmark: report() cost, job overhead, live latency, throughput, batch size.

    python tests/benchmarks/bench_jobs.py [--parts a,b,c,d,e] [--quick] [--repeats 5]
                                          [--json PATH] [--strict] [--keep-logs] ...

Every part is measured in this one run, side by side with what it is compared against
(the issue's acceptance item for ``bench_jobs.py``):

(a) the per-call cost of ``notebench.report()`` with 3 scalars, and of the framework
    integrations' logging calls (``notebench.integrations``: the Lightning logger's
    ``log_metrics``, the Hugging Face callback's ``on_log``; goal < 20 us each, "not
    installed" without their framework), against TensorBoard's
    ``SummaryWriter.add_scalar`` x3 and MLflow's ``log_metrics`` (sqlite and file stores),
    and how soon a point is readable in ``events.jsonl`` (``measure_report_cost`` of
    ``jobs_kernel_parts.py``; TensorBoard and MLflow only in the bench venv, else "not
    installed"). Goal: median <= 10 us, p99 <= 50 us, visible within 100 ms, no thread.
(b) a tiny notebook (a report() cell, a ``time.sleep(seconds)`` cell, a report() cell):
    time from ``POST lifecycle/jobs`` to the first metric on the job's SSE stream and to
    the terminal ``state`` event, against the same notebook run by the plain ``papermill``
    CLI (process start to exit), interleaved, medians of ``--repeats`` rounds after one
    untimed warm-up round (reported as "cold"). A third runner, the papermill CLI with the
    import the job runner skips (``rfc3987_syntax``), is the fair comparison (the same
    work on both sides), judged against the same goal. A breakdown per phase comes from
    papermill's own timestamps in the output notebook (same instrument for both) and the
    job's timestamps. Goal: overhead < 10 %.
(c) latency from ``report()`` in the kernel to an SSE client of the job's stream: each
    point carries the kernel's wall time ``t``; latency = client receive time - ``t``
    (same machine, same clock), for loops reporting every 100, 10 and 1 ms (report()
    writes at most every 50 ms; the tailer reads every 50 ms). Split into kernel ->
    server read (the event's ``ts``) and server -> client. Goal: p99 < 250 ms.
(d) one job reporting 50,000 points/s (one scalar per report() call by default) for 20 s:
    every point stored (rows counted in the store, distinct steps checked; also counted
    through ``GET lifecycle/jobs/{id}/metrics?format=csv``), none dropped (also counted as
    delivered to an SSE client, ``RawSseCounter``: a thread that counts points without
    decoding JSON, so that the client keeps up), and the server loop's worst lag
    (``_test/loop_lag``, polled every second) < 50 ms, from the start of reporting to the
    job's end, per phase (reporting; catching up: until the client has every point; job
    end); the lag while the CSV export is served is reported too (not in the goal).
(e) ``auto_batch_size`` on the image-classifier template's model against an exhaustive
    power-of-two sweep and Lightning's ``Tuner.scale_batch_size`` (``measure_auto_batch_size``
    of ``jobs_kernel_parts.py``; Lightning only in the bench venv), five runs (two with
    ``--quick``). Goal, on the medians: >= 95 % of the sweep's best throughput, decided
    faster than Lightning. On a machine busier than its
    core count, ``--threads 1`` keeps torch's thread pool from being oversubscribed (the
    sweep is otherwise too noisy to judge against).

Parts b-d use one notebench server subprocess (``tests.server_process.ServerProcess``,
test hooks on) with its default job settings (one CPU slot, 0.5 s tick, 50 ms tailer);
``--server-arg`` adds server options. The machine may be shared: the 1-minute load
average is printed with every part. Exit status 0 unless ``--strict`` and a goal is
missed. Every process started here (server, jobs, papermill and their kernels) is ended
on the way out, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TERMINAL = ("succeeded", "failed", "stopped", "cancelled")
GOAL_OVERHEAD = 0.10
GOAL_C_P99_MS = 250.0
GOAL_D_LAG_MS = 50.0
NB_DIR = "bench-jobs"  # under the server root

#: papermill's CLI with the import that notebench's runner skips (see jobs/runner.py)
_SKIP_IMPORT_CLI = ("import sys; sys.modules.setdefault('rfc3987_syntax', None); "
                    "from papermill.cli import papermill; papermill()")

# -- notebooks ---------------------------------------------------------------------------------

TINY_CELLS = [
    "import time\nimport notebench\nnotebench.report(step=0, loss=1.0)",
    "time.sleep(seconds)",
    "notebench.report(step=1, loss=0.5)",
]
TINY_PARAMETERS = "seconds: float = 1.0"

_WAIT_FOR_GO = """import json, os, time
import notebench
deadline = time.monotonic() + go_timeout
while not os.path.exists("go") and time.monotonic() < deadline:
    time.sleep(0.005)
"""

LATENCY_PARAMETERS = ('seconds: float = 5.0\nintervals_ms: str = "100,10,1"\n'
                      "go_timeout: float = 60.0")
LATENCY_CELLS = [
    _WAIT_FOR_GO,
    """counts = {}
step = 0
for interval_ms in [float(x) for x in intervals_ms.split(",") if x.strip()]:
    interval = interval_ms / 1000.0
    start = time.perf_counter()
    end = start + seconds
    next_at = start
    counts[interval_ms] = 0
    while time.perf_counter() < end:
        notebench.report(step=step, interval_ms=interval_ms, loss=1.0 / (step + 1))
        step += 1
        counts[interval_ms] += 1
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
with open("c_result.json", "w") as out:
    json.dump({"counts": {str(k): v for k, v in counts.items()}}, out)
""",
]

THROUGHPUT_PARAMETERS = ("rate: int = 50000\nseconds: float = 20.0\nscalars: int = 1\n"
                         "go_timeout: float = 60.0")
THROUGHPUT_CELLS = [
    _WAIT_FOR_GO,
    """report = notebench.report
extra = {f"m{k}": 0.5 for k in range(1, scalars)}
total = int(rate * seconds)
t_start = time.time()
start = time.perf_counter()
i = 0
most_behind = 0
while i < total:
    due = min(total, int((time.perf_counter() - start) * rate) + 1)
    most_behind = max(most_behind, due - i)
    if extra:
        while i < due:
            report(step=i, loss=1.0 / (i + 1), **extra)
            i += 1
    else:
        while i < due:
            report(step=i, loss=1.0 / (i + 1))
            i += 1
    time.sleep(0.001)
elapsed = time.perf_counter() - start
result = {"calls": i, "elapsed": elapsed, "t_start": t_start, "t_end": time.time(),
          "scalars": scalars, "most_behind": most_behind}
with open("d_result.json.tmp", "w") as out:
    json.dump(result, out)
os.replace("d_result.json.tmp", "d_result.json")
""",
]


def write_notebook(root: Path, name: str, cells: list[str], parameters: str) -> str:
    """A notebook under the server root; its path relative to the root."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, *(nbformat.v4.new_code_cell(source) for source in cells)]
    folder = root / NB_DIR
    folder.mkdir(exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    return f"{NB_DIR}/{name}.ipynb"


# -- helpers ----------------------------------------------------------------------------------


def load1() -> float:
    return os.getloadavg()[0]


def iso_ts(value: str | None) -> float | None:
    if not value:
        return None
    stamp = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def papermill_times(path: Path) -> dict[str, float | None]:
    """papermill's timestamps in an output notebook: its start, first/last cell, its end."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    meta = nb.get("metadata", {}).get("papermill", {})
    cells = [c.get("metadata", {}).get("papermill", {}) for c in nb.get("cells", [])
             if c.get("cell_type") == "code"]
    starts = [iso_ts(c.get("start_time")) for c in cells if c.get("start_time")]
    ends = [iso_ts(c.get("end_time")) for c in cells if c.get("end_time")]
    return {"nb_start": iso_ts(meta.get("start_time")), "nb_end": iso_ts(meta.get("end_time")),
            "first_cell": min(starts) if starts else None,
            "last_cell_end": max(ends) if ends else None}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    out = []
    for line in data.split(b"\n"):
        with contextlib.suppress(ValueError):
            if line.strip():
                out.append(json.loads(line))
    return out


def kill_tree(pid: int, create_time: float | None = None) -> int:
    """SIGKILL a process and its descendants (only if its start time matches)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.05:
            return 0
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    killed = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
            killed += 1
    return killed


def diff(a: float | None, b: float | None) -> float:
    return math.nan if a is None or b is None else a - b


class Ctx:
    """What the server parts share, and what must be cleaned up."""

    def __init__(self, server: Any, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.jobs: dict[str, Path] = {}  # job id -> job dir
        self.ended: set[str] = set()
        self.cli: subprocess.Popen[bytes] | None = None
        info = self.info()
        self.workspace = Path(info["workspace"]["path"])
        self.runs_dir = self.workspace / "artifacts" / "jobs"
        self.store_path = self.workspace / ".notebench" / "state.sqlite"
        if not self.store_path.exists():
            found = list(self.workspace.rglob("state.sqlite"))
            self.store_path = found[0] if found else self.store_path

    def info(self) -> dict[str, Any]:
        from tests.benchmarks._common import api

        status, body = api(self.server, "GET", "info")
        if status != 200:
            raise RuntimeError(f"GET info: {status} {body}")
        return body

    def loop_lag(self) -> float:
        from tests.benchmarks._common import api

        status, body = api(self.server, "GET", "_test/loop_lag")
        if status != 200:
            raise RuntimeError(f"GET _test/loop_lag: {status} {body}")
        return float(body["worst_lag_ms"])

    def submit(self, notebook: str, parameters: dict[str, Any], name: str) -> dict[str, Any]:
        from tests.benchmarks._common import api

        status, job = api(self.server, "POST", "lifecycle/jobs",
                          {"notebook": notebook, "parameters": parameters, "name": name})
        if status != 201:
            raise RuntimeError(f"POST lifecycle/jobs: {status} {job}")
        self.jobs[job["id"]] = self.runs_dir / job["id"]
        return job

    def get_job(self, job_id: str) -> dict[str, Any]:
        from tests.benchmarks._common import api

        status, job = api(self.server, "GET", f"lifecycle/jobs/{job_id}")
        if status != 200:
            raise RuntimeError(f"GET lifecycle/jobs/{job_id}: {status} {job}")
        return job

    def go(self, job_id: str) -> None:
        """Let the job's kernel start (its notebook waits for a ``go`` file in its cwd)."""
        (self.jobs[job_id] / "go").write_text("go")

    async def open_stream(self, job_id: str, after_id: int) -> Any:
        from tests.sse_client import open_sse

        conn = await open_sse(
            self.server.port,
            f"{self.server.base_url}notebench/api/lifecycle/jobs/{job_id}/stream"
            f"?last_event_id={after_id}",
            headers={"Authorization": f"token {self.server.token}"})
        if conn.status != 200:
            conn.close()
            raise RuntimeError(f"job stream of {job_id}: HTTP {conn.status}")
        return conn

    def cleanup(self) -> None:
        """Kill whatever of our jobs and papermill runs may still run."""
        from tests.benchmarks._common import log

        if self.cli is not None and self.cli.poll() is None:
            kill_tree(self.cli.pid)
            with contextlib.suppress(Exception):
                self.cli.wait(5)
        for job_id, job_dir in self.jobs.items():
            if job_id in self.ended:
                continue
            refs: dict[str, dict[str, Any]] = {}
            with contextlib.suppress(Exception):
                job = self.get_job(job_id)
                if job["state"] in TERMINAL:
                    continue
                refs = dict(job.get("processes") or {})
            for record in read_jsonl(job_dir / "runner.jsonl"):
                if record.get("kind") in ("runner", "kernel"):
                    refs.setdefault(record["kind"], record)
            killed = sum(kill_tree(int(r["pid"]), r.get("create_time"))
                         for r in refs.values() if r.get("pid"))
            if killed:
                log(f"killed {killed} processes of job {job_id}")


async def drain(conn: Any, seconds: float) -> list[Any]:
    """Read for up to ``seconds``; the frames that arrived (each stamped when parsed)."""
    await conn.read_for(seconds)
    frames = list(conn.frames)
    conn.frames.clear()
    return frames


# =============================================================================================
# (b) POST -> first metric -> completion, against the papermill CLI
# =============================================================================================


async def b_job_once(ctx: Ctx, notebook: str, seconds: float, timeout: float) -> dict[str, Any]:
    last_id = (await asyncio.to_thread(ctx.info))["events"]["last_id"]
    t0 = time.time()
    job = await asyncio.to_thread(ctx.submit, notebook, {"seconds": seconds}, "bench-b")
    t_posted = time.time()
    job_id = job["id"]
    conn = await ctx.open_stream(job_id, last_id)
    first_metric: float | None = None
    first_metric_kernel_t: float | None = None
    done: float | None = None
    state = None
    deadline = time.monotonic() + timeout
    try:
        while done is None and time.monotonic() < deadline and not conn.closed:
            for frame in await drain(conn, 0.2):
                payload = frame.data.get("data") if isinstance(frame.data, dict) else None
                if not isinstance(payload, dict):
                    continue
                if frame.event == "metrics" and first_metric is None:
                    first_metric = frame.received
                    first_metric_kernel_t = min(p["t"] for p in payload["points"])
                elif frame.event == "state" and payload.get("state") in TERMINAL:
                    done, state = frame.received, payload["state"]
    finally:
        conn.close()
    if done is None:
        raise RuntimeError(f"job {job_id} did not end within {timeout:g} s")
    ctx.ended.add(job_id)
    row = await asyncio.to_thread(ctx.get_job, job_id)
    job_dir = ctx.jobs[job_id]
    pm = papermill_times(job_dir / "output.ipynb")
    runner = {r["kind"]: r for r in read_jsonl(job_dir / "runner.jsonl")}
    finished_t = (runner.get("finished") or {}).get("t")
    return {
        "runner": "job", "id": job_id, "state": state, "reason": row.get("reason"),
        "total": done - t0, "first_metric": diff(first_metric, t0),
        "post_answer": t_posted - t0,
        "kernel_report_to_client": diff(first_metric, first_metric_kernel_t),
        "report_cell_at": diff(first_metric_kernel_t, t0),
        # phases
        "to_launch": diff(row.get("started"), t0),
        "launch_to_papermill": diff(pm.get("nb_start"), row.get("started")),
        "kernel_start": diff(pm.get("first_cell"), pm.get("nb_start")),
        "cells": diff(pm.get("last_cell_end"), pm.get("first_cell")),
        "to_exit": diff(finished_t, pm.get("last_cell_end")),
        "exit_to_ended": diff(row.get("ended"), finished_t),
        "ended_to_client": diff(done, row.get("ended")),
        "runner_record_after_launch": diff((runner.get("runner") or {}).get("t"),
                                           row.get("started")),
    }


def b_cli_once(ctx: Ctx, command: list[str], label: str, source: Path, work: Path,
               seconds: float, timeout: float) -> dict[str, Any]:
    slug = "".join(c if c.isalnum() else "-" for c in label)
    out = work / f"out-{slug}.ipynb"
    out.unlink(missing_ok=True)
    errors = work / f"stderr-{slug}.txt"
    argv = [*command, str(source), str(out), "-p", "seconds", repr(float(seconds))]
    t0 = time.time()
    with errors.open("wb") as err:
        ctx.cli = subprocess.Popen(argv, cwd=work, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=err,
                                   start_new_session=True)
    try:
        code = ctx.cli.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_tree(ctx.cli.pid)
        ctx.cli.wait(5)
        raise RuntimeError(f"{label} did not end within {timeout:g} s") from None
    t_exit = time.time()
    ctx.cli = None
    if code != 0:
        raise RuntimeError(f"{label} exited {code}: {errors.read_text()[-2000:]}")
    pm = papermill_times(out)
    return {
        "runner": label, "total": t_exit - t0, "first_metric": math.nan,
        "report_cell_at": diff(pm.get("first_cell"), t0),
        "to_launch": 0.0,
        "launch_to_papermill": diff(pm.get("nb_start"), t0),
        "kernel_start": diff(pm.get("first_cell"), pm.get("nb_start")),
        "cells": diff(pm.get("last_cell_end"), pm.get("first_cell")),
        "to_exit": t_exit - (pm.get("last_cell_end") or math.nan),
        "exit_to_ended": 0.0, "ended_to_client": 0.0,
    }


async def part_b(ctx: Ctx) -> dict[str, Any]:
    from tests.benchmarks._common import log

    args = ctx.args
    notebook = write_notebook(ctx.server.root_dir, "tiny", TINY_CELLS, TINY_PARAMETERS)
    source = ctx.server.root_dir / notebook
    work = ctx.server.root_dir.parent / "papermill-cli"
    work.mkdir(exist_ok=True)
    papermill = str(Path(sys.executable).with_name("papermill"))
    runners: dict[str, Any] = {
        "job": None,
        "papermill CLI": [papermill],
        "papermill CLI, import skipped": [sys.executable, "-c", _SKIP_IMPORT_CLI],
    }
    timeout = args.b_timeout

    async def once(label: str) -> dict[str, Any]:
        if runners[label] is None:
            return await b_job_once(ctx, notebook, args.b_seconds, timeout)
        return await asyncio.to_thread(b_cli_once, ctx, runners[label], label, source, work,
                                       args.b_seconds, timeout)

    labels = list(runners)
    cold: dict[str, dict[str, Any]] = {}
    log(f"(b) warm-up round (cold figures), load {load1():.2f}")
    for label in labels:
        cold[label] = await once(label)
        log(f"  cold {label}: {cold[label]['total']:.2f} s")
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        order = labels[repeat % len(labels):] + labels[:repeat % len(labels)]
        for label in order:
            result = await once(label)
            result["repeat"] = repeat
            result["load_1m"] = load1()
            runs.append(result)
            extra = (f", first metric {result['first_metric']:.2f} s, {result['state']}"
                     if label == "job" else "")
            log(f"  round {repeat + 1}/{args.repeats} {label}: {result['total']:.2f} s{extra}")
    return {"notebook_seconds": args.b_seconds, "cold": cold, "runs": runs}


# =============================================================================================
# (c) report() in the kernel -> SSE client
# =============================================================================================


async def part_c(ctx: Ctx) -> dict[str, Any]:
    from tests.benchmarks._common import log, percentile

    args = ctx.args
    notebook = write_notebook(ctx.server.root_dir, "latency", LATENCY_CELLS, LATENCY_PARAMETERS)
    intervals = [float(x) for x in args.c_intervals.split(",") if x.strip()]
    params = {"seconds": args.c_seconds, "intervals_ms": ",".join(f"{x:g}" for x in intervals)}
    last_id = (await asyncio.to_thread(ctx.info))["events"]["last_id"]
    job = await asyncio.to_thread(ctx.submit, notebook, params, "bench-c")
    job_id, job_dir = job["id"], ctx.jobs[job["id"]]
    conn = await ctx.open_stream(job_id, last_id)
    samples: dict[float, list[tuple[float, float]]] = {x: [] for x in intervals}
    state = None
    load_before = load1()
    timeout = args.c_seconds * len(intervals) + args.b_timeout
    deadline = time.monotonic() + timeout
    try:
        # the stream is open: let the kernel start reporting
        await asyncio.to_thread(ctx.go, job_id)
        await asyncio.to_thread(ctx.loop_lag)  # reset
        while state is None and time.monotonic() < deadline and not conn.closed:
            for frame in await drain(conn, 0.2):
                payload = frame.data.get("data") if isinstance(frame.data, dict) else None
                if not isinstance(payload, dict):
                    continue
                if frame.event == "metrics":
                    server_ts = frame.data.get("ts")
                    for point in payload["points"]:
                        interval = point["metrics"].get("interval_ms")
                        if interval in samples:
                            samples[interval].append((frame.received - point["t"],
                                                      server_ts - point["t"]))
                elif frame.event == "state" and payload.get("state") in TERMINAL:
                    state = payload["state"]
    finally:
        conn.close()
    if state is None:
        raise RuntimeError(f"job {job_id} did not end within {timeout:.0f} s")
    ctx.ended.add(job_id)
    lag = await asyncio.to_thread(ctx.loop_lag)
    try:
        reported = json.loads((job_dir / "c_result.json").read_text())["counts"]
    except (OSError, ValueError, KeyError):
        reported = {}
    rows = []
    for interval in intervals:
        total = sorted(1000 * s[0] for s in samples[interval])
        to_server = sorted(1000 * s[1] for s in samples[interval])
        to_client = sorted(1000 * (s[0] - s[1]) for s in samples[interval])
        rows.append({
            "interval_ms": interval, "points": len(total),
            "reported": reported.get(str(interval)),
            "p50_ms": percentile(total, 50), "p99_ms": percentile(total, 99),
            "max_ms": total[-1] if total else math.nan,
            "to_server_p50_ms": percentile(to_server, 50),
            "to_server_p99_ms": percentile(to_server, 99),
            "to_client_p50_ms": percentile(to_client, 50),
            "to_client_p99_ms": percentile(to_client, 99),
        })
        log(f"(c) every {interval:g} ms: {len(total)} points, p50 {rows[-1]['p50_ms']:.1f} ms, "
            f"p99 {rows[-1]['p99_ms']:.1f} ms")
    every = sorted(1000 * s[0] for v in samples.values() for s in v)
    return {"job_id": job_id, "state": state, "seconds_per_interval": args.c_seconds,
            "rows": rows, "all_p50_ms": percentile(every, 50),
            "all_p99_ms": percentile(every, 99), "points": len(every),
            "loop_lag_ms": lag, "load_1m": (load_before + load1()) / 2}


# =============================================================================================
# (d) 50,000 points/s for 20 s
# =============================================================================================


def count_stored(store_path: Path, job_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT COUNT(*) FROM job_metrics WHERE job_id = ?",
                            (job_id,)).fetchone()[0]
        steps, low, high = conn.execute(
            "SELECT COUNT(DISTINCT step), MIN(step), MAX(step) FROM job_metrics "
            "WHERE job_id = ? AND name = 'loss'", (job_id,)).fetchone()
    finally:
        conn.close()
    return {"rows": rows, "distinct_loss_steps": steps, "min_step": low, "max_step": high}


def count_csv(server: Any, job_id: str, timeout: float) -> tuple[int, float, int]:
    """(data lines, seconds, bytes) of ``GET lifecycle/jobs/{id}/metrics?format=csv``."""
    import urllib.request

    req = urllib.request.Request(
        f"{server.url}notebench/api/lifecycle/jobs/{job_id}/metrics?format=csv",
        headers={"Authorization": f"token {server.token}"})
    start = time.monotonic()
    lines, size, last = 0, 0, b""
    with urllib.request.urlopen(req, timeout=timeout) as response:
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if size and last != b"\n":
        lines += 1
    return max(0, lines - 1), time.monotonic() - start, size  # minus the header line


class RawSseCounter(threading.Thread):
    """A job stream read on a blocking socket in a thread, counting metric points cheaply.

    At 50,000 points/s the stream carries megabytes per second in frames of up to about a
    megabyte (one per read of the tailer); decoding them as JSON on a busy machine can make
    the client itself fall behind until the server drops it (``sse_max_backlog_bytes``).
    This client de-chunks the HTTP body, splits frames and counts ``"total_steps":`` in
    metrics frames (one per point) without decoding them; only ``state`` frames are parsed.
    """

    _FIRST_T = re.compile(rb'"points":\[\{"t":([0-9.eE+-]+)')

    def __init__(self, port: int, path: str, token: str, timeout: float) -> None:
        super().__init__(name="bench-sse-counter", daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Accept: text/event-stream\r\nAuthorization: token {token}\r\n\r\n"
                           ).encode())
        self.deadline = time.monotonic() + timeout
        self.points = 0
        self.frames = 0
        self.last_metrics = 0.0
        self.max_age = 0.0
        self.terminal: str | None = None
        self.closed_by_server = False
        self.error: str | None = None
        self._halt = threading.Event()
        self._raw = bytearray()
        head = self._read_head()
        if not head.startswith(b"HTTP/1.1 200"):
            self.sock.close()
            raise RuntimeError(f"job stream: {head[:200]!r}")

    def _read_head(self) -> bytes:
        while b"\r\n\r\n" not in self._raw:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("job stream closed before its headers")
            self._raw += data
        end = self._raw.index(b"\r\n\r\n") + 4
        head = bytes(self._raw[:end])
        del self._raw[:end]
        return head

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        body = bytearray()
        scan_from = 0
        self.sock.settimeout(0.2)
        try:
            while not self._halt.is_set() and time.monotonic() < self.deadline:
                # de-chunk what is complete
                while True:
                    line_end = self._raw.find(b"\r\n")
                    if line_end < 0:
                        break
                    size = int(self._raw[:line_end].split(b";")[0] or b"0", 16)
                    if size == 0:
                        self.closed_by_server = True
                        return
                    if len(self._raw) < line_end + 2 + size + 2:
                        break
                    body += self._raw[line_end + 2:line_end + 2 + size]
                    del self._raw[:line_end + 2 + size + 2]
                # complete frames
                while True:
                    end = body.find(b"\n\n", scan_from)
                    if end < 0:
                        scan_from = max(0, len(body) - 1)
                        break
                    self._frame(bytes(body[:end]), time.time())
                    del body[:end + 2]
                    scan_from = 0
                if self.terminal is not None:
                    return
                try:
                    data = self.sock.recv(1 << 20)
                except TimeoutError:
                    continue
                if not data:
                    self.closed_by_server = True
                    return
                self._raw += data
        except Exception as exc:  # reported with the results
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(OSError):
                self.sock.close()

    def _frame(self, frame: bytes, received: float) -> None:
        self.frames += 1
        if b"\nevent: metrics\n" in frame or frame.startswith(b"event: metrics\n"):
            self.points += frame.count(b'"total_steps":')
            self.last_metrics = received
            match = self._FIRST_T.search(frame)
            if match:
                self.max_age = max(self.max_age, received - float(match.group(1)))
        elif b"event: state\n" in frame:
            for line in frame.split(b"\n"):
                if line.startswith(b"data:"):
                    state = (json.loads(line[5:]).get("data") or {}).get("state")
                    if state in TERMINAL:
                        self.terminal = state


async def part_d(ctx: Ctx) -> dict[str, Any]:
    from tests.benchmarks._common import CpuMeter, log

    args = ctx.args
    notebook = write_notebook(ctx.server.root_dir, "throughput", THROUGHPUT_CELLS,
                              THROUGHPUT_PARAMETERS)
    params = {"rate": args.d_rate, "seconds": args.d_seconds, "scalars": args.d_scalars}
    expected_calls = int(args.d_rate * args.d_seconds)
    info = await asyncio.to_thread(ctx.info)
    dropped_before = info["events"]["dropped_clients"]
    job = await asyncio.to_thread(ctx.submit, notebook, params, "bench-d")
    job_id, job_dir = job["id"], ctx.jobs[job["id"]]
    timeout = args.d_seconds * 3 + args.b_timeout + 120
    counter = None
    if args.d_sse:
        counter = RawSseCounter(
            ctx.server.port,
            f"{ctx.server.base_url}notebench/api/lifecycle/jobs/{job_id}/stream"
            f"?last_event_id={info['events']['last_id']}", ctx.server.token, timeout * 2)
        counter.start()
    load_before = load1()
    timeline: list[tuple[float, str, float]] = []  # (s since go, phase, worst lag ms)
    state: dict[str, Any] = {"phase": "starting", "terminal": None, "kernel": None}
    try:
        # wait until the kernel waits for "go" (the job runs), then start the clock
        started = time.monotonic()
        while time.monotonic() - started < args.b_timeout:
            row = await asyncio.to_thread(ctx.get_job, job_id)
            if row["state"] in TERMINAL:
                raise RuntimeError(f"job {job_id} ended {row['state']} before reporting: "
                                   f"{row.get('reason')} {row.get('error')}")
            if (row.get("progress") or {}).get("cell") == 2:  # injected params, params, wait
                break
            await asyncio.sleep(0.1)
        await asyncio.to_thread(ctx.loop_lag)  # reset
        meter = CpuMeter(ctx.server.proc.pid).start()
        go = time.monotonic()
        await asyncio.to_thread(ctx.go, job_id)
        state["phase"] = "reporting"
        result_path = job_dir / "d_result.json"
        reporting_cpu: dict[str, float] = {}
        while time.monotonic() - go < timeout:
            await asyncio.sleep(1.0)
            lag = await asyncio.to_thread(ctx.loop_lag)
            timeline.append((round(time.monotonic() - go, 1), state["phase"], lag))
            if state["phase"] == "reporting" and result_path.exists():
                state["kernel"] = json.loads(result_path.read_text())
                state["phase"] = "catching up" if counter is not None else "after reporting"
                meter.stop()
                reporting_cpu = {"cpu_pct": meter.percent,
                                 "run_wait_pct": meter.run_wait_percent}
            if (state["phase"] == "catching up" and counter is not None
                    and counter.points >= state["kernel"]["calls"]):
                state["phase"] = "ending"
            if counter is not None and counter.terminal is not None:
                state["terminal"] = counter.terminal
            elif counter is None or not counter.is_alive():
                row = await asyncio.to_thread(ctx.get_job, job_id)
                if row["state"] in TERMINAL:
                    state["terminal"] = row["state"]
            if state["terminal"] is not None:
                break
    finally:
        if counter is not None:
            counter.stop()
            await asyncio.to_thread(counter.join, 5)
    if state["terminal"] is None:
        raise RuntimeError(f"job {job_id} did not end within {timeout:.0f} s of go")
    ctx.ended.add(job_id)
    lag_end = await asyncio.to_thread(ctx.loop_lag)
    timeline.append((round(time.monotonic() - go, 1), "ending", lag_end))
    kernel = state["kernel"] or {}
    calls = int(kernel.get("calls") or 0)
    stored = await asyncio.to_thread(count_stored, ctx.store_path, job_id)
    info = await asyncio.to_thread(ctx.info)
    result: dict[str, Any] = {
        "job_id": job_id, "state": state["terminal"], "requested_rate": args.d_rate,
        "requested_seconds": args.d_seconds, "scalars": args.d_scalars,
        "calls": calls, "expected_calls": expected_calls,
        "kernel_seconds": kernel.get("elapsed"),
        "achieved_rate": calls / kernel["elapsed"] if kernel.get("elapsed") else math.nan,
        "kernel_most_behind": kernel.get("most_behind"),
        "expected_rows": calls * args.d_scalars, **stored,
        "sse_points": counter.points if counter is not None else None,
        "sse_catch_up_s": (counter.last_metrics - kernel["t_end"]
                           if counter is not None and kernel.get("t_end")
                           and counter.last_metrics else math.nan),
        "sse_max_point_age_s": counter.max_age if counter is not None else math.nan,
        "sse_closed_by_server": counter.closed_by_server if counter is not None else None,
        "sse_error": counter.error if counter is not None else None,
        "dropped_clients": info["events"]["dropped_clients"] - dropped_before,
        "timeline": timeline,
        "worst_lag_ms": max((t[2] for t in timeline), default=math.nan),
        **{f"worst_lag_{phase.replace(' ', '_')}_ms":
           max((t[2] for t in timeline if t[1] == phase), default=math.nan)
           for phase in ("reporting", "catching up", "after reporting", "ending")},
        "server_cpu_pct_reporting": reporting_cpu.get("cpu_pct", math.nan),
        "server_run_wait_pct_reporting": reporting_cpu.get("run_wait_pct", math.nan),
        "load_1m": (load_before + load1()) / 2,
    }
    log(f"(d) {state['terminal']}: {calls:,} calls in {kernel.get('elapsed', math.nan):.1f} s, "
        f"{stored['rows']:,} rows stored of {calls * args.d_scalars:,}, SSE "
        f"{result['sse_points']} points; worst loop lag {result['worst_lag_ms']} ms")
    if args.d_csv:
        await asyncio.to_thread(ctx.loop_lag)  # reset
        lines, seconds, size = await asyncio.to_thread(count_csv, ctx.server, job_id, 600)
        result.update({"csv_rows": lines, "csv_seconds": seconds, "csv_bytes": size,
                       "csv_loop_lag_ms": await asyncio.to_thread(ctx.loop_lag)})
        log(f"(d) CSV export: {lines:,} rows, {size / 1e6:.1f} MB in {seconds:.1f} s, loop lag "
            f"meanwhile {result['csv_loop_lag_ms']} ms")
    return result


# =============================================================================================
# output
# =============================================================================================


def print_a(result: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    from tests.benchmarks.jobs_kernel_parts import _print_report

    _print_report(result)
    ours = result["notebench_report"]
    goals = result["goals"]
    worst = max((v.get("max_ms", 0.0) for v in result["visibility"]), default=math.nan)
    others = []
    for key, label in (("tensorboard_add_scalar_x3", "TensorBoard"),
                       ("mlflow_log_metrics_sqlite", "MLflow sqlite"),
                       ("mlflow_log_metrics_file", "MLflow file")):
        entry = result[key]
        others.append(f"{label} {entry['status']}" if "status" in entry
                      else f"{label} {entry['median_us'] / ours['median_us']:,.0f}x slower")
    integrations = []
    for key, label in (("lightning_logger_log_metrics", "Lightning logger"),
                       ("huggingface_callback_on_log", "Hugging Face callback")):
        entry = result[key]
        goal = goals.get(f"{key}_median_lt_20us")
        integrations.append((f"(a) {label} median < 20 µs per logging call", goal,
                             entry["status"] if "status" in entry else
                             f"{entry['median_us']:.2f} µs, "
                             f"{entry['median_us'] / ours['median_us']:.2f}x report()"))
    return [
        ("(a) report() median <= 10 µs", goals["median_le_10us"],
         f"{ours['median_us']:.2f} µs ({'; '.join(others)})"),
        *integrations,
        ("(a) report() p99 <= 50 µs", goals["p99_le_50us"], f"{ours['p99_us']:.2f} µs"),
        ("(a) points readable within 100 ms", goals["visible_within_100ms"],
         f"worst {worst:.1f} ms"),
        ("(a) no background thread", goals["no_background_thread"],
         f"{ours['background_threads_added']} threads added"),
    ]


def print_b(result: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    from tests.benchmarks._common import fmt, median, print_table

    runs = result["runs"]
    labels = list(dict.fromkeys(r["runner"] for r in runs))
    keys = ("total", "first_metric", "report_cell_at", "to_launch", "launch_to_papermill",
            "kernel_start", "cells", "to_exit", "exit_to_ended", "ended_to_client", "load_1m")
    med = {label: {k: median([r.get(k, math.nan) for r in runs if r["runner"] == label])
                   for k in keys} for label in labels}
    baseline = med["papermill CLI"]["total"]
    rows = []
    for label in labels:
        m = med[label]
        cold = result["cold"].get(label, {})
        rows.append([label, fmt(sum(r["runner"] == label for r in runs)), fmt(m["total"], 2),
                     f"{100 * (m['total'] / baseline - 1):+.1f} %", fmt(m["first_metric"], 2),
                     fmt(m["report_cell_at"], 2), fmt(cold.get("total"), 2),
                     fmt(m["load_1m"], 2)])
    print_table(["runner", "runs", "to completion s", "vs papermill", "first metric s",
                 "report cell ran s", "cold s", "load 1m"], rows,
                title=f"(b) a {result['notebook_seconds']:g}-second notebook (4 cells + "
                      "papermill's injected one): from POST (job) or process start (CLI) to "
                      "completion seen by the client, medians; 'report cell ran' = when the "
                      "first report() cell started (papermill's timestamp); cold = the untimed "
                      "warm-up round")
    phase_rows = []
    for label in labels:
        m = med[label]
        phase_rows.append([label, fmt(m["to_launch"], 2), fmt(m["launch_to_papermill"], 2),
                           fmt(m["kernel_start"], 2), fmt(m["cells"], 2), fmt(m["to_exit"], 2),
                           fmt(m["exit_to_ended"], 2), fmt(m["ended_to_client"], 2),
                           fmt(m["total"], 2)])
    print_table(["runner", "POST->launch", "launch->papermill", "kernel start", "cells",
                 "->exit", "exit->ended", "ended->client", "total"], phase_rows,
                title="(b) where the time goes, medians in s (launch: the runner process "
                      "starts; papermill: its own start timestamp, after its imports; kernel "
                      "start: to the first cell; ->exit: last cell end to the process's end "
                      "(job: the runner's 'finished' record); exit->ended: the runner's process "
                      "ends, the server notices (the executor watches it) and finalizes; "
                      "ended->client: the terminal state event arrives)")
    jobs = [r for r in runs if r["runner"] == "job"]
    print(f"job: POST answered in {median([r['post_answer'] for r in jobs]) * 1000:.0f} ms "
          f"(median); first report() -> its SSE event "
          f"{median([r['kernel_report_to_client'] for r in jobs]) * 1000:.0f} ms; runner "
          f"record written {median([r['runner_record_after_launch'] for r in jobs]):.2f} s "
          "after launch; job states: "
          + ", ".join(sorted({str(r['state']) for r in jobs})))
    job = med["job"]["total"]
    succeeded = all(r["state"] == "succeeded" for r in jobs)
    checks: list[tuple[str, bool | None, str]] = [
        ("(b) overhead < 10 % over the papermill CLI", job < baseline * (1 + GOAL_OVERHEAD)
         and succeeded,
         f"job {job:.2f} s vs papermill CLI {baseline:.2f} s ({100 * (job / baseline - 1):+.1f} "
         f"%); first metric at {med['job']['first_metric']:.2f} s")]
    skip = med.get("papermill CLI, import skipped")
    if skip:
        fair = skip["total"]
        checks.append((
            "(b) fair: overhead < 10 % over the papermill CLI with the runner's import skip",
            job < fair * (1 + GOAL_OVERHEAD) and succeeded,
            f"job {job:.2f} s vs {fair:.2f} s ({100 * (job / fair - 1):+.1f} %): the same "
            f"work on both sides (the plain CLI also builds rfc3987_syntax's grammar, "
            f"{baseline - fair:+.2f} s); the job's own extra: POST->launch "
            f"{med['job']['to_launch']:.2f} s, exit->ended {med['job']['exit_to_ended']:.2f} s, "
            f"ended->client {med['job']['ended_to_client']:.2f} s"))
    return checks


def print_c(result: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    from tests.benchmarks._common import fmt, print_table

    rows = [[f"{r['interval_ms']:g} ms", fmt(r["reported"]), fmt(r["points"]), fmt(r["p50_ms"]),
             fmt(r["p99_ms"]), fmt(r["max_ms"]), fmt(r["to_server_p50_ms"]),
             fmt(r["to_server_p99_ms"]), fmt(r["to_client_p50_ms"]), fmt(r["to_client_p99_ms"])]
            for r in result["rows"]]
    print_table(["report every", "reported", "received", "p50 ms", "p99 ms", "max ms",
                 "->server p50", "->server p99", "server->client p50", "p99"], rows,
                title=f"(c) report() in the kernel -> SSE client of the job stream "
                      f"({result['seconds_per_interval']:g} s per interval; ->server: to the "
                      f"tailer's read, the event's ts; load 1m {result['load_1m']:.2f}; worst "
                      f"loop lag {result['loop_lag_ms']} ms)")
    complete = all(r["reported"] is None or r["reported"] == r["points"] for r in result["rows"])
    return [("(c) report() -> SSE client p99 < 250 ms",
             result["all_p99_ms"] < GOAL_C_P99_MS and all(
                 r["p99_ms"] < GOAL_C_P99_MS for r in result["rows"]) and complete,
             f"p50 {result['all_p50_ms']:.1f} ms, p99 {result['all_p99_ms']:.1f} ms over "
             f"{result['points']:,} points (worst interval p99 "
             f"{max(r['p99_ms'] for r in result['rows']):.1f} ms); every point received: "
             f"{'yes' if complete else 'NO'}")]


def print_d(result: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    from tests.benchmarks._common import fmt, print_table

    r = result
    rows = [["report() calls", fmt(r["calls"]), f"of {r['expected_calls']:,} at "
             f"{r['achieved_rate']:,.0f}/s over {fmt(r['kernel_seconds'], 1)} s"],
            ["rows stored", fmt(r["rows"]), f"of {r['expected_rows']:,} expected"],
            ["distinct steps (loss)", fmt(r["distinct_loss_steps"]),
             f"steps {r['min_step']}..{r['max_step']}"],
            ["via CSV", fmt(r.get("csv_rows")),
             f"{r.get('csv_bytes', 0) / 1e6:.1f} MB in {fmt(r.get('csv_seconds'), 1)} s, "
             f"loop lag meanwhile {fmt(r.get('csv_loop_lag_ms'))} ms" if "csv_rows" in r
             else "not measured"],
            ["delivered over SSE", fmt(r["sse_points"]),
             f"last one {fmt(r['sse_catch_up_s'], 2)} s after the kernel's last report(); "
             f"oldest point age at delivery {fmt(r['sse_max_point_age_s'], 2)} s"
             + ("; the server closed the stream" if r.get("sse_closed_by_server") else "")
             + (f"; client error {r['sse_error']}" if r.get("sse_error") else "")],
            ["SSE clients dropped", fmt(r["dropped_clients"]), ""],
            ["worst loop lag ms", fmt(r["worst_lag_ms"]),
             f"reporting {fmt(r['worst_lag_reporting_ms'])}, catching up after the kernel's "
             f"last report() {fmt(r['worst_lag_catching_up_ms'])}, after reporting (no SSE "
             f"client) {fmt(r['worst_lag_after_reporting_ms'])}, job end "
             f"{fmt(r['worst_lag_ending_ms'])}"],
            ["server CPU % (reporting)", fmt(r["server_cpu_pct_reporting"]),
             f"loop thread waited for a CPU {fmt(r['server_run_wait_pct_reporting'])} % of "
             f"the time"],
            ["load 1m", fmt(r["load_1m"], 2), ""]]
    print_table(["(d)", "value", "detail"], rows,
                title=f"(d) one job reporting {r['requested_rate']:,} report() calls/s x "
                      f"{r['scalars']} scalar(s) for {r['requested_seconds']:g} s "
                      f"(job {r['state']})")
    print("(d) loop lag timeline (s after go/phase/worst ms in the second before): " + ", ".join(
        f"{t:g}/{phase}/{lag:.0f}" for t, phase, lag in r["timeline"]))
    all_stored = (r["calls"] == r["expected_calls"] and r["rows"] == r["expected_rows"]
                  and r["distinct_loss_steps"] == r["calls"]
                  and r.get("csv_rows", r["rows"]) == r["expected_rows"])
    none_dropped = r["dropped_clients"] == 0 and (r["sse_points"] is None
                                                  or r["sse_points"] == r["calls"])
    return [
        ("(d) all stored", all_stored and r["state"] == "succeeded",
         f"{r['rows']:,} rows of {r['expected_rows']:,} ({r['calls']:,} calls at "
         f"{r['achieved_rate']:,.0f}/s; job {r['state']})"),
        ("(d) none dropped", none_dropped,
         f"SSE delivered {fmt(r['sse_points'])} of {r['calls']:,} points, "
         f"{r['dropped_clients']} clients dropped"),
        ("(d) server loop worst lag < 50 ms", r["worst_lag_ms"] < GOAL_D_LAG_MS,
         f"{fmt(r['worst_lag_ms'])} ms (reporting {fmt(r['worst_lag_reporting_ms'])}, catching "
         f"up {fmt(r['worst_lag_catching_up_ms'])}, job end {fmt(r['worst_lag_ending_ms'])}); "
         f"CSV export of the job: "
         f"{fmt(r.get('csv_loop_lag_ms'))} ms (not in the goal)"),
    ]


def print_e(result: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    from tests.benchmarks.jobs_kernel_parts import _print_batch

    _print_batch(result)
    auto, lightning, medians = result["auto"], result["lightning_power"], result["medians"]
    cores = os.cpu_count() or 1
    busy = max(result.get("load_1m_after", 0.0), load1())
    if busy > cores and result["threads"] > 1:
        print(f"note: load average {busy:.1f} on {cores} CPUs: torch's {result['threads']} "
              "threads are oversubscribed and the sweep is noisy (non-monotonic); "
              "--threads 1 gives steadier figures on a shared machine")
    return [
        ("(e) auto_batch_size >= 95 % of the sweep's best (median)",
         result["goals"]["throughput_ge_95pct_of_sweep"],
         f"{100 * medians['auto']['of_sweep_best']:.1f} % over {len(result['runs'])} runs "
         f"(last run: batch {auto['batch_size']}, sweep best "
         f"{result['sweep_best']['batch_size']})"),
        ("(e) decided faster than Lightning's finder (median)",
         result["goals"]["faster_than_lightning"],
         f"{medians['auto']['decision_s']:.2f} s vs "
         + (f"{medians['lightning_power']['decision_s']:.2f} s"
            if medians["lightning_power"]["decision_s"] is not None
            else f"Lightning {lightning.get('status')}")),
    ]


# =============================================================================================
# main
# =============================================================================================


async def server_parts(ctx: Ctx, parts: list[str], results: dict[str, Any]) -> None:
    from tests.benchmarks._common import log

    for part, run in (("b", part_b), ("c", part_c), ("d", part_d)):
        if part not in parts:
            continue
        log(f"part ({part}), load {load1():.2f}")
        try:
            results[part] = await run(ctx)
        except Exception as exc:
            log(f"part ({part}) failed: {type(exc).__name__}: {exc}")
            results[part] = {"error": f"{type(exc).__name__}: {exc}"}
            ctx.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="a,b,c,d,e",
                        help="comma-separated parts to run (default a,b,c,d,e)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller everything: a check that the benchmark works, not figures")
    parser.add_argument("--repeats", type=int, default=None,
                        help="(b) timed rounds (default 5, quick 2)")
    parser.add_argument("--b-seconds", type=float, default=1.0,
                        help="(b) the notebook's sleep, s (default 1)")
    parser.add_argument("--b-timeout", type=float, default=120.0,
                        help="seconds one tiny job or papermill run may take")
    parser.add_argument("--c-seconds", type=float, default=None,
                        help="(c) seconds per report interval (default 6, quick 3)")
    parser.add_argument("--c-intervals", default="100,10,1",
                        help="(c) report intervals, ms (default 100,10,1)")
    parser.add_argument("--d-rate", type=int, default=50_000, help="(d) report() calls/s")
    parser.add_argument("--d-seconds", type=float, default=None,
                        help="(d) seconds of reporting (default 20, quick 5)")
    parser.add_argument("--d-scalars", type=int, default=1,
                        help="(d) metrics per report() call (default 1)")
    parser.add_argument("--no-d-sse", dest="d_sse", action="store_false",
                        help="(d) no SSE client counting the delivered points")
    parser.add_argument("--no-d-csv", dest="d_csv", action="store_false",
                        help="(d) do not count the points through the CSV export")
    parser.add_argument("--report-n", type=int, default=None,
                        help="(a) report() calls timed (default 100,000, quick 20,000)")
    parser.add_argument("--threads", type=int, default=None,
                        help="(e) torch threads (default: torch's; 1 on a busy machine)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra server option, e.g. "
                        "--server-arg=--NotebenchJobService.tick_seconds=0.2")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a goal is missed (default: report only, exit 0)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the server's temp folder (logs, job directories)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in "abcde" or len(p) != 1]
    if unknown or not parts:
        parser.error(f"--parts: letters among a,b,c,d,e (got {args.parts!r})")
    quick = args.quick
    args.repeats = args.repeats or (2 if quick else 5)
    args.c_seconds = args.c_seconds or (3.0 if quick else 6.0)
    args.d_seconds = args.d_seconds or (5.0 if quick else 20.0)
    args.report_n = args.report_n or (20_000 if quick else 100_000)
    if args.repeats < 1 or args.d_rate < 1 or args.d_scalars < 1:
        parser.error("--repeats, --d-rate and --d-scalars must be at least 1")

    from tests.benchmarks._common import log, machine_summary, running_server, sigterm_as_interrupt

    sigterm_as_interrupt()
    started = time.monotonic()
    log(f"machine: {machine_summary()}; parts {','.join(parts)}{' (quick)' if quick else ''}")
    results: dict[str, Any] = {}
    loads: dict[str, float] = {}
    interrupted = False
    try:
        if "a" in parts:
            from tests.benchmarks.jobs_kernel_parts import measure_report_cost

            log(f"part (a), load {load1():.2f}")
            loads["a"] = load1()
            results["a"] = (measure_report_cost(args.report_n, others_n=300, mlflow_n=50,
                                                visibility_s=1.0) if quick
                            else measure_report_cost(args.report_n))
        if {"b", "c", "d"} & set(parts):
            with running_server(args.server_arg, keep_logs=args.keep_logs) as server:
                log(f"server pid {server.proc.pid} on port {server.port} "
                    f"(log {server.log_path})")
                ctx = Ctx(server, args)
                ctx.loop_lag()  # starts the monitor
                try:
                    asyncio.run(server_parts(ctx, parts, results))
                finally:
                    ctx.cleanup()
                if args.keep_logs:
                    log(f"kept {server.root_dir.parent}")
        if "e" in parts:
            from tests.benchmarks.jobs_kernel_parts import measure_auto_batch_size

            log(f"part (e), load {load1():.2f}")
            loads["e"] = load1()
            results["e"] = measure_auto_batch_size(sweep_seconds=0.15 if quick else 0.4,
                                                   threads=args.threads,
                                                   repeats=2 if quick else 5)
            results["e"]["load_1m_after"] = load1()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; cleaned up")
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"args": vars(args), "machine": machine_summary(), "results": results},
                indent=1, default=str))

    print(f"\nnotebench training jobs benchmark; {machine_summary()}; "
          f"{time.monotonic() - started:.0f} s")
    checks: list[tuple[str, bool | None, str]] = []
    printers = {"a": print_a, "b": print_b, "c": print_c, "d": print_d, "e": print_e}
    for part in parts:
        result = results.get(part)
        if result is None:
            continue
        if "error" in result:
            print(f"\n({part}) failed: {result['error']}")
            checks.append((f"({part})", False, f"failed: {result['error']}"))
            continue
        if part in loads:
            print(f"\n({part}) load average (1 min) at its start: {loads[part]:.2f}")
        checks += printers[part](result)
    print("\nGoals (issue): (a) report() median <= 10 µs, p99 <= 50 µs, visible within "
          "100 ms, no background thread; (b) < 10 % over the papermill CLI; (c) p99 < 250 ms; "
          "(d) 50,000 points/s for 20 s all stored, none dropped, loop lag < 50 ms; (e) >= 95 % "
          "of the sweep's best throughput, decided faster than Lightning.")
    from tests.benchmarks._common import report_goals

    return report_goals(checks, interrupted=interrupted, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
