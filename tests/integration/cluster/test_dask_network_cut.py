"""A network cut between a Dask worker and the real server: the forwarder catches up.

The workers reach the server through a TCP relay (``tests/tcp_relay.py``); cutting it
mid-job resets every connection and refuses new ones for a few seconds, well under the
forwarder's grace. The job goes on training on the worker meanwhile; once the link is
back, the forwarder asks where the server stands and resends from there: every point
arrives once, and the job's log says the worker reconnected.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.jobs.conftest import wait_for
from tests.tcp_relay import TcpRelay

from .conftest import DaskCluster

pytestmark = pytest.mark.timeout(300)

STEPS = 300
CUT_SECONDS = 3.5
STEADY = f"""
import time
import notebench
for step in range({STEPS}):
    notebench.report(step=step, total_steps={STEPS}, loss=1.0 / (step + 1))
    time.sleep(0.03)
"""


@pytest.fixture
def relay(jp_http_port: int) -> Iterator[TcpRelay]:
    """The workers' only way to the test server."""
    with TcpRelay(("127.0.0.1", jp_http_port)) as tcp:
        yield tcp


@pytest.fixture
def dask_config(dask_cluster: DaskCluster, relay: TcpRelay, jp_base_url: str
                ) -> dict[str, Any]:
    return {"scheduler_address": dask_cluster.address, "server_url": relay.url(jp_base_url),
            "heartbeat_seconds": 0.5, "grace_seconds": 30.0, "lost_after_seconds": 20.0}


async def test_a_forwarder_cut_off_for_seconds_catches_up_with_no_loss(
        jobs_api, write_notebook, api, relay: TcpRelay):
    path = write_notebook("steady", [STEADY])
    job = await jobs_api.submit(path)

    async def step_at_least(least: int) -> int | None:
        current = await jobs_api.get(job["id"])
        step = current["progress"].get("step")
        assert current["state"] not in ("succeeded", "failed", "stopped"), current
        return step if isinstance(step, int) and step >= least else None

    await wait_for(lambda: step_at_least(30), 120)
    relayed = relay.relayed
    assert relayed > 0  # the worker reaches the server through the relay only
    relay.cut()
    cut_at = time.time()
    await asyncio.sleep(CUT_SECONDS)  # the cut's length is what is under test
    assert relay.refused > 0  # the forwarder kept trying through the cut
    cut_off = await jobs_api.get(job["id"])
    assert cut_off["state"] == "running", cut_off  # well within the grace
    relay.restore()
    restored_at = time.time()

    done = await jobs_api.wait(job["id"], timeout=180)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    assert relay.relayed > relayed  # reconnected through the relay

    raw = await api("GET", f"lifecycle/jobs/{job['id']}/metrics",
                    params={"format": "csv", "names": "loss"}, validate=False)
    assert raw.status == 200
    rows = list(csv.DictReader(io.StringIO(raw.body.decode())))
    steps = [int(r["step"]) for r in rows]
    assert len(steps) == STEPS and len(set(steps)) == STEPS  # none lost, none twice
    assert sorted(steps) == list(range(STEPS))
    assert all(float(r["value"]) == pytest.approx(1.0 / (int(r["step"]) + 1)) for r in rows)
    # the job trained on through the cut: what it reported meanwhile arrived late
    assert any(cut_at < float(r["t"]) < restored_at for r in rows)
    summary = await jobs_api.metrics(job["id"], names="loss")
    assert summary["series"][0]["count"] == STEPS

    records = await jobs_api.logs(job["id"], source="jobs")
    notes = [r["message"] for r in records if "reaches the server again" in r["message"]]
    assert len(notes) == 1, [r["message"] for r in records]
    # how long this forwarder was cut off: about the cut (it noticed within a poll)
    waited = float(re.search(r"after_seconds ([0-9.]+)", notes[0]).group(1))
    assert waited >= CUT_SECONDS - 1.0, notes[0]
