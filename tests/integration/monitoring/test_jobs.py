"""Monitoring of real jobs: per-job resource figures and the built-in training alerts."""

from __future__ import annotations

import nbformat
import pytest

from tests.waiting import job_ticks

from .conftest import INTERVAL, wait_for

BUSY = """
import time
blob = bytearray(b"x" * 64_000_000)  # resident, not just reserved
t0 = time.time()
n = 0
while time.time() - t0 < 25:
    n += 1
"""

FAILS = """
raise RuntimeError("the data loader exploded")
"""

STALLS = """
import json, time
with open("events.jsonl", "a") as f:
    f.write(json.dumps({"t": time.time(), "kind": "metrics", "step": 1,
                        "metrics": {"loss": 0.5}}) + "\\n")
time.sleep(30)
"""

NAN_LOSS = """
import json, time
with open("events.jsonl", "a") as f:
    for step, loss in ((1, 0.9), (2, {"nonfinite": "nan"})):
        f.write(json.dumps({"t": time.time(), "kind": "metrics", "step": step,
                            "metrics": {"loss": loss, "lr": 0.1}}) + "\\n")
        f.flush()
        time.sleep(0.5)
time.sleep(30)
"""


@pytest.fixture
def write_notebook(jp_root_dir):
    def write(name: str, source: str) -> str:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                     "display_name": "Python 3"}
        nb.cells.append(nbformat.v4.new_code_cell(source))
        folder = jp_root_dir / "nbs"
        folder.mkdir(exist_ok=True)
        nbformat.write(nb, folder / f"{name}.ipynb")
        return f"nbs/{name}.ipynb"

    return write


@pytest.fixture
def submit(api):
    async def submit(path: str) -> dict:
        response = await api("POST", "lifecycle/jobs", {"notebook": path}, validate=False)
        assert response.status == 201, response.body
        return response.body

    return submit


@pytest.fixture
def monitoring_config():
    return {"interval": INTERVAL, "pss_interval": 1.0, "job_stall_minutes": 0.05}


async def test_per_job_figures_of_a_running_job(api, write_notebook, submit, monitoring):
    job = await submit(write_notebook("busy", BUSY))
    job_id = job["id"]

    def usage():
        sample = monitoring.latest_sample or {}
        figures = (sample.get("jobs") or {}).get(job_id)
        if figures and figures["cpu_percent"] > 20 and figures["rss_bytes"] > 64e6 \
                and figures["pss_bytes"]:
            return figures
        return None

    figures = await wait_for(usage, timeout=60)
    assert figures["processes"] >= 2  # the runner and the kernel at least
    assert figures["pss_bytes"] > 0 and figures["gpu_memory_bytes"] is None  # no GPU here
    # the job's own record shows the same figures (one source: the sampler)
    record = (await api("GET", f"lifecycle/jobs/{job_id}", validate=False)).body
    assert record["usage"] is not None and record["usage"]["rss_bytes"] > 64e6
    # and the history and Prometheus carry them
    history = (await api("GET", "monitoring/metrics",
                         params={"names": "job_*", "since": "-5"})).body
    assert any(s["labels"].get("job_id") == job_id and s["name"] == "job_cpu_percent"
               for s in history["series"])
    text = monitoring.exporter.render().decode()
    assert f'notebench_job_resident_memory_bytes{{job_id="{job_id}"}}' in text
    await api("POST", f"lifecycle/jobs/{job_id}/control", {"action": "stop"}, validate=False)
    await wait_for(lambda: job_id not in (monitoring.latest_sample or {}).get("jobs", {}),
                   timeout=30)


async def test_training_alerts_fire_on_real_jobs(api, write_notebook, submit, alerts,
                                                 monitoring, services, job_clock):
    # The jobs start one after another (each once the one before has shown its kernel
    # works): three kernels starting at once on a loaded 2-core machine have missed their
    # 60 s start-up window, and kernel start-up is not what this test is about.
    failing = await submit(write_notebook("fails", FAILS))

    async def firing(rule: str, job_id: str) -> dict | None:
        body = await alerts()
        for alert in body["active"]:
            if alert["rule"] == rule and alert["labels"].get("job_id") == job_id \
                    and alert["state"] == "firing":
                return alert
        return None

    failed = await wait_for(lambda: firing("job_failed", failing["id"]), timeout=90)
    assert failed["severity"] == "critical"
    assert "the data loader exploded" in failed["message"]
    assert failed["labels"]["job_name"] == "fails"

    stalling = await submit(write_notebook("stalls", STALLS))

    async def reported() -> bool:
        job = (await api("GET", f"lifecycle/jobs/{stalling['id']}", validate=False)).body
        return "loss" in job["latest_metrics"]

    await wait_for(reported, timeout=90)
    nan = await submit(write_notebook("nan_loss", NAN_LOSS))
    nonfinite = await wait_for(lambda: firing("job_loss_nonfinite", nan["id"]), timeout=90)
    assert nonfinite["labels"]["metric_name"] == "loss"  # lr is not a loss
    assert "non-finite loss" in nonfinite["message"]

    await job_ticks(services.jobs)  # the job service's tick saw the metric
    assert services.jobs.seconds_since_metric(stalling["id"]) == 0.0
    assert not await firing("job_stalled", stalling["id"])
    job_clock.advance(4)  # over job_stall_minutes (3 s) of active time without a metric
    stalled = await wait_for(lambda: firing("job_stalled", stalling["id"]), timeout=90)
    assert stalled["value"] > 3  # active seconds since the job's last metric
    by_state = (await api("GET", "monitoring/stats")).body["jobs"]["by_state"]
    await wait_for(lambda: monitoring.jobs_by_state.get("failed") == 1, timeout=15)
    assert by_state is not None

    # a stalled job that is stopped resolves its alert
    for job in (stalling, nan):
        await api("POST", f"lifecycle/jobs/{job['id']}/control", {"action": "stop"},
                  validate=False)
    await alerts.wait("job_stalled", "resolved", timeout=60, episode=stalled["episode"])
