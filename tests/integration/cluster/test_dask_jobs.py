"""Jobs on a real Dask cluster: run, follow, control and lose a worker.

The server submits each job as a Dask task; the worker runs it in its own local
directory and forwards what it writes to the server's ingest routes; the server's tailer
stores it as it stores a local job's files.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.integration.jobs.conftest import bus_events, wait_for

from .conftest import CPU_WORKER, FAKE_GPU, GPU_WORKER, DaskCluster

pytestmark = pytest.mark.timeout(300)

REPORT = """
import time
import notebench
for step in range(steps):
    notebench.report(step=step, total_steps=steps, loss=1.0 / (step + 1))
    if notebench.should_stop():
        raise notebench.StopTraining()
    time.sleep(delay)
open("artifact.txt", "w").write("made on the worker")
"""
PARAMS = "steps: int = 5\ndelay: float = 0.0"
# what the runner was given, as an artifact
PINNED = """
import json, os
names = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")
open("pinned.json", "w").write(json.dumps({n: os.environ.get(n) for n in names}))
"""


def _worker_of(job: dict[str, Any]) -> str | None:
    return ((job.get("processes") or {}).get("runner") or {}).get("worker")


async def _worker_names(api: Any) -> dict[str, str]:
    """Worker address -> name, from the cluster route."""
    cluster = await api("GET", "lifecycle/cluster")
    return {w["address"]: w["name"] for w in cluster.body["workers"]}


async def test_a_job_runs_on_a_worker_and_its_files_come_back(jobs_api, write_notebook,
                                                              services, api, jp_fetch):
    path = write_notebook("remote", [REPORT], PARAMS)
    with bus_events(services.bus, "jobs", "updated") as updated:
        job = await jobs_api.submit(path, parameters={"steps": 20})
        done = await jobs_api.wait(job["id"], timeout=180)
    # the worker's first heartbeat announced where the job runs
    runner = updated[0].data["job"]["processes"]["runner"]
    assert (runner["executor"], runner["worker"]) == ("dask", _worker_of(done))
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    metrics = await jobs_api.metrics(job["id"], names="loss")
    assert metrics["series"][0]["count"] == 20  # every point once, none twice
    assert _worker_of(done) is not None  # where it ran
    job_dir = services.jobs.runs_dir / job["id"]
    assert (job_dir / "artifact.txt").read_text() == "made on the worker"
    output = await api("GET", f"lifecycle/jobs/{job['id']}/output", validate=False)
    assert output.status == 200
    # the worker's token (minted again from the workspace key) ended with the job
    token = services.job_tokens.mint(job["id"])
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("notebench", "api", "lifecycle", "jobs", job["id"], "ingest",
                       headers={"Authorization": f"token {token}"})
    assert refused.value.code == 403


async def test_a_gpu_job_goes_to_the_worker_with_the_gpu_resource(jobs_api, write_notebook,
                                                                   api, services):
    path = write_notebook("gpu", [PINNED, REPORT], PARAMS)
    too_many = await jobs_api.submit(path, resources={"gpus": 2}, expect=400)
    assert too_many["error"]["code"] == "invalid_resources"
    assert "GPU" in too_many["error"]["message"]
    job = await jobs_api.submit(path, resources={"gpus": 1})
    done = await jobs_api.wait(job["id"], timeout=180)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    assert (await _worker_names(api))[_worker_of(done)] == GPU_WORKER
    # the worker leased its device to the job and pinned it by UUID
    assert done["processes"]["runner"]["gpu_uuids"] == [FAKE_GPU]
    pinned = json.loads((services.jobs.runs_dir / job["id"] / "pinned.json").read_text())
    assert pinned["CUDA_VISIBLE_DEVICES"] == FAKE_GPU


async def test_a_worker_advertising_gpus_it_lacks_fails_the_job_saying_so(
        jobs_api, write_notebook, dask_cluster: DaskCluster):
    await asyncio.to_thread(dask_cluster.start_worker, "no-devices", "GPU=2")
    await asyncio.to_thread(dask_cluster.wait_for_workers, {"no-devices"})
    path = write_notebook("short", [REPORT], PARAMS)
    job = await jobs_api.submit(path, resources={"gpus": 2})  # only that worker has 2
    done = await jobs_api.wait(job["id"], timeout=120)
    assert done["state"] == "failed"
    assert done["reason"].startswith("failed on the worker: GpuShortage"), done["reason"]
    assert "0 free of 0" in done["reason"]


async def test_cpus_go_to_a_worker_that_advertises_them(jobs_api, write_notebook, api,
                                                        services):
    path = write_notebook("cpus", [PINNED, REPORT], PARAMS)
    for resources in ({"cpus": 3}, {"gpus": 1, "cpus": 1}):  # no worker has it all
        refused = await jobs_api.submit(path, resources=resources, expect=400)
        assert refused["error"]["code"] == "invalid_resources", refused
        assert "CPU" in refused["error"]["message"]
    job = await jobs_api.submit(path, resources={"cpus": 2})
    done = await jobs_api.wait(job["id"], timeout=180)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    assert (await _worker_names(api))[_worker_of(done)] == CPU_WORKER
    assert done["processes"]["runner"]["threads"] == 2
    pinned = json.loads((services.jobs.runs_dir / job["id"] / "pinned.json").read_text())
    assert pinned["OMP_NUM_THREADS"] == "2"
    assert pinned["CUDA_VISIBLE_DEVICES"] is None  # a worker without GPUs changes nothing


async def test_pause_resume_and_stop_reach_the_worker(jobs_api, write_notebook):
    path = write_notebook("control", [REPORT], PARAMS)
    job = await jobs_api.submit(path, parameters={"steps": 10_000, "delay": 0.05})

    async def reporting() -> dict[str, Any] | None:
        current = await jobs_api.get(job["id"])
        return current if current["latest_metrics"].get("loss") is not None else None

    await wait_for(reporting, 120)
    paused = await jobs_api.control(job["id"], "pause")
    assert paused["state"] == "paused"

    async def step() -> int:
        return int((await jobs_api.get(job["id"]))["progress"].get("step") or 0)

    async def settled() -> int | None:
        # the worker froze the job at its next contact: the step stops moving
        before = await step()
        await asyncio.sleep(1.0)
        return before if await step() == before else None

    frozen = await wait_for(settled, 30)
    await asyncio.sleep(2.0)  # a frozen job reports nothing
    still = await step()
    assert still == frozen
    await jobs_api.control(job["id"], "resume")

    async def moving() -> bool:
        return (await jobs_api.get(job["id"]))["progress"].get("step", 0) > still + 5

    await wait_for(moving, 60)
    await jobs_api.control(job["id"], "stop")
    done = await jobs_api.wait(job["id"], timeout=120)
    assert done["state"] == "stopped", (done["reason"], done["error"])


async def test_a_killed_worker_ends_its_job_worker_lost(jobs_api, write_notebook, api,
                                                        dask_cluster: DaskCluster):
    path = write_notebook("lost", [REPORT], PARAMS)
    job = await jobs_api.submit(path, parameters={"steps": 10_000, "delay": 0.05})
    name = await _running_on(jobs_api, api, job["id"])
    await asyncio.to_thread(dask_cluster.kill_worker, name)
    done = await jobs_api.wait(job["id"], timeout=120)
    assert (done["state"], done["reason"]) == ("failed", "worker_lost")
    assert done["retries"] == 0
    listed = (await api("GET", "lifecycle/jobs")).body["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]  # no retry was asked for


async def test_a_lost_job_with_retries_is_submitted_again_on_another_worker(
        jobs_api, write_notebook, api, dask_cluster: DaskCluster, services):
    path = write_notebook("retried", [REPORT], PARAMS)
    job = await jobs_api.submit(path, parameters={"steps": 10_000, "delay": 0.05}, retries=1)
    assert job["retries"] == 1
    name = await _running_on(jobs_api, api, job["id"])
    with bus_events(services.bus, "jobs", "retried") as retried:
        await asyncio.to_thread(dask_cluster.kill_worker, name)
        lost = await jobs_api.wait(job["id"], timeout=120)
        assert (lost["state"], lost["reason"]) == ("failed", "worker_lost")
        await wait_for(lambda: retried, 60)
    second = await jobs_api.get(retried[0].data["retry_id"])
    assert retried[0].data == {"job_id": job["id"], "retry_id": second["id"],
                               "retries_left": 0}
    assert second["parent_id"] == job["id"] and second["retries"] == 0
    assert second["parameters"] == job["parameters"]
    survivor = await _running_on(jobs_api, api, second["id"])
    assert survivor != name
    messages = [r["message"] for r in await jobs_api.logs(job["id"])]
    assert any(f"submitted again as job {second['id']} (0 retries left)" in m
               for m in messages), messages
    await jobs_api.control(second["id"], "stop")
    done = await jobs_api.wait(second["id"], timeout=120)
    assert done["state"] == "stopped", (done["reason"], done["error"])


async def _running_on(jobs_api: Any, api: Any, job_id: str) -> str:
    """The name of the worker a job reports from (once it does)."""
    async def placed() -> dict[str, Any] | None:
        current = await jobs_api.get(job_id)
        return current if _worker_of(current) and current["latest_metrics"] else None

    running = await wait_for(placed, 120)
    name = (await _worker_names(api))[_worker_of(running)]
    assert name in (CPU_WORKER, GPU_WORKER)
    return name


async def test_the_cluster_route_lists_the_workers(api, dask_cluster: DaskCluster):
    response = await api("GET", "lifecycle/cluster")
    assert response.status == 200, response.body
    body = response.body
    assert body["executor"] == "dask" and body["problem"] is None
    names = {w["name"] for w in body["workers"]}
    assert names == {CPU_WORKER, GPU_WORKER}
    resources = {w["name"]: w["resources"] for w in body["workers"]}
    assert resources == {GPU_WORKER: {"GPU": 1}, CPU_WORKER: {"CPU": 2}}
