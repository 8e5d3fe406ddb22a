"""Control of running jobs: pause and resume, stop, timeout, restart, a killed kernel."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from tests.authorizers import NoExecuteAuthorizer
from tests.waiting import job_ticks

from .conftest import gone, recorded_pids, wait_for

# a training loop that burns CPU, reports, checkpoints and honours should_stop()
TRAIN = """
import json, os, time
import notebench
from notebench import StopTraining
start_epoch = 0
resume = os.environ.get("NOTEBENCH_RESUME_FROM")
if resume:
    start_epoch = json.load(open(resume))["epoch"] + 1
os.makedirs("checkpoints", exist_ok=True)
for epoch in range(start_epoch, epochs):
    t_end = time.time() + epoch_seconds
    while time.time() < t_end:
        sum(i * i for i in range(2000))
    notebench.report(step=epoch, epoch=epoch, loss=1.0 / (epoch + 1))
    path = f"checkpoints/epoch-{epoch}.json"
    with open(path + ".tmp", "w") as f:
        json.dump({"epoch": epoch}, f)
    os.replace(path + ".tmp", path)
    notebench.tracking.emit("checkpoint", path=path, epoch=epoch, step=epoch, metrics={},
                            best=False)
    if notebench.should_stop():
        raise StopTraining()
"""
AFTER = "open('after.txt', 'w').write('the cell after training ran')"
PARAMS = "epochs: int = 1000\nepoch_seconds: float = 0.2"


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def first_metric(jobs_api, job_id: str, at_least: int = 1) -> dict:
    async def reported():
        job = await jobs_api.get(job_id)
        return job if job["progress"].get("step", -1) >= at_least - 1 else None

    return await wait_for(reported, 60)


async def test_pause_freezes_every_process_and_resume_continues(jobs_api, write_notebook,
                                                                services, api, job_clock):
    path = write_notebook("spin", [TRAIN, AFTER], PARAMS)
    job = await jobs_api.submit(path)
    await first_metric(jobs_api, job["id"], 2)
    job_clock.advance(5)  # five active seconds
    live = await api("GET", f"lifecycle/jobs/{job['id']}/output")  # as it stands, mid-run
    assert live.status == 200
    assert live.body["cells"][-2]["metadata"]["papermill"]["status"] == "running"
    paused = await jobs_api.control(job["id"], "pause")
    assert paused["state"] == "paused"
    pids = await services.jobs.job_pids(job["id"])
    roles = (await jobs_api.get(job["id"]))["processes"]
    assert {roles["runner"]["pid"], roles["kernel"]["pid"]} <= set(pids)

    def frozen() -> bool:  # SIGSTOP takes effect when the kernel next schedules each one
        return {psutil.Process(p).status() for p in pids} == {psutil.STATUS_STOPPED}

    await wait_for(frozen, 10)
    before_cpu = cpu_seconds(pids)
    before = await jobs_api.get(job["id"])
    assert before["duration"] == pytest.approx(5.0)
    job_clock.advance(3600)  # an hour paused
    await job_ticks(services.jobs)  # real time too (a tick or more): frozen, nothing runs
    after = await jobs_api.get(job["id"])
    assert cpu_seconds(pids) - before_cpu < 0.02, "a paused job used CPU"
    assert after["progress"]["step"] == before["progress"]["step"]
    assert after["duration"] - before["duration"] < 0.5  # paused time is not active time
    again = await jobs_api.control(job["id"], "pause", expect=409)
    assert again["error"]["details"]["state"] == "paused"
    resumed = await jobs_api.control(job["id"], "resume")
    assert resumed["state"] == "running"
    await first_metric(jobs_api, job["id"], before["progress"]["step"] + 3)
    assert cpu_seconds(pids) > before_cpu
    await jobs_api.control(job["id"], "stop")
    await jobs_api.wait(job["id"])


async def test_stop_checkpoints_skips_remaining_cells_and_leaves_no_process(
        jobs_api, write_notebook, services):
    path = write_notebook("stoppable", [TRAIN, AFTER], PARAMS)
    job = await jobs_api.submit(path)
    await first_metric(jobs_api, job["id"], 2)
    running = await jobs_api.get(job["id"])
    pids = set(recorded_pids(running)) | set(await services.jobs.job_pids(job["id"]))
    stopping = await jobs_api.control(job["id"], "stop")
    assert stopping["state"] == "stopping"
    done = await jobs_api.wait(job["id"], timeout=30)
    assert done["state"] == "stopped", done
    job_dir = services.workspace.path / done["job_dir"]
    assert not (job_dir / "after.txt").exists(), "a cell after StopTraining ran"
    assert list((job_dir / "checkpoints").glob("epoch-*.json"))
    events = (job_dir / "events.jsonl").read_text()
    assert '"kind":"stopping"' in events.replace(" ", "")
    await wait_for(lambda: all(gone(p) for p in pids), 10)
    assert pids


async def test_restart_continues_from_the_parents_last_checkpoint(jobs_api, write_notebook,
                                                                  api):
    path = write_notebook("resumable", [TRAIN], PARAMS)
    parent = await jobs_api.submit(path, parameters={"epochs": 1000})
    await first_metric(jobs_api, parent["id"], 3)
    await jobs_api.control(parent["id"], "stop")
    stopped = await jobs_api.wait(parent["id"])
    last_epoch = stopped["latest_metrics"]["epoch"]
    child = await jobs_api.control(parent["id"], "restart", expect=201,
                                   parameters={"epochs": int(last_epoch) + 4})
    assert child["parent_id"] == parent["id"]
    assert child["resume_from"].endswith(f"checkpoints/epoch-{int(last_epoch)}.json")
    done = await jobs_api.wait(child["id"])
    assert done["state"] == "succeeded", done
    metrics = await jobs_api.metrics(child["id"], names="epoch")
    epochs = [b["last"] for b in metrics["series"][0]["buckets"]]
    assert epochs == [last_epoch + 1, last_epoch + 2, last_epoch + 3]
    children = await api("GET", "lifecycle/jobs", params={"parent_id": parent["id"]})
    assert [j["id"] for j in children.body["jobs"]] == [child["id"]]
    # a succeeded or running job does not restart
    refused = await jobs_api.control(child["id"], "restart", expect=409)
    assert refused["error"]["details"]["state"] == "succeeded"


IGNORE_TERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open('started.txt', 'w').write('x')
while True:
    time.sleep(0.1)
"""


@pytest.mark.parametrize("jobs_config", [{"cpu_slots": 2, "stop_grace_seconds": 1.0,
                                          "kill_grace_seconds": 1.0, "tick_seconds": 0.2,
                                          "stall_minutes": 0.0}])
async def test_a_job_that_ignores_stop_is_killed_after_the_grace(jobs_api, write_notebook,
                                                                 services):
    path = write_notebook("stubborn", [IGNORE_TERM])
    job = await jobs_api.submit(path)
    job_dir = services.workspace.root("artifacts") / "jobs" / job["id"]
    await wait_for(lambda: (job_dir / "started.txt").exists(), 60)
    running = await jobs_api.get(job["id"])
    pids = recorded_pids(running)
    assert len(pids) == 2
    await jobs_api.control(job["id"], "stop")
    done = await jobs_api.wait(job["id"], timeout=30)
    assert done["state"] == "stopped"
    await wait_for(lambda: all(gone(p) for p in pids), 10)
    records = await jobs_api.logs(job["id"], source="jobs")
    assert any("SIGKILL" in r["message"] or "SIGTERM" in r["message"] for r in records)


async def test_timeout_fails_the_job_and_excludes_paused_time(jobs_api, write_notebook,
                                                              services, job_clock):
    path = write_notebook("slow", [TRAIN], PARAMS)
    job = await jobs_api.submit(path, timeout=6)
    await jobs_api.wait(job["id"], "running")
    job_clock.advance(2)
    await jobs_api.control(job["id"], "pause")
    job_clock.advance(7)  # longer than the timeout: paused time does not count
    await job_ticks(services.jobs)
    paused = await jobs_api.get(job["id"])
    assert paused["state"] == "paused" and paused["duration"] < 6
    assert paused["duration"] == pytest.approx(2.0)
    await jobs_api.control(job["id"], "resume")
    await job_ticks(services.jobs)
    still = await jobs_api.get(job["id"])
    assert still["state"] == "running" and still["reason"] is None  # 2 of its 6 seconds
    job_clock.advance(4.5)  # 6.5 active seconds: past the timeout
    done = await jobs_api.wait(job["id"], timeout=60)
    assert done["state"] == "failed" and done["reason"] == "timeout"
    assert 6 <= done["duration"] < 6 + 7  # active time only (plus the stop's grace)
    await wait_for(lambda: all(gone(p) for p in recorded_pids(done)), 10)


async def test_a_killed_kernel_fails_the_job(jobs_api, write_notebook):
    path = write_notebook("victim", ["import time\nwhile True:\n    time.sleep(0.1)"])
    job = await jobs_api.submit(path)

    async def cell_running():
        current = await jobs_api.get(job["id"])
        return current if current["progress"].get("cell_state") == "running" else None

    running = await wait_for(cell_running, 60)
    kernel = running["processes"]["kernel"]["pid"]
    assert running["processes"]["kernel"]["pgid"] != running["processes"]["runner"]["pgid"]
    os.kill(kernel, signal.SIGKILL)
    done = await jobs_api.wait(job["id"], timeout=60)
    assert done["state"] == "failed"
    assert "kernel died" in done["reason"]
    assert done["error"]["ename"] == "DeadKernelError"
    await wait_for(lambda: all(gone(p) for p in recorded_pids(done)), 10)


async def test_invalid_transitions_answer_409_with_the_state(jobs_api, write_notebook):
    path = write_notebook("idle", ["import time\ntime.sleep(60)"])
    job = await jobs_api.submit(path)
    await jobs_api.wait(job["id"], "running")
    for action in ("resume", "cancel", "restart"):
        refused = await jobs_api.control(job["id"], action, expect=409)
        assert refused["error"]["code"] == "invalid_transition"
        assert refused["error"]["details"]["state"] == "running"
    bad = await jobs_api.control(job["id"], "explode", expect=400)
    assert bad["error"]["code"] == "invalid_action"
    await jobs_api.control(job["id"], "stop")
    done = await jobs_api.wait(job["id"])
    for action in ("pause", "resume", "stop", "cancel"):
        refused = await jobs_api.control(job["id"], action, expect=409)
        assert refused["error"]["details"]["state"] == done["state"]


QUIET = """
import os, time
import notebench
notebench.report(x=1)
while not os.path.exists('release'):
    time.sleep(0.05)
notebench.report(x=2)
while not os.path.exists('finish'):
    time.sleep(0.05)
"""


@pytest.mark.parametrize("jobs_config", [{"cpu_slots": 2, "tick_seconds": 0.2,
                                          "stall_minutes": 0.02}])
async def test_a_job_without_metrics_is_reported_stalled(jobs_api, write_notebook, services,
                                                         job_clock):
    path = write_notebook("quiet", [QUIET])
    job = await jobs_api.submit(path)
    job_dir = services.workspace.root("artifacts") / "jobs" / job["id"]

    async def stalled(wanted: bool):
        current = await jobs_api.get(job["id"])
        return current if current["stalled"] is wanted else None

    async def reported(x: int):
        current = await jobs_api.get(job["id"])
        return current if current["latest_metrics"].get("x") == x else None

    await wait_for(lambda: reported(1), 60)
    await job_ticks(services.jobs)  # the tick saw the metric
    job_clock.advance(1.0)  # under stall_minutes (1.2 s)
    await job_ticks(services.jobs)
    assert not (await jobs_api.get(job["id"]))["stalled"]
    job_clock.advance(0.5)  # 1.5 active seconds without a metric
    await wait_for(lambda: stalled(True), 30)
    (job_dir / "release").write_text("")  # a new metric ends the stall
    current = await wait_for(lambda: stalled(False), 30)
    assert current["state"] == "running" and current["latest_metrics"]["x"] == 2
    (job_dir / "finish").write_text("")
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "succeeded" and not done["stalled"]


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": {"notebench.server": True},
                    "authorizer_class": NoExecuteAuthorizer}}],
)
async def test_submit_and_restart_need_execute_on_kernels(api, write_notebook):
    path = write_notebook("any", ["pass"])
    submit = await api("POST", "lifecycle/jobs", {"notebook": path})
    assert submit.status == 403 and "execute" in submit.body["error"]["message"]
    restart = await api("POST", "lifecycle/jobs/j-000000000000/control", {"action": "restart"})
    assert restart.status == 403
    pause = await api("POST", "lifecycle/jobs/j-000000000000/control", {"action": "pause"})
    assert pause.status == 404  # pausing needs no execute permission: the job is unknown
