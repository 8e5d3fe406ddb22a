"""``GET monitoring/stats``: requests per route, stream clients, events, jobs, sampler cost."""

from __future__ import annotations

from .conftest import check_schema, read_until, wait_for


async def test_stats(api, stream, monitoring):
    for _ in range(5):
        assert (await api("GET", "info")).status == 200
    await api("POST", "monitoring/alerts/0123456789abcdef/ack")  # a 404 on a route with an id
    conn = await stream("monitoring,alerts")
    await read_until(conn, lambda fs: len(fs) >= 1)
    await wait_for(lambda: monitoring.sampler.samples >= 3)
    body = (await api("GET", "monitoring/stats")).body
    check_schema("MonitoringStats", body)
    routes = {(r["method"], r["route"]): r for r in body["requests"]["routes"]}
    info = routes[("GET", "/notebench/api/info")]
    assert info["count"] >= 5 and info["statuses"]["2xx"] >= 5
    latency = info["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    ack = routes[("POST", "/notebench/api/monitoring/alerts/{}/ack")]
    assert ack["statuses"] == {"4xx": 1}
    assert body["sse"]["by_topic"].get("monitoring") == 1
    assert body["sse"]["by_topic"].get("alerts") == 1 and body["sse"]["clients"] == 1
    assert body["events"]["published"] > 0
    sampler = body["sampler"]
    assert sampler["running"] and sampler["samples"] >= 3
    assert sampler["cpu_ms_per_sample"]["mean"] > 0
    assert "by_state" in body["jobs"]
    conn.close()
    await wait_for(lambda: monitoring.sse_by_topic() == {})
    after = (await api("GET", "monitoring/stats")).body
    assert after["sse"]["clients"] == 0 and after["sse"]["by_topic"] == {}
    assert after["requests"]["total"] > body["requests"]["total"]
