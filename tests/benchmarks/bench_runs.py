"""Benchmark: compare and the multi-run metrics query over 50 runs of 10,000 points each.

The points go straight into the store of a real server's workspace (the server is started
once to create it, stopped, filled through the jobs store module's ``insert_metrics``, the
tailer's path, which also keeps each series' summary and packed arrays), then
``GET lifecycle/jobs/compare?ids=<50 ids>`` and ``GET lifecycle/jobs/metrics?ids=<50 ids>
&max_points=1000`` (bucket objects, the default, and ``&layout=columns``) are timed over
HTTP. Each query gets ``--starts`` freshly started servers: the first call of each is
"cold" (nothing of the runs in memory; the operating system's file cache is warm; the
median over the starts is printed), the next ``--repeat`` calls are "warm" (median and
p90 over all starts). Goal: under 100 ms each. The 1-minute load average is printed (the
machine may be shared).

    .venv/bin/python tests/benchmarks/bench_runs.py [--runs 50] [--points 10000]
                                                    [--starts 3] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from notebench.server.jobs import store as jobstore  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402


def fill(db: Path, runs_dir: Path, runs: int, points: int) -> list[str]:
    """``runs`` succeeded jobs with ``points`` loss points each; their ids."""
    conn = sqlite3.connect(db)
    now = time.time()
    ids = []
    with conn:
        for r in range(runs):
            job_id = f"j-{r:012x}"
            ids.append(job_id)
            lr = 10 ** -(1 + r % 4)
            rows = [(job_id, "loss", i, i, now + i * 0.01,
                     lr * (1 + math.cos(i / 50)) / (1 + i / 1000), None) for i in range(points)]
            jobstore.insert_metrics(conn, rows)
            jobstore.insert_job(conn, {
                "id": job_id, "kind": "papermill", "name": f"run {r}", "state": "succeeded",
                "template": "bench", "notebook_path": "bench.ipynb", "kernel_name": "python3",
                "job_dir": str(runs_dir / job_id), "parameters": {"lr": lr, "seed": r},
                "resolved": {"lr": lr, "seed": r, "epochs": 10}, "created": now + r,
                "started": now + r, "ended": now + r + 60, "updated": now + r + 60,
                "active_seconds": 60.0, "latest_metrics": {"loss": rows[-1][5]},
                "final_metrics": {"loss": rows[-1][5]}})
    conn.close()
    return ids


def timed_get(server: ServerProcess, path: str) -> tuple[float, int, dict]:
    request = urllib.request.Request(f"{server.url}notebench/api/{path}",
                                     headers={"Authorization": f"token {server.token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
    elapsed = time.perf_counter() - start
    return elapsed, len(body), json.loads(body)


def check(label: str, body: dict) -> str:
    """What the answer holds, to see that it is complete."""
    if label == "compare":
        loss = body["jobs"][0]["metrics"]["loss"]
        return (f"{len(body['jobs'])} runs, differing {body['differing']}, loss of the first: "
                f"final {loss['final']:.4g} best {loss['best']:.4g} of {loss['count']} points")
    series = [run["series"][0] for run in body["runs"]]
    buckets = [len(s["columns"]["x"]) if "columns" in s else len(s["buckets"]) for s in series]
    return (f"{len(body['runs'])} runs, {max(buckets)} buckets each, {series[0]['count']} "
            "points each")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--max-points", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15, help="warm calls per server start")
    parser.add_argument("--starts", type=int, default=3,
                        help="server starts per query (cold: the median of their first calls)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds between a server's start and its cold call (the start's "
                        "own background work: imports, the hardware probe, the asset scan)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="notebench-bench-runs-"))
    root = tmp / "root"
    root.mkdir()
    server = ServerProcess(root)
    try:
        server.start(timeout=90)
        workspace = Path(server.request("GET", "info")[1]["workspace"]["path"])
        server.stop()
        start = time.perf_counter()
        ids = fill(workspace / ".notebench" / "state.sqlite", workspace / "artifacts" / "jobs",
                   args.runs, args.points)
        print(f"inserted {args.runs} runs x {args.points} points in "
              f"{time.perf_counter() - start:.1f} s")
        joined = ",".join(ids)
        metrics = (f"lifecycle/jobs/metrics?ids={joined}&names=loss"
                   f"&max_points={args.max_points}")
        queries = {
            "compare": f"lifecycle/jobs/compare?ids={joined}",
            "metrics": metrics,
            "metrics columns": metrics + "&layout=columns",
        }
        print(f"{'query':<16} {'cold ms':>9} {'warm median ms':>15} {'warm p90 ms':>12} "
              f"{'bytes':>10} {'load 1m':>8}  check")
        for label, path in queries.items():
            colds: list[float] = []
            warm: list[float] = []
            for _start in range(args.starts):
                server.start(timeout=90)
                try:
                    time.sleep(args.settle)
                    cold, size, body = timed_get(server, path)
                    colds.append(cold)
                    warm += [timed_get(server, path)[0] for _ in range(args.repeat)]
                finally:
                    server.stop()
            warm.sort()
            print(f"{label:<16} {statistics.median(colds) * 1000:9.1f} "
                  f"{statistics.median(warm) * 1000:15.1f} "
                  f"{warm[int(0.9 * (len(warm) - 1))] * 1000:12.1f} {size:10d} "
                  f"{os.getloadavg()[0]:8.2f}  {check(label, body)}")
    finally:
        try:
            server.stop()
        except Exception:
            server.kill()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
