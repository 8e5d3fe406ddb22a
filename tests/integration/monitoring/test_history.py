"""``GET monitoring/metrics``: full resolution from the ring, buckets from the store, and
the persisted history surviving a restart."""

from __future__ import annotations

import asyncio
import time

from tests.server_process import ServerProcess

from .conftest import INTERVAL, check_schema, wait_for


async def metrics(api, **params):
    response = await api("GET", "monitoring/metrics",
                         params={k: str(v) for k, v in params.items()})
    assert response.status == 200, response.body
    return response.body


async def test_recent_history_at_full_resolution(api, monitoring):
    await wait_for(lambda: monitoring.sampler.samples >= 8)
    body = await metrics(api, names="cpu_percent,memory_*", since=time.time() - 1.5)
    check_schema("MonitoringMetrics", body)
    assert body["resolution"] == "raw" and body["step"] is None
    names = {s["name"] for s in body["series"]}
    assert {"cpu_percent", "memory_used_bytes", "memory_percent"} <= names
    assert "gpu_temperature_celsius" not in names
    cpu = next(s for s in body["series"] if s["name"] == "cpu_percent")
    assert cpu["unit"] == "percent" and cpu["labels"] == {}
    assert len(cpu["t"]) == len(cpu["value"]) >= 4
    gaps = [b - a for a, b in zip(cpu["t"], cpu["t"][1:], strict=False)]
    assert all(0.5 * INTERVAL < g < 4 * INTERVAL for g in gaps), gaps
    per_core = await metrics(api, names="cpu_core_percent", since=-1)
    assert {s["labels"]["core"] for s in per_core["series"]} == {
        str(i) for i in range(monitoring.latest_sample["cpu"]["count"])}


async def test_downsampled_buckets(api, source, monitoring):
    for value in (1, 5, 3):
        await source("test_value", value)
        await asyncio.sleep(4 * INTERVAL)
    body = await metrics(api, names="test_value", since=-(12 * INTERVAL), step=1)
    assert body["resolution"] == "buckets" and body["step"] == 1
    [series] = body["series"]
    assert series["t"] == sorted(series["t"]) and all(t == int(t) for t in series["t"])
    for low, mean, high in zip(series["min"], series["value"], series["max"], strict=True):
        assert low <= mean <= high
    assert min(series["min"]) == 1 and max(series["max"]) == 5
    few = await metrics(api, names="test_value", since=-(12 * INTERVAL), max_points=2)
    assert len(few["series"][0]["t"]) <= 3
    empty = await metrics(api, names="no_such_metric")
    assert empty["series"] == [] and empty["names"] == []
    bad = await api("GET", "monitoring/metrics", params={"step": "fast"})
    assert bad.status == 400


def test_persisted_history_survives_a_restart(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    args = ["--NotebenchMonitoringService.interval=0.2",
            "--NotebenchMonitoringService.history_bucket_seconds=1"]
    first = ServerProcess(root, extra=args).start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = first.request("GET", "monitoring/stats")
            if body["sampler"].get("samples", 0) >= 20:  # 4 s: four buckets of 1 s written
                break
            time.sleep(0.3)
        stopped_at = time.time()
    finally:
        first.stop()
    second = ServerProcess(root, extra=args).start()
    try:
        deadline = time.monotonic() + 30
        while second.request("GET", "monitoring/stats")[1]["sampler"].get("samples", 0) < 1:
            assert time.monotonic() < deadline, "the second server never sampled"
            time.sleep(0.2)
        status, body = second.request(
            "GET", f"monitoring/metrics?names=memory_used_bytes&since={stopped_at - 60}&step=1")
        assert status == 200, body
        [series] = body["series"]
        before = [t for t in series["t"] if t < stopped_at - 1]
        assert len(before) >= 2, series["t"]  # buckets written by the first server
        assert all(v is not None and v > 0 for v in series["value"])
    finally:
        second.stop()
