"""Jobs on a Dask cluster against the local executor: overhead, live latency, throughput, queue.

    python tests/benchmarks/bench_dask.py [--parts a,b,c,d] [--quick] [--repeats N]
                                          [--json PATH] [--strict] [--keep-logs] ...

A Dask cluster on this machine (``tests.dask_cluster.start_cluster``: a scheduler and two
worker processes, ``cpu-worker`` and ``gpu-worker``, one thread each) and two notebench
servers (``tests.server_process.ServerProcess``, test hooks on): one with the local
executor and two CPU slots (``--NotebenchJobService.cpu_slots=2``), one with the
``DaskExecutor`` on that scheduler (two worker threads: two slots too). Every figure is
given as a ratio remote / local, both measured in this run; rounds alternate local and
remote (which goes first changes each round) and medians are quoted. The machine may be
shared: the 1-minute load average is printed with every part.

(a) a 1-second notebook (``bench_jobs``'s tiny notebook, ``b_job_once``): from ``POST
    lifecycle/jobs`` to the terminal ``state`` event on the job's SSE stream, one untimed
    warm-up job per executor ("cold"), then ``--repeats`` rounds, with the phases (POST ->
    launch, kernel start, cells, runner exit -> ended). Goal: remote within 15 % of local.
(b) ``report()`` in the kernel -> SSE client of the job stream (``bench_jobs.part_c``:
    loops reporting every 100, 10 and 1 ms; each point carries the kernel's wall time,
    same clock). A remote job's points travel worker -> forwarder -> ingest route ->
    server-side file -> tailer -> SSE. Goal: remote p99 < 500 ms, every point received.
(c) one job reporting 50,000 points/s for 20 s (``bench_jobs.part_d``): every point stored
    (rows in the store, distinct steps, the CSV export) and delivered to an SSE client.
    Goal (remote): all stored and all delivered. The server loop's worst lag is shown.
(d) 20 one-minute jobs submitted at once to two slots. From the job rows (``created``,
    ``started``, ``ended`` of ``GET lifecycle/jobs``): the time during which fewer than two
    jobs ran while at least one was queued (raw), the gap of each start after the slot it
    takes became free (the first two: after POST), and that idle time minus an allowance
    per start (``--d-allowance``, default 1 s: a slot freed is noticed at the next
    admission). Goal: no idle time beyond the allowance. The makespan ratio remote/local.

The kernels of (b) and (c) wait for a ``go`` file in their working directory; a remote
job's is the worker's job directory (the cluster is on this machine), found through the
workers' local directories. ``--quick`` checks that the benchmark works (fewer rounds, 5 s
instead of 20 s in (c), 4 jobs of 10 s in (d)), not figures. Exit status 0 unless
``--strict`` and a goal is missed. (Progress lines on stderr from ``bench_jobs``' functions
carry that script's part letters: its (c) is (b) here, its (d) is (c).) Every process
started here (servers, scheduler, workers, jobs and their kernels) is ended on the way out,
also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from notebench.jobprotocol import JOB_JSON  # noqa: E402
from notebench.server.jobs.remote_runner import JOBS_FOLDER  # noqa: E402
from tests.benchmarks._common import (  # noqa: E402
    api,
    fmt,
    log,
    machine_summary,
    median,
    print_table,
    report_goals,
    running_server,
    sigterm_as_interrupt,
    wait_until,
)
from tests.benchmarks.bench_jobs import (  # noqa: E402
    TERMINAL,
    TINY_CELLS,
    TINY_PARAMETERS,
    Ctx,
    b_job_once,
    kill_tree,
    load1,
    write_notebook,
)
from tests.benchmarks.bench_jobs import part_c as sse_latency  # noqa: E402
from tests.benchmarks.bench_jobs import part_d as throughput  # noqa: E402

GOAL_A_RATIO = 1.15
GOAL_B_P99_MS = 500.0
SLOTS = 2
EXECUTORS = ("local", "remote")
DASK_EXECUTOR = "notebench.server.jobs.dask_executor.DaskExecutor"
WORKERS: dict[str, tuple[str, ...]] = {"cpu-worker": (), "gpu-worker": ()}

Check = tuple[str, bool | None, str]


class RemoteCtx(Ctx):
    """A ``bench_jobs.Ctx`` for the Dask server: ``go`` lands in the worker's job directory."""

    def __init__(self, server: Any, args: argparse.Namespace, worker_dirs: list[Path]) -> None:
        super().__init__(server, args)
        self.worker_dirs = worker_dirs

    def go(self, job_id: str) -> None:
        # the worker (re)creates the directory, then writes job.json: write after that
        deadline = time.monotonic() + self.args.b_timeout
        while time.monotonic() < deadline:
            for root in self.worker_dirs:
                job_dir = root / JOBS_FOLDER / job_id
                if (job_dir / JOB_JSON).exists():
                    (job_dir / "go").write_text("go")
                    return
            time.sleep(0.02)
        raise RuntimeError(f"job {job_id} got no directory on a worker within "
                           f"{self.args.b_timeout:g} s")


def ratio(remote: float, local: float) -> float:
    return remote / local if local and not math.isnan(local) else math.nan


def pair_order(round_no: int) -> tuple[str, str]:
    return EXECUTORS if round_no % 2 == 0 else EXECUTORS[::-1]


# =============================================================================================
# (a) a 1-second notebook, POST -> success
# =============================================================================================


async def part_a(ctxs: dict[str, Ctx], args: argparse.Namespace) -> dict[str, Any]:
    notebooks = {name: write_notebook(ctx.server.root_dir, "tiny", TINY_CELLS, TINY_PARAMETERS)
                 for name, ctx in ctxs.items()}

    async def once(name: str) -> dict[str, Any]:
        result = await b_job_once(ctxs[name], notebooks[name], args.a_seconds, args.b_timeout)
        result.update(executor=name, load_1m=load1())
        return result

    cold = {}
    for name in EXECUTORS:
        cold[name] = await once(name)
        log(f"(a) cold {name}: {cold[name]['total']:.2f} s, {cold[name]['state']}")
    runs = []
    for repeat in range(args.repeats):
        for name in pair_order(repeat):
            result = await once(name)
            result["repeat"] = repeat
            runs.append(result)
            log(f"(a) round {repeat + 1}/{args.repeats} {name}: {result['total']:.2f} s, "
                f"{result['state']}")
    return {"notebook_seconds": args.a_seconds, "cold": cold, "runs": runs}


def print_a(result: dict[str, Any]) -> list[Check]:
    keys = ("total", "to_launch", "launch_to_papermill", "kernel_start", "cells", "to_exit",
            "exit_to_ended", "ended_to_client", "first_metric", "load_1m")
    runs = result["runs"]
    med = {name: {k: median([r.get(k, math.nan) for r in runs if r["executor"] == name])
                  for k in keys} for name in EXECUTORS}
    rows = [[name, fmt(sum(r["executor"] == name for r in runs)),
             *(fmt(med[name][k], 2) for k in keys[:-1]),
             fmt(result["cold"][name]["total"], 2), fmt(med[name]["load_1m"], 2)]
            for name in EXECUTORS]
    rows.append(["remote/local", "", *(fmt(ratio(med["remote"][k], med["local"][k]), 2)
                                       for k in keys[:-1]),
                 fmt(ratio(result["cold"]["remote"]["total"],
                           result["cold"]["local"]["total"]), 2), ""])
    print_table(["executor", "runs", "POST->success s", "POST->launch", "launch->papermill",
                 "kernel start", "cells", "->exit", "exit->ended", "ended->client",
                 "first metric", "cold s", "load 1m"], rows,
                title=f"(a) a {result['notebook_seconds']:g}-second notebook from POST to the "
                      "terminal state event, medians in s (phases as in bench_jobs (b); "
                      "cold = the untimed warm-up job)")
    total = ratio(med["remote"]["total"], med["local"]["total"])
    succeeded = all(r["state"] == "succeeded" for r in runs)
    return [(f"(a) remote within {100 * (GOAL_A_RATIO - 1):.0f} % of local (POST -> success)",
             total <= GOAL_A_RATIO and succeeded,
             f"remote {med['remote']['total']:.2f} s / local {med['local']['total']:.2f} s = "
             f"{total:.3f}; all succeeded: {'yes' if succeeded else 'NO'}")]


# =============================================================================================
# (b) report() -> SSE client, (c) 50,000 points/s: bench_jobs' parts (c) and (d) per executor
# =============================================================================================


async def rounds_of(run: Callable[[Ctx], Any], label: str, ctxs: dict[str, Ctx],
                    rounds: int) -> dict[str, Any]:
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in EXECUTORS}
    for repeat in range(rounds):
        for name in pair_order(repeat):
            log(f"({label}) round {repeat + 1}/{rounds} {name}, load {load1():.2f}")
            result = await run(ctxs[name])
            result["executor"] = name
            out[name].append(result)
    return {"runs": out}


def print_b(result: dict[str, Any]) -> list[Check]:
    runs = result["runs"]
    med = {name: {k: median([r[k] for r in runs[name]])
                  for k in ("all_p50_ms", "all_p99_ms", "loop_lag_ms", "load_1m")}
           for name in EXECUTORS}
    rows = []
    intervals = [r["interval_ms"] for r in runs["local"][0]["rows"]]
    for name in EXECUTORS:
        for i, interval in enumerate(intervals):
            rows.append([name, f"{interval:g} ms",
                         fmt(median([r["rows"][i]["p50_ms"] for r in runs[name]])),
                         fmt(median([r["rows"][i]["p99_ms"] for r in runs[name]])),
                         fmt(median([r["rows"][i]["to_server_p99_ms"] for r in runs[name]])),
                         fmt(median([r["rows"][i]["to_client_p99_ms"] for r in runs[name]])),
                         fmt(sum(r["rows"][i]["points"] for r in runs[name])),
                         fmt(sum(r["rows"][i]["reported"] or 0 for r in runs[name]))])
        rows.append([name, "all", fmt(med[name]["all_p50_ms"]), fmt(med[name]["all_p99_ms"]),
                     "", "", fmt(sum(r["points"] for r in runs[name])), ""])
    rows.append(["remote/local", "all",
                 fmt(ratio(med["remote"]["all_p50_ms"], med["local"]["all_p50_ms"]), 2),
                 fmt(ratio(med["remote"]["all_p99_ms"], med["local"]["all_p99_ms"]), 2),
                 "", "", "", ""])
    seconds = runs["local"][0]["seconds_per_interval"]
    print_table(["executor", "report every", "p50 ms", "p99 ms", "->server p99",
                 "server->client p99", "received", "reported"], rows,
                title=f"(b) report() in the kernel -> SSE client, medians of "
                      f"{len(runs['local'])} round(s) of {seconds:g} s per interval (->server: "
                      f"to the tailer's read); load 1m local {med['local']['load_1m']:.2f}, "
                      f"remote {med['remote']['load_1m']:.2f}")
    remote = runs["remote"]
    complete = all(row["reported"] == row["points"] for r in remote for row in r["rows"])
    p99 = med["remote"]["all_p99_ms"]
    return [(f"(b) remote report() -> SSE p99 < {GOAL_B_P99_MS:.0f} ms", p99 < GOAL_B_P99_MS
             and complete and all(r["state"] == "succeeded" for r in remote),
             f"remote p99 {p99:.1f} ms, local {med['local']['all_p99_ms']:.1f} ms (ratio "
             f"{ratio(p99, med['local']['all_p99_ms']):.2f}); every point received: "
             f"{'yes' if complete else 'NO'}")]


def _stored_and_delivered(r: dict[str, Any]) -> tuple[bool, bool]:
    stored = (r["state"] == "succeeded" and r["calls"] == r["expected_calls"]
              and r["rows"] == r["expected_rows"] and r["distinct_loss_steps"] == r["calls"]
              and r.get("csv_rows", r["rows"]) == r["expected_rows"])
    delivered = r["dropped_clients"] == 0 and r["sse_points"] == r["calls"]
    return stored, delivered


def print_c(result: dict[str, Any]) -> list[Check]:
    runs = result["runs"]
    keys = (("achieved_rate", "report() calls/s", 0), ("rows", "rows stored", 0),
            ("sse_points", "delivered over SSE", 0),
            ("sse_catch_up_s", "last point delivered after the kernel's last call s", 2),
            ("sse_max_point_age_s", "oldest point's age at delivery s", 2),
            ("worst_lag_ms", "server loop worst lag ms", 0),
            ("server_cpu_pct_reporting", "server CPU % while reporting", 0),
            ("csv_seconds", "CSV export s", 1), ("load_1m", "load 1m", 2))
    med = {name: {k: median([float(r.get(k) if r.get(k) is not None else math.nan)
                             for r in runs[name]]) for k, _, _ in keys}
           for name in EXECUTORS}
    rows = [[label, fmt(med["local"][k], d), fmt(med["remote"][k], d),
             fmt(ratio(med["remote"][k], med["local"][k]), 2)] for k, label, d in keys]
    first = runs["local"][0]
    print_table(["(c)", "local", "remote", "remote/local"], rows,
                title=f"(c) one job reporting {first['requested_rate']:,} report() calls/s for "
                      f"{first['requested_seconds']:g} s, medians of {len(runs['local'])} "
                      f"round(s); expected {first['expected_rows']:,} rows")
    checks: list[Check] = []
    for name in EXECUTORS:
        stored = [_stored_and_delivered(r) for r in runs[name]]
        ok = all(s and d for s, d in stored)
        detail = "; ".join(
            f"{r['rows']:,}/{r['expected_rows']:,} rows, SSE {fmt(r['sse_points'])}/"
            f"{r['calls']:,}, CSV {fmt(r.get('csv_rows'))}, job {r['state']}"
            for r in runs[name])
        checks.append((f"(c) {name}: all stored and delivered", ok if name == "remote" else None,
                       detail))
    return checks


# =============================================================================================
# (d) N one-minute jobs on two slots: the queue never idle while a slot is free
# =============================================================================================


def list_jobs(server: Any, name: str) -> list[dict[str, Any]]:
    status, body = api(server, "GET", f"lifecycle/jobs?q={name}&limit=500&sort=created")
    if status != 200:
        raise RuntimeError(f"GET lifecycle/jobs: {status} {body}")
    jobs = body["jobs"] if isinstance(body, dict) else body
    return [j for j in jobs if j.get("name") == name]


def queue_figures(jobs: list[dict[str, Any]], slots: int, allowance: float) -> dict[str, Any]:
    """Idle slot time while jobs waited, start gaps and makespan from the job rows."""
    rows = sorted((float(j["created"]), float(j["started"]), float(j["ended"])) for j in jobs)
    points = sorted({t for row in rows for t in row})
    idle = 0.0
    for t0, t1 in itertools.pairwise(points):
        mid = (t0 + t1) / 2
        running = sum(s <= mid < e for _, s, e in rows)
        queued = sum(c <= mid < s for c, s, _ in rows)
        if running < slots and queued:
            idle += t1 - t0
    starts = sorted(s for _, s, _ in rows)
    ends = sorted(e for _, _, e in rows)
    # the first `slots` starts take empty slots (gap after POST); each later one takes the
    # slot the k-th end freed
    first = [s - c for c, s, _ in sorted(rows, key=lambda r: r[1])[:slots]]
    gaps = [s - e for s, e in zip(starts[slots:], ends, strict=False)]
    durations = [e - s for _, s, e in rows]
    makespan = max(ends) - min(c for c, _, _ in rows)
    return {"jobs": len(rows), "idle_raw_s": idle, "transitions": len(rows),
            "allowance_s": allowance, "idle_beyond_allowance_s": idle - allowance * len(rows),
            "first_start_s": first, "gaps_s": gaps, "gap_median_s": median(gaps),
            "gap_max_s": max(gaps, default=math.nan), "makespan_s": makespan,
            "job_median_s": median(durations),
            "ideal_makespan_s": sum(durations) / slots}


async def queue_round(ctx: Ctx, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    notebook = write_notebook(ctx.server.root_dir, "tiny", TINY_CELLS, TINY_PARAMETERS)
    name = f"bench-d-{tag}"
    load_before = load1()
    for _ in range(args.d_jobs):
        await asyncio.to_thread(ctx.submit, notebook, {"seconds": args.d_seconds}, name)
    timeout = (args.d_jobs / SLOTS + 1) * (args.d_seconds + args.b_timeout)
    deadline = time.monotonic() + timeout
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        jobs = await asyncio.to_thread(list_jobs, ctx.server, name)
        if len(jobs) == args.d_jobs and all(j["state"] in TERMINAL for j in jobs):
            break
    else:
        raise RuntimeError(f"{args.d_jobs} jobs did not end within {timeout:.0f} s")
    ctx.ended.update(j["id"] for j in jobs)
    result = queue_figures(jobs, SLOTS, args.d_allowance)
    result.update(states=sorted({j["state"] for j in jobs}),
                  succeeded=all(j["state"] == "succeeded" for j in jobs),
                  job_seconds=args.d_seconds, load_1m=(load_before + load1()) / 2)
    return result


def print_d(result: dict[str, Any]) -> list[Check]:
    runs = result["runs"]
    keys = (("makespan_s", "makespan s", 1), ("ideal_makespan_s", "sum of job times / 2 s", 1),
            ("idle_raw_s", "idle slot while queued (raw) s", 2),
            ("idle_beyond_allowance_s", "idle beyond allowance s", 2),
            ("gap_median_s", "start after a slot freed, median s", 2),
            ("gap_max_s", "start after a slot freed, max s", 2),
            ("job_median_s", "job (started -> ended) median s", 2), ("load_1m", "load 1m", 2))
    med = {name: {k: median([r[k] for r in runs[name]]) for k, _, _ in keys}
           for name in EXECUTORS}
    rows = [[label, fmt(med["local"][k], d), fmt(med["remote"][k], d),
             fmt(ratio(med["remote"][k], med["local"][k]), 2)] for k, label, d in keys]
    first = runs["local"][0]
    print_table(["(d)", "local", "remote", "remote/local"], rows,
                title=f"(d) {first['jobs']} jobs of {first['job_seconds']:g} s submitted at "
                      f"once to {SLOTS} slots, medians of {len(runs['local'])} round(s); "
                      f"allowance {first['allowance_s']:g} s per start")
    for name in EXECUTORS:
        r = runs[name][-1]
        print(f"(d) {name}: first starts after POST "
              + ", ".join(f"{x:.2f}" for x in r["first_start_s"]) + " s; gaps "
              + ", ".join(f"{x:.2f}" for x in r["gaps_s"]) + f" s; states {r['states']}")
    checks: list[Check] = []
    for name in EXECUTORS:
        ok = all(r["idle_beyond_allowance_s"] <= 0 and r["succeeded"] for r in runs[name])
        checks.append((f"(d) {name}: queue never idle while a slot is free (beyond "
                       f"{first['allowance_s']:g} s per start)", ok,
                       f"idle raw {med[name]['idle_raw_s']:.2f} s over {first['jobs']} starts, "
                       f"gap median {med[name]['gap_median_s']:.2f} s, max "
                       f"{med[name]['gap_max_s']:.2f} s; all succeeded: "
                       f"{'yes' if all(r['succeeded'] for r in runs[name]) else 'NO'}"))
    checks.append(("(d) makespan remote/local", None,
                   f"{med['remote']['makespan_s']:.1f} s / {med['local']['makespan_s']:.1f} s "
                   f"= {ratio(med['remote']['makespan_s'], med['local']['makespan_s']):.3f}"))
    return checks


# =============================================================================================
# main
# =============================================================================================


def jobs_args(args: argparse.Namespace) -> argparse.Namespace:
    """The options ``bench_jobs``' parts read from ``ctx.args``."""
    return argparse.Namespace(
        b_timeout=args.b_timeout, c_seconds=args.b_seconds, c_intervals=args.b_intervals,
        d_rate=args.c_rate, d_seconds=args.c_seconds, d_scalars=1, d_sse=True,
        d_csv=True)


async def run_parts(ctxs: dict[str, Ctx], args: argparse.Namespace, parts: list[str],
                    results: dict[str, Any], loads: dict[str, float]) -> None:
    for part in parts:
        loads[part] = load1()
        log(f"part ({part}), load {loads[part]:.2f}")
        try:
            if part == "a":
                results[part] = await part_a(ctxs, args)
            elif part == "b":
                results[part] = await rounds_of(sse_latency, part, ctxs, args.rounds)
            elif part == "c":
                results[part] = await rounds_of(throughput, part, ctxs, args.rounds)
            else:
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name in EXECUTORS}
                for repeat in range(args.d_rounds):
                    for name in pair_order(repeat):
                        log(f"(d) round {repeat + 1}/{args.d_rounds} {name}: {args.d_jobs} "
                            f"jobs of {args.d_seconds:g} s, load {load1():.2f}")
                        runs[name].append(await queue_round(ctxs[name], args, f"{name}-{repeat}"))
                        r = runs[name][-1]
                        log(f"(d) {name}: makespan {r['makespan_s']:.1f} s, idle raw "
                            f"{r['idle_raw_s']:.2f} s, gap median {r['gap_median_s']:.2f} s")
                results[part] = {"runs": runs}
        except Exception as exc:
            log(f"part ({part}) failed: {type(exc).__name__}: {exc}")
            results[part] = {"error": f"{type(exc).__name__}: {exc}"}
            for ctx in ctxs.values():
                ctx.cleanup()


def worker_directories(address: str) -> list[Path]:
    """The workers' local directories (a remote job's directory lies under one)."""
    from distributed import Client

    with Client(address, timeout="30s", set_as_default=False) as client:
        dirs = client.run(lambda dask_worker: dask_worker.local_directory)
    return [Path(d) for d in dirs.values()]


def wait_for_cluster(server: Any, workers: int, timeout: float) -> None:
    def joined() -> bool:
        status, body = api(server, "GET", "lifecycle/cluster")
        return status == 200 and len(body.get("workers") or []) >= workers

    if not wait_until(joined, timeout, 0.5):
        raise RuntimeError(f"the Dask server does not see {workers} workers: "
                           f"{api(server, 'GET', 'lifecycle/cluster')}")


def end_cluster(cluster: Any) -> None:
    """Kill each worker with what it started (runners and kernels), then the scheduler."""
    for process in cluster.workers.values():
        kill_tree(process.pid)
        with contextlib.suppress(Exception):
            process.wait(10)
    cluster.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="a,b,c,d",
                        help="comma-separated parts to run (default a,b,c,d)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller everything: a check that the benchmark works, not figures")
    parser.add_argument("--repeats", type=int, default=None,
                        help="(a) timed rounds (default 5, quick 3)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="(b), (c) rounds per executor (default 3, quick 1)")
    parser.add_argument("--a-seconds", type=float, default=1.0,
                        help="(a) the notebook's sleep, s (default 1)")
    parser.add_argument("--b-seconds", type=float, default=None,
                        help="(b) seconds per report interval (default 6, quick 3)")
    parser.add_argument("--b-intervals", default="100,10,1",
                        help="(b) report intervals, ms (default 100,10,1)")
    parser.add_argument("--c-rate", type=int, default=50_000, help="(c) report() calls/s")
    parser.add_argument("--c-seconds", type=float, default=None,
                        help="(c) seconds of reporting (default 20, quick 5)")
    parser.add_argument("--d-jobs", type=int, default=None,
                        help="(d) jobs submitted at once (default 20, quick 4)")
    parser.add_argument("--d-seconds", type=float, default=None,
                        help="(d) each job's sleep, s (default 60, quick 10)")
    parser.add_argument("--d-rounds", type=int, default=1,
                        help="(d) rounds per executor (default 1)")
    parser.add_argument("--d-allowance", type=float, default=1.0,
                        help="(d) idle seconds allowed per start (default 1)")
    parser.add_argument("--b-timeout", type=float, default=120.0,
                        help="seconds a job may take to start or a tiny job to end")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra option for both servers")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a goal is missed (default: report only, exit 0)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the temp folders (server and worker logs, job directories)")
    args = parser.parse_args(argv)
    args.parts_list = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not args.parts_list or any(p not in ("a", "b", "c", "d") for p in args.parts_list):
        parser.error(f"--parts: letters among a,b,c,d (got {args.parts!r})")
    quick = args.quick
    args.repeats = args.repeats or (3 if quick else 5)
    args.rounds = args.rounds or (1 if quick else 3)
    args.b_seconds = args.b_seconds or (3.0 if quick else 6.0)
    args.c_seconds = args.c_seconds or (5.0 if quick else 20.0)
    args.d_jobs = args.d_jobs or (4 if quick else 20)
    args.d_seconds = args.d_seconds or (10.0 if quick else 60.0)
    if min(args.repeats, args.rounds, args.d_rounds, args.d_jobs, args.c_rate) < 1:
        parser.error("--repeats, --rounds, --d-rounds, --d-jobs and --c-rate must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parts = args.parts_list
    sigterm_as_interrupt()
    started = time.monotonic()
    log(f"machine: {machine_summary()}; parts {','.join(parts)}"
        f"{' (quick)' if args.quick else ''}")
    results: dict[str, Any] = {}
    loads: dict[str, float] = {}
    interrupted = False
    cluster_root = Path(tempfile.mkdtemp(prefix="notebench-bench-dask-"))
    try:
        with contextlib.ExitStack() as stack:
            from tests.dask_cluster import start_cluster

            cluster = start_cluster(cluster_root, WORKERS)
            stack.callback(end_cluster, cluster)
            log(f"Dask scheduler {cluster.address}, workers {', '.join(WORKERS)}")
            local = stack.enter_context(running_server(
                [f"--NotebenchJobService.cpu_slots={SLOTS}", *args.server_arg],
                keep_logs=args.keep_logs))
            remote = stack.enter_context(running_server(
                [f"--NotebenchJobService.executor_class={DASK_EXECUTOR}",
                 f"--NotebenchDaskCluster.scheduler_address={cluster.address}",
                 *args.server_arg], keep_logs=args.keep_logs))
            wait_for_cluster(remote, len(WORKERS), 60)
            log(f"servers: local pid {local.proc.pid} port {local.port}, remote (Dask) pid "
                f"{remote.proc.pid} port {remote.port}")
            shared = jobs_args(args)
            ctxs: dict[str, Ctx] = {
                "local": Ctx(local, shared),
                "remote": RemoteCtx(remote, shared, worker_directories(cluster.address))}
            for ctx in ctxs.values():
                stack.callback(ctx.cleanup)
                ctx.loop_lag()  # starts the monitor
            asyncio.run(run_parts(ctxs, args, parts, results, loads))
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; cleaned up")
    finally:
        if args.keep_logs:
            log(f"kept {cluster_root}")
        else:
            shutil.rmtree(cluster_root, ignore_errors=True)
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"args": vars(args), "machine": machine_summary(), "results": results},
                indent=1, default=str))

    print(f"\nnotebench jobs on a Dask cluster (2 workers x 1 thread) against the local "
          f"executor (2 slots); {machine_summary()}; {time.monotonic() - started:.0f} s")
    checks: list[Check] = []
    printers = {"a": print_a, "b": print_b, "c": print_c, "d": print_d}
    for part in parts:
        result = results.get(part)
        if result is None:
            continue
        if "error" in result:
            print(f"\n({part}) failed: {result['error']}")
            checks.append((f"({part})", False, f"failed: {result['error']}"))
            continue
        print(f"\n({part}) load average (1 min) at its start: {loads[part]:.2f}")
        checks += printers[part](result)
    print(f"\nGoals (issue): (a) remote POST -> success within 15 % of local; (b) remote "
          f"report() -> SSE p99 < 500 ms; (c) 50,000 points/s for 20 s from a remote job, all "
          f"stored and delivered; (d) {SLOTS} workers, the queue never idle while a slot is "
          "free.")
    return report_goals(checks, interrupted=interrupted, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
