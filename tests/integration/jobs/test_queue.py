"""The queue: slots, priority then age, cancellation of queued jobs."""

from __future__ import annotations

import itertools

import pytest

from notebench.server.jobs.queue import Slots, Waiting, admit

from .conftest import wait_for

ONE_SLOT = {"cpu_slots": 1, "stop_grace_seconds": 2.0, "kill_grace_seconds": 1.0,
            "tick_seconds": 0.2, "stall_minutes": 0.0}
BLOCK = "import os, time\nwhile not os.path.exists('release'):\n    time.sleep(0.05)"


def test_admission_by_priority_then_age_per_pool():
    waiting = [Waiting("old-low", 0, 1.0, 1), Waiting("new-high", 5, 3.0, 3),
               Waiting("mid", 1, 2.0, 2), Waiting("gpu", 0, 0.5, 0, gpus=1),
               Waiting("gpu-pinned", 9, 4.0, 4, gpu_uuids=("GPU-b",))]
    admitted = admit(waiting, Slots(cpu_free=2, gpus_free=["GPU-a", "GPU-b"]))
    assert [(a.job_id, a.gpu_uuids) for a in admitted] == [
        ("gpu-pinned", ("GPU-b",)), ("new-high", ()), ("mid", ()), ("gpu", ("GPU-a",))]
    # a job that does not fit holds back those behind it in its pool
    blocked = admit([Waiting("two-gpus", 5, 1.0, 1, gpus=2), Waiting("one-gpu", 0, 2.0, 2,
                                                                     gpus=1)],
                    Slots(cpu_free=0, gpus_free=["GPU-a"]))
    assert blocked == []


def test_counted_cpus_must_be_free_on_one_machine():
    """Where a cluster counts CPUs, a job asking for more than any worker has free waits,
    and holds back the CPU jobs behind it; without counted CPUs only slots matter."""
    big, small = Waiting("big", 5, 1.0, 1, cpus=8), Waiting("small", 0, 2.0, 2, cpus=2)
    assert admit([big, small], Slots(cpu_free=4, cpu_units=6)) == []
    admitted = admit([big, small, Waiting("plain", 0, 3.0, 3)], Slots(cpu_free=4, cpu_units=8))
    assert [a.job_id for a in admitted] == ["big"]  # 'small' no longer fits: 'plain' waits
    assert [a.job_id for a in admit([big, small], Slots(cpu_free=2))] == ["big", "small"]


@pytest.mark.parametrize("jobs_config", [ONE_SLOT])
async def test_one_slot_runs_three_jobs_one_after_another_by_priority(
        jobs_api, write_notebook, services):
    blocker_path = write_notebook("blocker", [BLOCK])
    quick = write_notebook("quick", ["import time\ntime.sleep(0.3)"])
    blocker = await jobs_api.submit(blocker_path)
    await jobs_api.wait(blocker["id"], "running")
    low = await jobs_api.submit(quick, priority=0, name="low")
    high = await jobs_api.submit(quick, priority=5, name="high")
    mid = await jobs_api.submit(quick, priority=1, name="mid")
    queued = [await jobs_api.get(j["id"]) for j in (low, high, mid)]
    assert [j["state"] for j in queued] == ["queued"] * 3
    assert [j["queue_position"] for j in queued] == [3, 1, 2]
    job_dir = services.workspace.root("artifacts") / "jobs" / blocker["id"]
    (job_dir / "release").write_text("go")
    done = [await jobs_api.wait(j["id"], timeout=120) for j in (high, mid, low)]
    assert all(j["state"] == "succeeded" for j in done)
    order = sorted(done, key=lambda j: j["started"])
    assert [j["name"] for j in order] == ["high", "mid", "low"]
    blocker_done = await jobs_api.get(blocker["id"])
    chain = [blocker_done, *order]
    for earlier, later in itertools.pairwise(chain):
        assert later["started"] >= earlier["ended"], "two jobs shared the one slot"


@pytest.mark.parametrize("jobs_config", [ONE_SLOT])
async def test_a_cancelled_queued_job_never_starts(jobs_api, write_notebook, services):
    blocker_path = write_notebook("blocker", [BLOCK])
    marker = write_notebook("marker", ["open('ran.txt', 'w').write('ran')"])
    blocker = await jobs_api.submit(blocker_path)
    await jobs_api.wait(blocker["id"], "running")
    waiting = await jobs_api.submit(marker)
    cancelled = await jobs_api.control(waiting["id"], "cancel")
    assert cancelled["state"] == "cancelled" and cancelled["started"] is None
    refused = await jobs_api.control(blocker["id"], "cancel", expect=409)
    assert refused["error"]["details"]["state"] == "running"
    runs = services.workspace.root("artifacts") / "jobs"
    (runs / blocker["id"] / "release").write_text("go")
    await jobs_api.wait(blocker["id"])
    follower = await jobs_api.submit(marker)  # the slot is free again: proof the queue moved
    await jobs_api.wait(follower["id"])
    final = await jobs_api.get(waiting["id"])
    assert final["state"] == "cancelled" and final["started"] is None
    cancelled_dir = runs / waiting["id"]
    assert not (cancelled_dir / "ran.txt").exists()
    assert not (cancelled_dir / "runner.jsonl").exists()
    assert not (cancelled_dir / "papermill.log").exists()
    await wait_for(lambda: (runs / follower["id"] / "ran.txt").exists(), 5)


ENV_DUMP = """
import json, os
keys = ["CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
        "NOTEBENCH_NUM_THREADS", "NOTEBENCH_JOB_ID", "NOTEBENCH_JOB_DIR"]
json.dump({k: os.environ.get(k) for k in keys}, open("env.json", "w"))
import time
while not os.path.exists("release"):
    time.sleep(0.05)
"""


@pytest.mark.parametrize("jobs_config", [ONE_SLOT])
async def test_gpu_slots_pin_devices_by_uuid_and_cpus_set_threads(jobs_api, write_notebook,
                                                                  services):
    import json

    # two GPUs as the driver would list them (no GPU is needed: the job only reads its env)
    services.jobs.machine.update({"cores": 4, "gpu_uuids": ["GPU-aaaa", "GPU-bbbb"]})
    path = write_notebook("env", [ENV_DUMP])
    runs = services.workspace.root("artifacts") / "jobs"
    first = await jobs_api.submit(path, resources={"gpus": 1, "cpus": 3})
    other = await jobs_api.submit(path, resources={"gpus": 1})
    pinned = await jobs_api.submit(path, resources={"gpus": ["GPU-aaaa"]})
    cpu = await jobs_api.submit(path, resources={"gpus": 0})
    bad = await jobs_api.submit(path, resources={"gpus": ["GPU-nope"]}, expect=400)
    assert bad["error"]["code"] == "invalid_resources"
    for job in (first, other, cpu):
        await wait_for(lambda j=job: (runs / j["id"] / "env.json").exists(), 60)
    assert (await jobs_api.get(pinned["id"]))["state"] == "queued"  # GPU-aaaa is taken
    env = {j["id"]: json.loads((runs / j["id"] / "env.json").read_text())
           for j in (first, other, cpu)}
    assert env[first["id"]]["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa"
    assert env[first["id"]]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env[first["id"]]["OMP_NUM_THREADS"] == "3" == env[first["id"]]["MKL_NUM_THREADS"]
    assert env[other["id"]]["CUDA_VISIBLE_DEVICES"] == "GPU-bbbb"
    assert env[cpu["id"]]["CUDA_VISIBLE_DEVICES"] == ""  # a CPU job sees no GPU
    assert env[cpu["id"]]["NOTEBENCH_NUM_THREADS"] == "1"  # 4 cores / (1 CPU + 2 GPU slots)
    assert env[cpu["id"]]["NOTEBENCH_JOB_ID"] == cpu["id"]
    (runs / first["id"] / "release").write_text("go")
    await wait_for(lambda: (runs / pinned["id"] / "env.json").exists(), 60)
    pinned_env = json.loads((runs / pinned["id"] / "env.json").read_text())
    assert pinned_env["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa"
    for job in (pinned, other, cpu):
        (runs / job["id"] / "release").write_text("go")
    for job in (first, pinned, other, cpu):
        assert (await jobs_api.wait(job["id"]))["state"] == "succeeded"
