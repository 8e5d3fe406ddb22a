"""A server SIGKILLed while a remote job runs: the job is adopted, no point is lost or
stored twice, and the forwarder resumes from what the server committed."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from tests.integration.jobs.conftest import notebook
from tests.server_process import ServerProcess
from tests.waiting import wait_until

from .conftest import DaskCluster

pytestmark = pytest.mark.timeout(300)

STEPS = 400
STEADY = f"""
import time
import notebench
for step in range({STEPS}):
    notebench.report(step=step, total_steps={STEPS}, loss=1.0 / (step + 1))
    time.sleep(0.03)
"""


def test_a_killed_server_adopts_its_remote_job_and_loses_no_point(
        tmp_path: Path, dask_cluster: DaskCluster):
    root = tmp_path / "root"
    (root / "nbs").mkdir(parents=True)
    nbformat.write(notebook([STEADY]), root / "nbs" / "steady.ipynb")
    extra = ["--NotebenchJobService.executor_class="
             "notebench.server.jobs.dask_executor.DaskExecutor",
             f"--NotebenchDaskCluster.scheduler_address={dask_cluster.address}",
             "--NotebenchDaskCluster.heartbeat_seconds=0.5",
             "--NotebenchJobService.tick_seconds=0.2"]
    server = ServerProcess(root, extra=extra).start()
    try:
        status, job = server.request("POST", "lifecycle/jobs", {"notebook": "nbs/steady.ipynb"})
        assert status == 201, job

        def reported(least: int):
            def check():
                status, body = server.request("GET", f"lifecycle/jobs/{job['id']}")
                assert status == 200, body
                step = body["progress"].get("step")
                return body if isinstance(step, int) and step >= least else None
            return check

        wait_until(reported(30))
        server.kill()  # mid-job, no clean-up: the worker keeps training and buffering
        time.sleep(2.0)
        server = ServerProcess(root, port=server.port, extra=extra).start()
        status, adopted = server.request("GET", f"lifecycle/jobs/{job['id']}")
        assert status == 200 and adopted["state"] == "running", adopted

        def ended():
            _status, body = server.request("GET", f"lifecycle/jobs/{job['id']}")
            return body if body["state"] in ("succeeded", "failed", "stopped") else None

        done = wait_until(ended, timeout=180)
        assert done["state"] == "succeeded", (done["reason"], done["error"])
        status, metrics = server.request("GET", f"lifecycle/jobs/{job['id']}/metrics")
        assert status == 200
        loss = next(s for s in metrics["series"] if s["name"] == "loss")
        assert loss["count"] == STEPS  # every reported point once: none lost, none twice
    finally:
        server.stop()
