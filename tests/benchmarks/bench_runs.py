"""Benchmark: compare and the multi-run metrics query over 50 runs of 10,000 points each.

The points go straight into the store of a real server's workspace (the server is started
once to create it, stopped, filled through the jobs store module, and started again), then
``GET lifecycle/jobs/compare?ids=<50 ids>`` and ``GET lifecycle/jobs/metrics?ids=<50 ids>
&max_points=1000`` are timed over HTTP. The first call of each reads the points from SQLite
into the series cache (cold); the next ones only check for new points (warm). Goal: under
100 ms each (warm).

    .venv/bin/python tests/benchmarks/bench_runs.py [--runs 50] [--points 10000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import math
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--max-points", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
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
        server.start(timeout=90)
        joined = ",".join(ids)
        queries = {
            "compare": f"lifecycle/jobs/compare?ids={joined}",
            "metrics": f"lifecycle/jobs/metrics?ids={joined}&names=loss"
                       f"&max_points={args.max_points}",
        }
        print(f"{'query':<10} {'cold ms':>9} {'warm median ms':>15} {'warm p90 ms':>12} "
              f"{'bytes':>10}  check")
        for label, path in queries.items():
            cold, size, body = timed_get(server, path)
            warm = sorted(timed_get(server, path)[0] for _ in range(args.repeat))
            if label == "compare":
                check = (f"{len(body['jobs'])} runs, differing {body['differing']}")
            else:
                buckets = [len(run["series"][0]["buckets"]) for run in body["runs"]]
                check = (f"{len(body['runs'])} runs, {max(buckets)} buckets each, "
                         f"{body['runs'][0]['series'][0]['count']} points each")
            print(f"{label:<10} {cold * 1000:9.1f} {statistics.median(warm) * 1000:15.1f} "
                  f"{warm[int(0.9 * (len(warm) - 1))] * 1000:12.1f} {size:10d}  {check}")
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
