"""A server SIGKILLed mid-job and started again: adoption, no lost metric, streams resume."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import psutil

from tests.server_process import ServerProcess
from tests.sse_client import open_sse
from tests.waiting import wait_until

from .conftest import gone, notebook

STEPS = 500
STEADY = f"""
import time
import notebench
for step in range({STEPS}):
    notebench.report(step=step, total_steps={STEPS}, loss=1.0 / (step + 1))
    time.sleep(0.03)
"""
SLEEPER = "import time\nopen('up.txt', 'w').write('up')\ntime.sleep(600)"
QUICK = "x = 1"


def job(server: ServerProcess, job_id: str) -> dict:
    status, body = server.request("GET", f"lifecycle/jobs/{job_id}")
    assert status == 200, body
    return body


def test_a_killed_server_adopts_its_jobs_and_loses_nothing(tmp_path: Path):
    import nbformat

    root = tmp_path / "root"
    (root / "nbs").mkdir(parents=True)
    for name, cell in (("steady", STEADY), ("sleeper", SLEEPER), ("quick", QUICK)):
        nbformat.write(notebook([cell]), root / "nbs" / f"{name}.ipynb")
    server = ServerProcess(root, extra=["--NotebenchJobService.cpu_slots=2",
                                        "--NotebenchJobService.tick_seconds=0.2"])
    server.start()
    try:
        asyncio.run(_scenario(server, root))
    finally:
        server.stop()


async def _scenario(server: ServerProcess, root: Path) -> None:
    status, steady = server.request("POST", "lifecycle/jobs", {"notebook": "nbs/steady.ipynb"})
    assert status == 201, steady
    status, sleeper = server.request("POST", "lifecycle/jobs", {"notebook": "nbs/sleeper.ipynb"})
    assert status == 201
    status, quick = server.request("POST", "lifecycle/jobs", {"notebook": "nbs/quick.ipynb"})
    assert status == 201
    auth = {"Authorization": f"token {server.token}"}
    path = f"{server.base_url}notebench/api/lifecycle/jobs/{steady['id']}/stream"
    first = await open_sse(server.port, path, headers=auth)

    def streamed_steps(conn) -> list[int]:
        return [p["step"] for f in conn.frames if f.event == "metrics"
                for p in f.data["data"]["points"]]

    deadline = time.monotonic() + 60
    while len(streamed_steps(first)) < 20 and time.monotonic() < deadline:
        await first.read_for(0.2)
    assert len(streamed_steps(first)) >= 20
    last_id = first.last_id
    seen_before = streamed_steps(first)
    first.close()
    sleeping = wait_until(lambda: "kernel" in job(server, sleeper["id"])["processes"]
                          and job(server, sleeper["id"]))
    assert job(server, quick["id"])["state"] == "queued"  # two slots, both taken
    runner_pid = job(server, steady["id"])["processes"]["runner"]["pid"]

    server.kill()
    # while no server runs: the steady job keeps training, the sleeper's processes die
    for role in ("runner", "kernel"):
        process = sleeping["processes"][role]
        os.killpg(process["pgid"], signal.SIGKILL)
    time.sleep(1.5)
    assert psutil.pid_exists(runner_pid), "the job died with its server"
    server.start()

    adopted = job(server, steady["id"])
    assert adopted["state"] == "running", adopted
    resume = {**auth, "Last-Event-ID": str(last_id)}
    second = await open_sse(server.port, path, headers=resume)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        await second.read_for(0.3)
        states = [f.data["data"]["state"] for f in second.frames if f.event == "state"]
        if "succeeded" in states:
            break
    second.close()
    ids = [f.id for f in second.frames if f.id is not None]
    assert ids == sorted(set(ids)) and min(ids) > last_id
    assert seen_before + streamed_steps(second) == list(range(STEPS)), "the stream has a gap"

    done = job(server, steady["id"])
    assert done["state"] == "succeeded", done
    status, metrics = server.request("GET", f"lifecycle/jobs/{steady['id']}/metrics"
                                     "?names=loss&max_points=10000")
    assert metrics["series"][0]["count"] == STEPS
    steps = [b["x"] for b in metrics["series"][0]["buckets"]]
    assert steps == list(range(STEPS))
    status, logs = server.request("GET", f"lifecycle/jobs/{steady['id']}/logs?source=jobs")
    assert any("adopted" in r["message"] for r in logs["records"])

    lost = wait_until(lambda: job(server, sleeper["id"])["state"] == "failed"
                      and job(server, sleeper["id"]))
    assert "not running" in lost["reason"]
    assert all(gone(p["pid"]) for p in sleeping["processes"].values())
    follower = wait_until(lambda: job(server, quick["id"])["state"] == "succeeded", 90)
    assert follower
