"""Health: liveness and readiness; 503 naming the component that failed."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from .conftest import INTERVAL, wait_for


@pytest.fixture
def monitoring_config():
    return {"interval": INTERVAL, "health_store_timeout": 1.0}


async def test_healthy_server(api, monitoring):
    await wait_for(lambda: monitoring.latest_sample)
    response = await api("GET", "monitoring/health")
    assert response.status == 200, response.body
    body = response.body
    assert body["status"] == "pass" and body["live"] and body["ready"]
    assert set(body["components"]) == {"store", "sampler", "jobs", "disk", "nvml"}
    assert all(c["ok"] for c in body["components"].values())
    assert body["components"]["nvml"]["status"] in ("ok", "absent")
    live = await api("GET", "monitoring/health", params={"probe": "live"})
    assert live.status == 200 and live.body["components"] == {}
    bad = await api("GET", "monitoring/health", params={"probe": "deep"})
    assert bad.status == 400


async def test_503_while_the_store_cannot_be_written(api, services, monitoring):
    # tests run as root, so a file mode cannot make the store unwritable: another
    # connection holds SQLite's write lock instead
    blocker = sqlite3.connect(services.store.path, timeout=10, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        response = await api("GET", "monitoring/health")
        assert response.status == 503, response.body
        assert response.body["status"] == "fail" and response.body["ready"] is False
        assert response.body["failed"] == ["store"]
        assert "did not commit" in response.body["components"]["store"]["detail"]
        assert response.body["components"]["sampler"]["ok"]
        # liveness does not depend on the store
        assert (await api("GET", "monitoring/health", params={"probe": "live"})).status == 200
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()

    async def healthy():
        return (await api("GET", "monitoring/health")).status == 200

    await wait_for(healthy, timeout=15)


async def test_503_when_the_sampler_stops(api, monitoring):
    await wait_for(lambda: monitoring.latest_sample)
    await asyncio.to_thread(monitoring.sampler.stop)
    response = await api("GET", "monitoring/health")
    assert response.status == 503
    assert response.body["failed"] == ["sampler"]
    assert "not running" in response.body["components"]["sampler"]["detail"]
