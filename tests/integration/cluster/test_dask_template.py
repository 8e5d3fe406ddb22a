"""The shipped template on a Dask worker: live metrics, files and model back, a restart
from its checkpoint on the other worker."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.jobs.conftest import wait_for
from tests.sse_client import open_sse

from .conftest import CPU_WORKER, GPU_WORKER

pytestmark = pytest.mark.timeout(420)

BLOCKER = "import time\ntime.sleep(seconds)"


async def _worker_name(api: Any, job: dict[str, Any]) -> str:
    cluster = await api("GET", "lifecycle/cluster")
    names = {w["address"]: w["name"] for w in cluster.body["workers"]}
    return names[job["processes"]["runner"]["worker"]]


async def test_the_template_trains_remotely_and_restarts_on_the_other_worker(
        jobs_api, api, services, write_notebook, jp_http_port, jp_base_url, jp_auth_header):
    # on the GPU worker (it advertises the resource; the job runs on its CPU)
    job = await jobs_api.submit(template="train_tabular", parameters={"epochs": 200},
                                resources={"gpus": 1})
    stream = await open_sse(jp_http_port,
                            f"{jp_base_url}notebench/api/lifecycle/jobs/{job['id']}/stream",
                            headers=jp_auth_header)

    async def in_third_epoch() -> dict[str, Any] | None:
        current = await jobs_api.get(job["id"])
        epoch = current["latest_metrics"].get("epoch")
        return current if isinstance(epoch, (int, float)) and epoch >= 3 else None

    running = await wait_for(in_third_epoch, 240)
    await stream.read_for(0.5)
    stream.close()
    assert any(f.event == "metrics" for f in stream.frames)  # live, while it ran
    assert await _worker_name(api, running) == GPU_WORKER
    await jobs_api.control(job["id"], "stop")
    stopped = await jobs_api.wait(job["id"], timeout=120)
    assert stopped["state"] == "stopped", (stopped["reason"], stopped["error"])
    # "auto" settings were the worker's to resolve: the kernel did, on the worker
    assert stopped["resolved_parameters"]["device"] == "auto"
    sources = {name: a["source"] for name, a in stopped["auto"].items()}
    assert sources["device"] == "recommended" and "server" not in sources.values(), sources

    # its files came back: output notebook, checkpoints, the model (loadable here)
    job_dir = services.jobs.runs_dir / job["id"]
    assert (job_dir / "output.ipynb").is_file()
    checkpoints = await services.jobs.checkpoints(job["id"])
    last = [c["path"] for c in checkpoints if "stopped-step" in c["path"]]
    assert last and (job_dir / last[-1]).is_file()  # older ones the template rotated away
    import notebench

    state = notebench.load_model(str(job_dir), which="latest")
    assert state and all(hasattr(v, "shape") for v in state.values())

    # the GPU worker is busy: the restart (on the CPU) can only go to the other worker
    blocker_path = write_notebook("blocker", [BLOCKER], "seconds: float = 60")
    blocker = await jobs_api.submit(blocker_path, resources={"gpus": 1})

    async def blocking() -> dict[str, Any] | None:
        current = await jobs_api.get(blocker["id"])
        return current if current["processes"].get("runner", {}).get("worker") else None

    await wait_for(blocking, 120)
    last_epoch = stopped["latest_metrics"]["epoch"]
    child = await jobs_api.control(job["id"], "restart", expect=201,
                                   parameters={"epochs": int(last_epoch) + 1},
                                   resources={"gpus": 0})
    assert "stopped-step" in child["resume_from"]
    done = await jobs_api.wait(child["id"], timeout=240)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    assert await _worker_name(api, done) == CPU_WORKER
    epochs = await jobs_api.metrics(child["id"], names="epoch", max_points=10000)
    seen = {b["last"] for b in epochs["series"][0]["buckets"]}
    assert min(seen) == last_epoch  # resumed from the shipped checkpoint, not epoch 1
    model = notebench.load_model(str(services.jobs.runs_dir / child["id"]))  # its final model
    assert model and all(hasattr(v, "shape") for v in model.values())
    await jobs_api.control(blocker["id"], "stop")
