"""Monitoring benchmark: notebench's stream side by side with jupyter-resource-usage.

    python tests/benchmarks/bench_monitoring.py [--seconds 20] [--clients 1,20]
        [--kernels 3] [--probe-ms 50] [--history-queries 20] [--json PATH]

Three server subprocesses on the same machine, one after the other, each with
``--kernels`` idle kernels (started over the REST API):

- **plain**: jupyter_server with neither notebench nor jupyter-resource-usage (the
  reference for request latency);
- **notebench**: notebench only (``jupyter_resource_usage`` disabled explicitly: it enables
  itself in every server of its environment); clients follow the metrics on
  ``notebench/api/monitoring/stream?topics=monitoring`` (one sample a second, pushed);
- **jupyter-resource-usage**: jupyter-resource-usage only, CPU tracking on
  (``--ResourceUseDisplay.track_cpu_percent=True``); clients poll ``/api/metrics/v1`` once a
  second, as its frontend does. Skipped (and said so) when the package is not importable:
  the test venv must not have it; ``make bench`` builds ``.venv-bench`` with it.

Measured per server: its CPU share (user + system over wall, % of one core, the server
process only) idle and with each client count following the metrics for ``--seconds``;
then, with the largest client count following, the latency of ``GET /api/status``
probed every ``--probe-ms`` ms (p50, p99). For notebench also: the sampler's own CPU per
sample (thread CPU time, from ``GET monitoring/stats``), and a 24 h history query reduced
to 1,000 points: the server is stopped, 24 h of 10 s buckets are written into its store for
every series it persisted, and after a restart ``GET monitoring/metrics?names=...&since=
-86400&max_points=1000`` is timed (``--history-queries`` times, client side, HTTP
included).

Goals (the issue): notebench's stream < 1 % of a core with 1 and with 20 clients, the cost
not growing with clients; notebench adds < 5 ms to the p99 of ``/api/status`` (against
plain); the 24 h history query < 50 ms. Measured for jupyter-resource-usage when the issue
was written: 2 % and 23 % of a core, about 190 ms p99 against 3.6 ms median.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import math
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.benchmarks._common import (  # noqa: E402
    CpuMeter,
    fmt,
    log,
    machine_summary,
    percentile,
    print_table,
    sigterm_as_interrupt,
)
from tests.server_process import ServerProcess  # noqa: E402

JRU = "jupyter_resource_usage"
GOAL_STREAM_CPU_PCT = 1.0
GOAL_ADDED_P99_MS = 5.0
GOAL_HISTORY_MS = 50.0


# -- servers ------------------------------------------------------------------------------------


class BenchServer(ServerProcess):
    """A server subprocess ready when ``/api/status`` answers (notebench may be off)."""

    def start(self, timeout: float = 90) -> BenchServer:
        import subprocess

        command = [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
            f"--port={self.port}", "--ServerApp.port_retries=0", "--ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
            f"--ServerApp.base_url={self.base_url}", *self.extra,
        ]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                status, _ = get_json(self, "api/status", timeout=2)
                if status == 200:
                    return self
            time.sleep(0.2)
        raise TimeoutError(f"server did not start: {self.log_path.read_text()[-3000:]}")


def get_json(server: ServerProcess, path: str, timeout: float = 30,
             method: str = "GET", body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, f"{server.base_url}{path}", body=data,
                     headers={"Authorization": f"token {server.token}"})
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw or b"null")
        except ValueError:
            return response.status, raw
    finally:
        conn.close()


@contextlib.contextmanager
def server(kind: str, root: Path, extra: list[str]) -> Iterator[BenchServer]:
    proc = BenchServer(root, extra=extra)
    log(f"{kind}: starting")
    proc.start()
    try:
        yield proc
    finally:
        with contextlib.suppress(Exception):
            proc.stop()
        with contextlib.suppress(Exception):
            proc.kill()


def start_kernels(srv: ServerProcess, count: int) -> None:
    for _ in range(count):
        status, body = get_json(srv, "api/kernels", method="POST", body={"name": "python3"},
                                timeout=120)
        if status not in (200, 201):
            raise RuntimeError(f"starting a kernel failed: {status} {body}")
    # kernels settle before anything is measured (without a client connected the server
    # may keep reporting "starting": wait for idle at most 20 s, then a little more)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, kernels = get_json(srv, "api/kernels")
        if isinstance(kernels, list) and all(k.get("execution_state") == "idle"
                                             for k in kernels):
            break
        time.sleep(0.5)
    time.sleep(3)


# -- clients ------------------------------------------------------------------------------------


class Followers:
    """``count`` clients following the metrics (threads: SSE readers or 1 Hz pollers)."""

    def __init__(self, srv: ServerProcess, count: int, mode: str) -> None:
        self.srv = srv
        self.count = count
        self.mode = mode
        self.updates = [0] * count
        self.errors = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []

    def __enter__(self) -> Followers:
        target = self._follow_stream if self.mode == "stream" else self._poll
        for index in range(self.count):
            thread = threading.Thread(target=target, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        time.sleep(2)  # connected and past the first update
        self.updates = [0] * self.count
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)

    def _follow_stream(self, index: int) -> None:
        srv = self.srv
        try:
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        except OSError:
            self.errors += 1
            return
        self._socks.append(sock)
        request = (f"GET {srv.base_url}notebench/api/monitoring/stream?topics=monitoring "
                   f"HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAccept: text/event-stream\r\n"
                   f"Authorization: token {srv.token}\r\n\r\n")
        sock.sendall(request.encode())
        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            self.updates[index] += data.count(b"event: sample")
        sock.close()

    def _poll(self, index: int) -> None:
        srv = self.srv
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        headers = {"Authorization": f"token {srv.token}"}
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                conn.request("GET", f"{srv.base_url}api/metrics/v1", headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    self.updates[index] += 1
                else:
                    self.errors += 1
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            due += 1.0
            self._stop.wait(max(0.0, due - time.monotonic()))
        conn.close()

    def rate(self, seconds: float) -> float:
        """Updates per second per client."""
        return sum(self.updates) / self.count / seconds if self.count and seconds else 0.0


def probe_status(srv: ServerProcess, seconds: float, every_ms: float) -> list[float]:
    """Latencies (ms) of ``GET /api/status`` every ``every_ms`` for ``seconds``."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    headers = {"Authorization": f"token {srv.token}"}
    out: list[float] = []
    due = time.monotonic()
    end = due + seconds
    while due < end:
        started = time.perf_counter()
        try:
            conn.request("GET", f"{srv.base_url}api/status", headers=headers)
            conn.getresponse().read()
            out.append((time.perf_counter() - started) * 1000.0)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        due += every_ms / 1000.0
        time.sleep(max(0.0, due - time.monotonic()))
    conn.close()
    return out


def cpu_window(srv: ServerProcess, seconds: float) -> float:
    meter = CpuMeter(srv.proc.pid).start()  # type: ignore[union-attr]
    time.sleep(seconds)
    return meter.stop()


# -- one server ---------------------------------------------------------------------------------


def measure(kind: str, srv: ServerProcess, args: argparse.Namespace,
            mode: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"server": kind, "cpu": {}, "rate": {}}
    start_kernels(srv, args.kernels)
    log(f"{kind}: {args.kernels} idle kernels; idle window")
    result["cpu"]["idle"] = cpu_window(srv, args.seconds)
    top = max(args.client_counts)
    if mode is not None:
        for count in args.client_counts:
            log(f"{kind}: {count} clients following the metrics")
            with Followers(srv, count, mode) as followers:
                result["cpu"][count] = cpu_window(srv, args.seconds)
                result["rate"][count] = followers.rate(args.seconds)
                result.setdefault("client_errors", 0)
                result["client_errors"] += followers.errors
    log(f"{kind}: probing /api/status every {args.probe_ms:g} ms"
        + (f" with {top} clients following" if mode else ""))
    if mode is not None:
        with Followers(srv, top, mode):
            latencies = probe_status(srv, args.seconds, args.probe_ms)
    else:
        latencies = probe_status(srv, args.seconds, args.probe_ms)
    result["status_ms"] = {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                           "max": max(latencies, default=math.nan), "count": len(latencies)}
    return result


def sampler_cost(srv: ServerProcess) -> dict[str, Any]:
    status, stats = get_json(srv, "notebench/api/monitoring/stats")
    if status != 200:
        return {}
    sampler = stats["sampler"]
    return {"samples": sampler.get("samples"),
            "cpu_ms_mean": (sampler.get("cpu_ms_per_sample") or {}).get("mean"),
            "cpu_ms_max": (sampler.get("cpu_ms_per_sample") or {}).get("max"),
            "wall_ms_last": sampler.get("wall_ms_last")}


def fill_history(store_path: Path, hours: float, bucket: float = 10.0,
                 rollup: float = 60.0) -> tuple[int, int]:
    """Write ``hours`` of buckets (10 s and their 1 min rollups) for every persisted series
    (the server is stopped), as the server writes them."""
    conn = sqlite3.connect(store_path, timeout=30)
    try:
        series = [r[0] for r in conn.execute("SELECT id FROM monitoring_series")]
        end = math.floor(time.time() / rollup) * rollup
        start = end - hours * 3600
        count = int((end - start) / bucket)
        per_rollup = int(rollup / bucket)
        for series_id in series:
            rows = []
            for i in range(count):
                t = start + i * bucket
                value = 50 + 40 * math.sin(i / 500.0) + (i % 7)
                rows.append((series_id, bucket, t, 10, value - 5, value + 5, value, value))
            for j in range(0, count, per_rollup):  # the one-minute rollups of those buckets
                part = rows[j:j + per_rollup]
                n = sum(r[3] for r in part)
                rows.append((series_id, rollup, part[0][2], n, min(r[4] for r in part),
                             max(r[5] for r in part),
                             sum(r[6] * r[3] for r in part) / n, part[-1][7]))
            conn.executemany("INSERT OR REPLACE INTO monitoring_history "
                             "(series, width, t, n, min, max, mean, last) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
        return len(series), count
    finally:
        conn.close()


def time_history(srv: ServerProcess, names: str, repeats: int) -> dict[str, Any]:
    path = (f"notebench/api/monitoring/metrics?names={names}&since=-86400&max_points=1000")
    times, points = [], 0
    get_json(srv, path)  # warm the readers' connections
    for _ in range(repeats):
        started = time.perf_counter()
        status, body = get_json(srv, path)
        times.append((time.perf_counter() - started) * 1000.0)
        if status != 200:
            raise RuntimeError(f"history query failed: {status} {body}")
        points = max((len(s["t"]) for s in body["series"]), default=0)
        series = len(body["series"])
    return {"p50": percentile(times, 50), "p95": percentile(times, 95), "points": points,
            "series": series}


def notebench_history(root: Path, extra: list[str], args: argparse.Namespace) -> dict[str, Any]:
    store = root / "notebench" / ".notebench" / "state.sqlite"
    count, buckets = fill_history(store, 24)
    log(f"notebench: wrote 24 h of 10 s buckets for {count} series ({buckets} each); "
        "restarting")
    with server("notebench (history)", root, extra) as srv:
        deadline = time.monotonic() + 60
        while sampler_cost(srv).get("samples", 0) in (0, None):
            if time.monotonic() > deadline:
                raise RuntimeError("the restarted server never sampled")
            time.sleep(0.3)
        return {"one": time_history(srv, "cpu_percent", args.history_queries),
                "four": time_history(srv, "memory_*", args.history_queries)}


# -- report -------------------------------------------------------------------------------------


def report(results: list[dict[str, Any]], cost: dict[str, Any], history: dict[str, Any] | None,
           args: argparse.Namespace, jru_available: bool) -> None:
    counts = args.client_counts
    headers = ["server", "idle CPU %", *[f"{c} client{'s' if c > 1 else ''} CPU %"
                                         for c in counts],
               *[f"upd/s ({c})" for c in counts], "status p50 ms",
               f"status p99 ms ({max(counts)} clients)"]
    rows = []
    for r in results:
        rows.append([r["server"], fmt(r["cpu"]["idle"], 2),
                     *[fmt(r["cpu"].get(c), 2) for c in counts],
                     *[fmt(r["rate"].get(c), 2) for c in counts],
                     fmt(r["status_ms"]["p50"], 2), fmt(r["status_ms"]["p99"], 2)])
    print(f"\nmachine: {machine_summary()}; {args.kernels} idle kernels per server; windows of "
          f"{args.seconds:g} s; /api/status every {args.probe_ms:g} ms")
    print_table(headers, rows, title="server CPU (% of one core, server process) and "
                "request latency")
    if not jru_available:
        print(f"\n{JRU} is not importable here: measured notebench alone (run `make bench`: "
              ".venv-bench has it)")
    by = {r["server"]: r for r in results}
    nb = by.get("notebench")
    plain = by.get("plain")
    print("\nnotebench:")
    if cost:
        print(f"  sampler CPU per sample: mean {fmt(cost.get('cpu_ms_mean'), 3)} ms, "
              f"max {fmt(cost.get('cpu_ms_max'), 3)} ms (thread CPU time, "
              f"{cost.get('samples')} samples; last wall {fmt(cost.get('wall_ms_last'), 3)} ms)")
    if history:
        for label, key in (("1 series", "one"), ("4 series", "four")):
            h = history[key]
            print(f"  24 h history -> {h['points']} points, {label}: p50 {fmt(h['p50'], 1)} ms, "
                  f"p95 {fmt(h['p95'], 1)} ms ({args.history_queries} queries)")
    if nb is not None:
        idle = nb["cpu"]["idle"]
        stream = {c: nb["cpu"][c] - idle for c in counts if c in nb["cpu"]}
        print("  stream cost over idle: " + ", ".join(
            f"{c} client{'s' if c > 1 else ''} {v:+.2f} %" for c, v in stream.items()))
        goals = []
        goals.append(("server CPU < 1 % of a core with each client count",
                      all(nb["cpu"][c] < GOAL_STREAM_CPU_PCT for c in counts)))
        if len(counts) > 1:
            growth = nb["cpu"][max(counts)] - nb["cpu"][min(counts)]
            goals.append((f"cost not growing with clients ({growth:+.2f} % from "
                          f"{min(counts)} to {max(counts)})", growth < 0.5))
        if plain is not None:
            added = nb["status_ms"]["p99"] - plain["status_ms"]["p99"]
            goals.append((f"/api/status p99 added vs plain: {added:+.2f} ms (< "
                          f"{GOAL_ADDED_P99_MS:g} ms)", added < GOAL_ADDED_P99_MS))
        if history:
            goals.append((f"24 h history query p50 {history['one']['p50']:.1f} ms (< "
                          f"{GOAL_HISTORY_MS:g} ms)", history["one"]["p50"] < GOAL_HISTORY_MS))
        print("goals:")
        for text, met in goals:
            print(f"  [{'met' if met else 'MISSED'}] {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="window length, s")
    parser.add_argument("--clients", default="1,20", help="client counts (default 1,20)")
    parser.add_argument("--kernels", type=int, default=3, help="idle kernels per server")
    parser.add_argument("--probe-ms", type=float, default=50.0)
    parser.add_argument("--history-queries", type=int, default=20)
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--skip-history", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    args = parser.parse_args(argv)
    args.client_counts = sorted({int(c) for c in args.clients.split(",") if c.strip()})
    sigterm_as_interrupt()
    jru_available = importlib.util.find_spec(JRU) is not None
    log(f"machine: {machine_summary()}; {JRU} {'available' if jru_available else 'NOT available'}")
    tmp = Path(tempfile.mkdtemp(prefix="notebench-bench-monitoring-"))
    results: list[dict[str, Any]] = []
    cost: dict[str, Any] = {}
    history = None
    off = f"'{JRU}': False"
    try:
        if not args.skip_plain:
            root = tmp / "plain" / "root"
            root.mkdir(parents=True)
            extra = [f"--ServerApp.jpserver_extensions={{'notebench.server': False, {off}}}"]
            with server("plain", root, extra) as srv:
                results.append(measure("plain", srv, args, None))
        root = tmp / "notebench" / "root"
        root.mkdir(parents=True)
        nb_extra = [f"--ServerApp.jpserver_extensions={{'notebench.server': True, {off}}}",
                    "--NotebenchMonitoringService.interval=1"]
        with server("notebench", root, nb_extra) as srv:
            results.append(measure("notebench", srv, args, "stream"))
            cost = sampler_cost(srv)
        if not args.skip_history:
            history = notebench_history(root, nb_extra, args)
        if jru_available:
            root = tmp / "jru" / "root"
            root.mkdir(parents=True)
            extra = [f"--ServerApp.jpserver_extensions={{'notebench.server': False, "
                     f"'{JRU}': True}}", "--ResourceUseDisplay.track_cpu_percent=True"]
            with server("jupyter-resource-usage", root, extra) as srv:
                results.append(measure("jupyter-resource-usage", srv, args, "poll"))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, cost, history, args, jru_available)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "sampler": cost,
                                               "history": history}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
