"""The monitoring parts on their own (no server): rules, engine, series, history, sampler."""

from __future__ import annotations

import asyncio
import os
import time

import psutil
import pytest

from notebench.server.clock import ManualClock
from notebench.server.monitoring.alerts import AlertEngine, RuleError, parse_rules
from notebench.server.monitoring.alerts.engine import fingerprint
from notebench.server.monitoring.alerts.rules import parse_duration, parse_rule
from notebench.server.monitoring.history import History
from notebench.server.monitoring.sampler import Sampler
from notebench.server.monitoring.series import flatten, key_text
from notebench.server.monitoring.stats import route_name
from notebench.server.monitoring.webhook import payload


def test_durations():
    assert parse_duration(5, "x") == 5.0
    assert parse_duration("90s", "x") == 90.0
    assert parse_duration("2m", "x") == 120.0
    assert parse_duration("1h30m", "x") == 5400.0
    assert parse_duration("250ms", "x") == 0.25
    assert parse_duration("7", "x") == 7.0
    for bad in ("soon", "5 minutes", -1, True, "1x"):
        with pytest.raises(RuleError):
            parse_duration(bad, "x")


def test_rule_validation():
    rule = parse_rule({"name": "a", "metric": "m", "threshold": 1, "for": "1m",
                       "aggregation": "max", "window": "30s", "labels": {"team": 1}})
    assert rule.for_ == 60 and rule.window == 30 and rule.labels == {"team": "1"}
    problems = {
        "unknown field": {"name": "a", "metric": "m", "threshold": 1, "expr": "x"},
        "'comparison'": {"name": "a", "metric": "m", "threshold": 1, "comparison": "=~"},
        "needs a 'window'": {"name": "a", "metric": "m", "threshold": 1, "aggregation": "avg"},
        "'threshold'": {"name": "a", "metric": "m", "threshold": "high"},
        "'name'": {"name": "9 lives", "metric": "m", "threshold": 1},
        "at most": {"name": "a", "metric": "m", "threshold": 1, "aggregation": "avg",
                    "window": "1h"},
    }
    for text, raw in problems.items():
        with pytest.raises(RuleError, match=text):
            parse_rule(raw, max_window=900)
    rules, found = parse_rules({"rules": [{"name": "a", "metric": "m", "threshold": 1},
                                          {"name": "a", "metric": "n", "threshold": 2},
                                          "nonsense"]}, source="f")
    assert [r.metric for r in rules] == ["n"] and len(found) == 2


def test_engine_states_for_and_keep_firing_for():
    [rule] = parse_rules([{"name": "hot", "metric": "t", "threshold": 80, "for": 10,
                           "keep_firing_for": 5}], source="t")[0]
    engine = AlertEngine([rule])
    gpu0, gpu1 = ("t", (("gpu", "0"),)), ("t", (("gpu", "1"),))

    def states(now, values):
        return [(c.alert.labels["gpu"], c.alert.state) for c in engine.evaluate(now, values)]

    assert states(0, {gpu0: 90, gpu1: 50}) == [("0", "pending")]
    assert states(9.9, {gpu0: 90, gpu1: 85}) == [("1", "pending")]
    assert states(10, {gpu0: 90, gpu1: 85}) == [("0", "firing")]
    assert states(12, {gpu0: 70, gpu1: 70}) == [("1", "inactive")]  # pending ends: dropped
    assert states(14.9, {}) == []  # kept firing (the series gone counts as false)
    assert states(15, {gpu0: 70}) == [("0", "resolved")]  # 5 s after it last held
    assert engine.active == {}


def test_identity_is_rule_name_plus_labels():
    assert fingerprint("r", {"a": "1", "b": "2"}) == fingerprint("r", {"b": "2", "a": "1"})
    assert fingerprint("r", {"a": "1"}) != fingerprint("s", {"a": "1"})
    rules, _ = parse_rules([{"name": "r", "metric": "m", "threshold": 0,
                             "labels": {"team": "ml"}}], source="t")
    engine = AlertEngine(rules)
    [change] = engine.evaluate(0, {("m", (("host", "a"),)): 1})
    assert change.alert.state == "firing" and change.alert.labels == {"host": "a", "team": "ml"}
    assert change.alert.id == fingerprint("r", {"host": "a", "team": "ml"})
    engine.set_rules([])  # a rule that is gone resolves its alerts
    assert [c.alert.state for c in engine.evaluate(1, {("m", (("host", "a"),)): 1})] == [
        "resolved"]


def test_flatten_a_sample():
    sample = {
        "ts": 1.0, "cpu": {"percent": 50.0, "per_core": [40.0, 60.0], "load": [1, 2, 3]},
        "memory": {"used_bytes": 10, "total_bytes": 100, "available_bytes": 90,
                   "percent": 10.0},
        "storage": [{"root": "workspace", "free_bytes": 5, "total_bytes": 10,
                     "free_percent": 50.0}],
        "gpus": [{"index": 0, "temperature_c": 70, "memory_used_bytes": None,
                  "mig_devices": [{"index": 1, "memory_used_bytes": 3}]}],
        "jobs": {"j-aaaaaaaaaaaa": {"cpu_percent": 120.0, "rss_bytes": 7, "pss_bytes": None,
                                    "processes": 2}},
        "cost": {"cpu_seconds": 0.001},
    }
    values = flatten(sample)
    assert values[("cpu_core_percent", (("core", "1"),))] == 60.0
    assert values[("gpu_temperature_celsius", (("gpu", "0"),))] == 70
    assert ("gpu_memory_used_bytes", (("gpu", "0"),)) not in values  # None is left out
    assert values[("mig_memory_used_bytes", (("gpu", "0"), ("mig", "1")))] == 3
    assert values[("job_cpu_percent", (("job_id", "j-aaaaaaaaaaaa"),))] == 120.0
    assert key_text("gpu_temperature_celsius", (("gpu", "0"),)) == \
        'gpu_temperature_celsius{gpu="0"}'


class FakeStore:
    read_only = False

    def __init__(self) -> None:
        self.writes = []

    def write_nowait(self, fn):
        self.writes.append(fn)


def test_history_ring_buckets_and_query():
    store = FakeStore()
    history = History(store, interval=0.5, ring_seconds=60, bucket_seconds=10)
    history.started_at = 0  # not a restart: the ring covers everything it holds
    base = time.time() - 25
    for i in range(50):  # 25 s of samples at 0.5 s
        history.add(base + i * 0.5, {("m", ()): float(i % 10)})
    assert history.flushes >= 2 and store.writes
    assert history.window(("m", ()), 2.0, base + 24.5) == [5.0, 6.0, 7.0, 8.0, 9.0]
    raw = asyncio.run(history.query(names=["m"], since=base + 20, until=base + 24.9))
    assert raw["resolution"] == "raw" and len(raw["series"][0]["t"]) == 10
    buckets = asyncio.run(history.query(names=["m"], since=base, step=5))
    [series] = buckets["series"]
    assert buckets["resolution"] == "buckets" and 5 <= len(series["t"]) <= 7
    for low, mean, high in zip(series["min"], series["value"], series["max"], strict=True):
        assert low <= mean <= high


class FakeNvml:
    """A GPU with a MIG device; one process of the job on it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def sample(self):
        return [{"index": 0, "uuid": "GPU-1", "utilization_gpu_percent": 50,
                 "utilization_memory_percent": 10, "memory_total_bytes": 1000,
                 "memory_used_bytes": 250, "temperature_c": 60, "power_watts": 100.0,
                 "clocks_sm_mhz": 1500, "clocks_mem_mhz": 5000}]

    def devices(self):
        return [{"index": 0, "name": "Fake GPU", "power_limit_watts": 300.0, "mig_mode": True,
                 "mig_devices": [{"index": 0, "memory_used_bytes": 10}]}]

    def reason(self):
        return None

    def processes(self):
        return [{"gpu": 0, "pid": self.pid, "used_bytes": 123}]


def test_sampler_measures_gpus_and_jobs(tmp_path):
    got = []
    sampler = Sampler(interval=0.1, on_sample=got.append, roots=[("workspace", tmp_path)],
                      job_pids=lambda: {"j-aaaaaaaaaaaa": [os.getpid()]},
                      nvml=FakeNvml(os.getpid()), pss_interval=0)
    sampler._prime()
    first = sampler.sample_once()
    sum(range(2_000_000))  # some CPU for the job (this process) to show
    second = sampler.sample_once()
    [gpu] = second["gpus"]
    assert gpu["name"] == "Fake GPU" and gpu["memory_percent"] == 25.0
    assert gpu["mig_devices"][0]["memory_used_bytes"] == 10
    job = second["jobs"]["j-aaaaaaaaaaaa"]
    assert job["gpu_memory_bytes"] == 123 and job["processes"] == 1
    assert job["rss_bytes"] == pytest.approx(psutil.Process().memory_info().rss, rel=0.5)
    assert job["pss_bytes"] > 0 and job["cpu_percent"] > 0
    assert first["jobs"]["j-aaaaaaaaaaaa"]["cpu_percent"] == 0.0  # the first is a baseline
    assert second["seq"] == first["seq"] + 1
    assert second["storage"][0]["free_bytes"] > 0


def test_sampler_keeps_its_schedule():
    clock = ManualClock(start=0.0, wall=100.0)
    times = []
    sampler = Sampler(interval=0.05, on_sample=lambda s: times.append(s["ts"]), clock=clock)
    sampler.start()
    try:
        wait_until(lambda: len(times) == 1)
        for tick in range(1, 13):  # 0.6 s of the clock: a sample every 0.05 s, no more
            clock.advance(0.05)
            wait_until(lambda n=tick + 1: len(times) >= n)
        assert times == pytest.approx([100.0 + 0.05 * k for k in range(13)])
        assert sampler.skipped == 0
        # a late tick runs once, the missed ones are skipped and the phase is kept
        clock.advance(0.16)
        wait_until(lambda: len(times) == 14)
        assert times[-1] == pytest.approx(100.76) and sampler.skipped == 2
        clock.advance(0.045)  # the next tick is due at 0.80, not 0.76 + 0.05
        wait_until(lambda: len(times) == 15)
        assert times[-1] == pytest.approx(100.805)
    finally:
        sampler.stop()
    assert len(times) == 15 and sampler.samples == 15
    assert not sampler.alive


def wait_until(condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` (the sampler works in its own thread) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_webhook_payload_is_alertmanager_shaped():
    alert = {"id": "0123456789abcdef", "rule": "r", "severity": "warning",
             "labels": {"gpu": "0"}, "message": "hot", "state": "resolved",
             "pending_at": 1.0, "fired_at": 2.0, "resolved_at": 3.0}
    body = payload(alert)
    assert body["status"] == "resolved" and body["version"] == "4"
    [entry] = body["alerts"]
    assert entry["labels"] == {"alertname": "r", "severity": "warning", "gpu": "0"}
    assert entry["startsAt"] == "1970-01-01T00:00:02Z"
    assert entry["endsAt"] == "1970-01-01T00:00:03Z"


def test_route_names():
    assert route_name(r"/a%40b/notebench/api/monitoring/alerts/([0-9a-f]{16})/ack$",
                      "/a%40b/") == "/notebench/api/monitoring/alerts/{}/ack"
    assert route_name(r"/api/kernels/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)$", "/") == \
        "/api/kernels/{kernel_id}"


def test_history_tiers_and_the_seam_with_the_ring(tmp_path):
    from notebench.server.monitoring.schema import MIGRATIONS
    from notebench.server.store import Store

    store = Store(tmp_path / "state.sqlite", schemas={"monitoring": MIGRATIONS})
    store.open()
    try:
        history = History(store, interval=1.0, ring_seconds=60, bucket_seconds=10,
                          rollup_seconds=60)
        now = time.time()
        start = (now // 60) * 60 - 360  # six whole minutes ago
        history.started_at = start
        for second in range(int(now - start)):
            minute = second // 60
            history.add(start + second, {("m", ()): float(minute * 10 + second % 2)})

        async def query(**kw):
            await store.write(lambda conn: None)  # what was queued is committed
            return await history.query(names=["m"], **kw)

        coarse = asyncio.run(query(since=start, step=60))
        [series] = coarse["series"]
        assert coarse["resolution"] == "buckets" and coarse["step"] == 60
        assert series["t"][:6] == [start + 60 * i for i in range(6)]
        for i in range(6):  # each minute: values minute*10 and minute*10+1
            assert series["min"][i] == i * 10 and series["max"][i] == i * 10 + 1
            assert series["value"][i] == pytest.approx(i * 10 + 0.5)
        fine = asyncio.run(query(since=start, step=10))
        assert len(fine["series"][0]["t"]) >= 36  # 10 s rows, then the ring
        rows = store.read_sync(lambda c: c.execute(
            "SELECT width, COUNT(*) FROM monitoring_history GROUP BY width").fetchall())
        assert {r[0] for r in rows} == {10.0, 60.0}
    finally:
        store.close()
