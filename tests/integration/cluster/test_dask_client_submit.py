"""``notebench.jobs.submit`` from a notebook's kernel, unchanged, against a server whose
jobs run on a Dask cluster: the job runs on a worker and its metrics come back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.test_kernel_side import run_in_kernel

from .conftest import GPU_WORKER

pytestmark = pytest.mark.timeout(300)

TRAIN = """
import notebench
for step in range(steps):
    notebench.report(step=step, total_steps=steps, loss=lr / (step + 1))
"""

KERNEL_CODE = """
import json, notebench
jobs = notebench.jobs
cpu = jobs.submit("nbs/k.ipynb", lr=0.5, name="on-the-cluster")
gpu = jobs.submit("nbs/k.ipynb", lr=0.25, resources={"gpus": 1})
cpu.wait(timeout=180, progress=False)
gpu.wait(timeout=180, progress=False)
frame = cpu.metrics()
print(json.dumps({
    "states": [cpu.state, gpu.state], "reasons": [cpu["reason"], gpu["reason"]],
    "runners": [cpu["processes"].get("runner"), gpu["processes"].get("runner")],
    "steps": frame.index.tolist(), "loss": frame["loss"].tolist(),
    "gpu_final": gpu["final_metrics"],
}))
"""


async def test_jobs_submit_from_a_kernel_runs_on_a_worker(
        jp_serverapp, http_server_client, write_notebook, api):
    write_notebook("k", [TRAIN], "lr: float = 0.1\nsteps: int = 6")
    output = await run_in_kernel(jp_serverapp, KERNEL_CODE)
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    assert result["states"] == ["succeeded", "succeeded"], result["reasons"]
    cluster = (await api("GET", "lifecycle/cluster")).body
    names = {w["address"]: w["name"] for w in cluster["workers"]}
    cpu_runner, gpu_runner = result["runners"]
    # where each ran: a worker of the cluster (the GPU job: the one with the resource)
    assert cpu_runner["executor"] == "dask" and cpu_runner["worker"] in names, cpu_runner
    assert cpu_runner["host"]
    assert names[gpu_runner["worker"]] == GPU_WORKER, gpu_runner
    assert result["steps"] == list(range(6))
    assert result["loss"] == pytest.approx([0.5 / (s + 1) for s in range(6)])
    assert result["gpu_final"]["loss"] == pytest.approx(0.25 / 6), result["gpu_final"]
