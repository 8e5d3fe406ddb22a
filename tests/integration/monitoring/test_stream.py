"""The live stream: samples at the configured interval, alerts and logs replayed."""

from __future__ import annotations

import itertools
import statistics

import pytest

from .conftest import INTERVAL, check_schema, read_until

RULES = [{"name": "stream_rule", "metric": "stream_value", "comparison": ">", "threshold": 1}]


async def test_samples_arrive_at_the_interval(stream, monitoring):
    conn = await stream("monitoring")
    assert conn.status == 200
    frames = await read_until(conn, lambda fs: len([f for f in fs if f.event == "sample"]) >= 14)
    samples = [f for f in frames if f.event == "sample"]
    # the first frame is the current sample; samples carry no id (never replayed)
    assert all(f.id is None for f in samples)
    check_schema("MonitoringSample", samples[0].data["data"])
    data = [f.data["data"] for f in samples]
    seqs = [d["seq"] for d in data]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    live = data[1:]  # after the initial (cached) one
    steps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(live)
             if b["seq"] == a["seq"] + 1]
    assert len(steps) >= 8
    # server timestamps of consecutive samples: the interval, with slack for a busy machine
    assert abs(statistics.median(steps) - INTERVAL) < 0.05, steps
    assert all(0.5 * INTERVAL < s < 4 * INTERVAL for s in steps), steps
    assert all(d["interval"] == INTERVAL for d in data)
    sample = data[-1]
    assert sample["cpu"]["count"] >= 1 and len(sample["cpu"]["per_core"]) == sample["cpu"]["count"]
    assert sample["memory"]["total_bytes"] > 0 and 0 <= sample["memory"]["percent"] <= 100
    roots = {r["root"] for r in sample["storage"]}
    assert "workspace" in roots
    assert isinstance(sample["gpus"], list)  # no GPU here: an empty list, not an error
    assert sample["cost"]["cpu_seconds"] >= 0


async def test_the_cost_does_not_grow_with_clients(stream, monitoring):
    conns = [await stream("monitoring") for _ in range(5)]
    for conn in conns:
        await read_until(conn, lambda fs: len(fs) >= 4)
    # every client received the same samples (one sample, one encoding, many clients)
    seqs = [{f.data["data"]["seq"] for f in c.frames} for c in conns]
    common = set.intersection(*seqs)
    assert len(common) >= 2


@pytest.mark.parametrize("monitoring_config",
                         [{"interval": INTERVAL, "rules": RULES}])
async def test_reconnect_replays_alerts_and_logs(stream, api, source, monitoring):
    conn = await stream("alerts,logs")
    await api("POST", "_test/log", {"message": "before the drop", "count": 2}, validate=False)
    await source("stream_value", 5)
    frames = await read_until(conn, lambda fs: any(f.event == "alert" for f in fs)
                              and sum(f.event == "log" and "before the drop" in
                                      f.data["data"]["message"] for f in fs) == 2)
    assert all(f.id is not None for f in frames)
    last_id = conn.last_id
    conn.close()
    # while the client is away: more records and the alert resolving
    await api("POST", "_test/log", {"message": "while away", "count": 3}, validate=False)
    await source("stream_value", 0)

    async def resolved():
        body = (await api("GET", "monitoring/alerts")).body
        return any(a["rule"] == "stream_rule" and a["state"] == "resolved"
                   for a in body["recent"])

    from .conftest import wait_for

    await wait_for(resolved)
    again = await stream("alerts,logs", last_event_id=last_id)
    missed = await read_until(again, lambda fs: any(
        f.event == "alert" and f.data["data"]["state"] == "resolved" for f in fs)
        and sum(f.event == "log" and "while away" in f.data["data"]["message"]
                for f in fs) == 3)
    ids = [f.id for f in missed if f.id is not None]
    assert ids == sorted(ids) and ids[0] > last_id  # nothing seen before is sent again
    assert not any("before the drop" in str(f.data) for f in missed)
    resolved_event = next(f for f in missed if f.event == "alert")
    check_schema("Alert", resolved_event.data["data"])
    assert resolved_event.data["topic"] == "alerts"


async def test_topics_are_checked(api):
    response = await api("GET", "monitoring/stream", params={"topics": "jobs"})
    assert response.status == 400
    assert response.body["error"]["code"] == "unknown_topic"
