"""``start_run()`` in an ordinary notebook kernel shows up as a run with its metrics."""

from __future__ import annotations

import os

from .conftest import wait_for

START = """
import notebench
run = notebench.start_run("my interactive run")
for i in range(20):
    notebench.report(step=i, total_steps=20, loss=1.0 / (i + 1))
notebench.tracking.flush()
print(run.id)
"""
STOP = """
print("stop:", notebench.should_stop())
if notebench.should_stop():
    run.end("stopped")
"""


async def test_start_run_in_a_kernel_is_a_run_with_its_metrics(jp_serverapp, jobs_api, api,
                                                                services):
    assert os.environ["NOTEBENCH_RUNS_DIR"] == str(services.jobs.runs_dir)
    manager = jp_serverapp.kernel_manager
    kernel_id = await manager.start_kernel(kernel_name="python3")
    client = manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        outputs: list[str] = []

        def collect(msg):
            if msg["msg_type"] == "stream":
                outputs.append(msg["content"]["text"])

        reply = await client.execute_interactive(START, timeout=60, output_hook=collect)
        assert reply["content"]["status"] == "ok", reply["content"]
        run_id = "".join(outputs).strip().splitlines()[-1]
        assert run_id.startswith("r-")

        async def registered():
            response = await api("GET", "lifecycle/jobs", params={"kind": "interactive"})
            jobs = [j for j in response.body["jobs"] if j["id"] == run_id]
            return jobs[0] if jobs and jobs[0]["progress"].get("step") == 19 else None

        run = await wait_for(registered, 30)
        assert run["state"] == "running" and run["name"] == "my interactive run"
        metrics = await jobs_api.metrics(run_id, names="loss")
        assert metrics["series"][0]["count"] == 20
        refused = await jobs_api.control(run_id, "pause", expect=409)
        assert refused["error"]["details"]["state"] == "running"
        stopping = await jobs_api.control(run_id, "stop")
        assert stopping["state"] == "stopping"
        outputs.clear()
        reply = await client.execute_interactive(STOP, timeout=60, output_hook=collect)
        assert "stop: True" in "".join(outputs)
        done = await jobs_api.wait(run_id, timeout=30)
        assert done["state"] == "stopped"
        assert done["latest_metrics"]["loss"] == 1.0 / 20
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(kernel_id, now=True)
