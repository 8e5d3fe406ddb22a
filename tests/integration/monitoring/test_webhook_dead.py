"""A dead webhook receiver blocks nothing: alerts, samples and requests keep their pace."""

from __future__ import annotations

import itertools
import socket
import time

import pytest

from .conftest import INTERVAL, read_until

RULES = [{"name": "hook_rule", "metric": "hook_value", "threshold": 0, "severity": "critical"}]


@pytest.fixture
def dead_socket():
    """A listening socket that never accepts: requests to it hang until they time out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def monitoring_config(dead_socket):
    return {"interval": INTERVAL, "rules": RULES, "webhook_timeout": 30,
            "webhook_url": f"http://127.0.0.1:{dead_socket}/hook", "webhook_retries": 3}


async def test_a_dead_webhook_blocks_nothing(source, alerts, api, stream, monitoring):
    assert monitoring.webhook is not None
    conn = await stream("monitoring,alerts")
    await api("GET", "_test/loop_lag", validate=False)  # start measuring the loop's lag
    for round_ in range(3):
        await source("hook_value", round_ + 1)
        firing = await alerts.wait("hook_rule", "firing")
        await source("hook_value", 0)
        await alerts.wait("hook_rule", "resolved", timeout=10, episode=firing["episode"])
    figures = (await api("GET", "monitoring/stats")).body["webhook"]
    assert figures["sent"] == 0 and figures["in_flight"] and figures["queued"] >= 4, figures
    started = time.monotonic()
    health = await api("GET", "monitoring/health")
    assert health.status == 200 and time.monotonic() - started < 2.0
    frames = await read_until(conn, lambda fs: len([f for f in fs if f.event == "sample"]) >= 12)
    samples = [f.data["data"]["ts"] for f in frames if f.event == "sample"][1:]
    gaps = [b - a for a, b in itertools.pairwise(samples)]
    assert max(gaps) < 4 * INTERVAL, gaps  # the sampler kept its pace
    lag = (await api("GET", "_test/loop_lag", validate=False)).body
    assert lag["worst_lag_ms"] < 500, lag
