"""A job ends when its runner exits: the executor says so, no tick has to notice it."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def jobs_config() -> dict[str, Any]:
    # the tick runs once at start, then not again during the test
    return {"cpu_slots": 2, "stop_grace_seconds": 5.0, "kill_grace_seconds": 2.0,
            "tick_seconds": 3600.0, "stall_minutes": 0.0}


async def test_a_job_ends_without_a_tick(jobs_api, write_notebook, api):
    path = write_notebook("quick", ["import notebench\nnotebench.report(step=0, loss=n)"],
                          "n = 1")
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"], timeout=60)
    assert done["state"] == "succeeded"
    assert done["latest_metrics"] == {"loss": 1}
    listing = await api("GET", f"lifecycle/artifacts/{job['id']}")
    assert "metrics.csv" in {f["path"] for f in listing.body["files"]}
    # the next one starts when this one ends (admission does not wait for the tick either)
    second = await jobs_api.submit(path, parameters={"n": 2})
    assert (await jobs_api.wait(second["id"], timeout=60))["state"] == "succeeded"
