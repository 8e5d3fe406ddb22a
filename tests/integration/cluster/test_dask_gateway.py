"""The Dask executor on a cluster made by a cluster factory: a local Dask Gateway (its
local backend runs the cluster's scheduler and worker as processes of this machine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_cluster import LocalGateway, start_gateway

pytestmark = pytest.mark.timeout(240)

REPORT = """
import notebench
for step in range(steps):
    notebench.report(step=step, total_steps=steps, loss=1.0 / (step + 1))
"""


@pytest.fixture
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGateway]:
    gateway = start_gateway(Path(tmp_path_factory.mktemp("gateway")))
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def dask_cluster() -> None:
    """No scheduler of the tests' own: the gateway makes the cluster."""
    return None


@pytest.fixture
def dask_config(gateway: LocalGateway) -> dict[str, Any]:
    return {"cluster_factory": "tests.gateway_cluster.new_cluster",
            "cluster_options": {"address": gateway.address,
                                "proxy_address": gateway.proxy_address},
            "connect_timeout": 60.0, "heartbeat_seconds": 0.5}


async def test_a_job_runs_on_a_gateway_cluster(jobs_api, write_notebook, api):
    cluster = await api("GET", "lifecycle/cluster")
    assert cluster.body["problem"] is None, cluster.body
    assert cluster.body["scheduler"].startswith("gateway://")
    path = write_notebook("gateway", [REPORT], "steps: int = 50")
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"], timeout=180)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    metrics = await jobs_api.metrics(job["id"], names="loss")
    assert metrics["series"][0]["count"] == 50
    assert done["processes"]["runner"]["worker"]  # it ran on the gateway's worker
