"""A job's life: submission, running with streamed metrics, success and failure."""

from __future__ import annotations

import asyncio

from tests.sse_client import open_sse

REPORT_LOOP = """
import sys, time
import notebench
for step in range(steps):
    notebench.report(step=step, total_steps=steps, loss=1.0 / (step + 1), acc=step / steps)
    time.sleep(delay)
print("trained", steps, "steps")
"""


async def test_job_runs_to_success_with_streamed_metrics(jobs_api, write_notebook, api,
                                                         jp_http_port, jp_base_url,
                                                         jp_auth_header):
    path = write_notebook("train", [REPORT_LOOP, "result = 'done'"],
                          "steps: int = 20\ndelay = 0.05  # seconds per step")
    job = await jobs_api.submit(path, parameters={"steps": 30}, name="tiny", tags=["t1"])
    assert job["state"] in ("queued", "running")
    assert job["parameters"] == {"steps": 30}
    assert job["resolved_parameters"] == {"steps": 30, "delay": 0.05}
    stream = await open_sse(jp_http_port,
                            f"{jp_base_url}notebench/api/lifecycle/jobs/{job['id']}/stream",
                            headers=jp_auth_header)
    assert stream.status == 200
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "succeeded", done
    await stream.read_for(1.0)
    stream.close()
    kinds = [f.event for f in stream.frames]
    assert kinds[0] == "snapshot"
    assert "metrics" in kinds and "progress" in kinds and "state" in kinds
    streamed = [p for f in stream.frames if f.event == "metrics"
                for p in f.data["data"]["points"]]
    assert [p["step"] for p in streamed] == list(range(30))
    # each metrics event also carries every metric's latest value: its last point's
    for frame in (f for f in stream.frames if f.event == "metrics"):
        last = frame.data["data"]["points"][-1]["metrics"]
        assert frame.data["data"]["latest"] == {**frame.data["data"]["latest"], **last}
        assert set(frame.data["data"]["latest"]) == {"loss", "acc"}
    states = [f.data["data"]["state"] for f in stream.frames if f.event == "state"]
    assert states[-1] == "succeeded"
    # the server derives what front ends show: headline metrics and the progress fraction
    for frame in (f for f in stream.frames if f.event == "metrics"):
        data = frame.data["data"]
        assert data["headline"] == {"loss": {"name": "loss", "value": data["latest"]["loss"]},
                                    "accuracy": {"name": "acc", "value": data["latest"]["acc"]}}
    stepped = [f.data["data"]["progress"] for f in stream.frames if f.event == "progress"
               and f.data["data"]["progress"].get("total_steps")]
    assert stepped and all(p["fraction"] == round(p["step"] / 30, 4) for p in stepped)
    assert done["headline"] == {"loss": {"name": "loss", "value": 1.0 / 30},
                                "accuracy": {"name": "acc", "value": 29 / 30}}
    assert done["progress"]["fraction"] == 1.0 and done["progress"]["fraction_steps"] == 0.9667
    assert done["progress"]["cells"] >= 3 and done["progress"]["step"] == 29
    assert done["latest_metrics"]["loss"] == 1.0 / 30
    assert done["started"] >= done["created"] and done["ended"] >= done["started"]
    metrics = await jobs_api.metrics(job["id"])
    counts = {s["name"]: s["count"] for s in metrics["series"]}
    assert counts == {"loss": 30, "acc": 30}
    logs = await jobs_api.logs(job["id"])
    assert any("trained 30 steps" in r["message"] for r in logs)
    output = await api("GET", f"lifecycle/jobs/{job['id']}/output")
    assert output.status == 200 and len(output.body["cells"]) >= 3
    listing = await api("GET", f"lifecycle/artifacts/{job['id']}")
    names = {f["path"] for f in listing.body["files"]}
    assert {"output.ipynb", "papermill.log", "metrics.csv", "notebook.ipynb"} <= names
    assert done["artifact_count"] == len(listing.body["files"])


async def test_notebook_that_raises_fails_with_cell_and_traceback(jobs_api, write_notebook):
    path = write_notebook("boom", ["x = 1", "def f():\n    raise ValueError('bad value')\nf()",
                                   "print('never')"], "n = 1")
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "failed"
    error = done["error"]
    assert error["ename"] == "ValueError" and error["evalue"] == "bad value"
    # cells: parameters, injected parameters, x = 1, the raising one
    assert error["cell_index"] == 3
    assert any("bad value" in line for line in error["traceback"])
    assert "ValueError" in done["reason"]


async def test_invalid_parameters_are_refused_before_anything_runs(jobs_api, write_notebook,
                                                                  services, api):
    path = write_notebook("typed", ["pass"],
                          "import typing\nepochs: int = 3\nlr: float = 0.1\n"
                          "batch: typing.Union[int, str] = 'auto'\nname: str = 'x'")
    runs_dir = services.workspace.root("artifacts") / "jobs"
    before = set(runs_dir.iterdir()) if runs_dir.exists() else set()
    cases = [
        ({"notebook": path, "parameters": {"epochz": 3}}, "invalid_parameters"),
        ({"notebook": path, "parameters": {"epochs": "three"}}, "invalid_parameters"),
        ({"notebook": path, "parameters": {"lr": [1]}}, "invalid_parameters"),
        ({"notebook": path, "parameters": {"batch": 1.5}}, "invalid_parameters"),
        ({"notebook": "nbs/missing.ipynb"}, "unknown_notebook"),
        ({"notebook": "../outside.ipynb"}, "unknown_notebook"),
        ({"template": "no-such-template"}, "unknown_template"),
        ({}, "invalid_request"),
        ({"notebook": path, "kernel_name": "no-such-kernel"}, "unknown_kernel"),
        ({"notebook": path, "resources": {"gpus": 4}}, "invalid_resources"),
        ({"notebook": path, "timeout": -1}, "invalid_request"),
    ]
    for body, code in cases:
        response = await api("POST", "lifecycle/jobs", body)
        assert response.status == 400, (body, response.body)
        assert response.body["error"]["code"] == code, (body, response.body)
    problems = (await api("POST", "lifecycle/jobs", cases[0][0])).body["error"]["details"]
    assert problems["problems"][0]["name"] == "epochz"
    after = set(runs_dir.iterdir()) if runs_dir.exists() else set()
    assert after == before, "a refused job left a job directory"
    listing = await api("GET", "lifecycle/jobs")
    assert listing.body["total"] == 0
    # accepted: coercion of a form's strings, a Union given an int
    ok = await jobs_api.submit(path, parameters={"epochs": "5", "batch": 64, "lr": 1})
    assert ok["resolved_parameters"]["epochs"] == 5 and ok["resolved_parameters"]["lr"] == 1.0
    assert ok["resolved_parameters"]["batch"] == 64
    await jobs_api.wait(ok["id"])


async def test_listing_filters_and_pages(jobs_api, write_notebook, api, jp_http_port,
                                        jp_base_url, jp_auth_header):
    path = write_notebook("quick", ["pass"])
    every = await open_sse(jp_http_port, f"{jp_base_url}notebench/api/lifecycle/jobs/stream",
                           headers=jp_auth_header)
    a = await jobs_api.submit(path, tags=["red"])
    b = await jobs_api.submit(path, tags=["blue"])
    await asyncio.gather(jobs_api.wait(a["id"]), jobs_api.wait(b["id"]))
    await every.read_for(1.0)
    every.close()
    for job in (a, b):
        seen = [f.data["data"]["state"] for f in every.frames
                if f.event == "state" and f.data["data"]["job_id"] == job["id"]]
        assert seen == ["queued", "running", "succeeded"], seen
    red = await api("GET", "lifecycle/jobs", params={"tag": "red"})
    assert [j["id"] for j in red.body["jobs"]] == [a["id"]]
    page = await api("GET", "lifecycle/jobs", params={"limit": "1"})
    assert page.body["total"] == 2 and [j["id"] for j in page.body["jobs"]] == [b["id"]]
    done = await api("GET", "lifecycle/jobs", params={"state": "succeeded,failed"})
    assert done.body["total"] == 2
    bad = await api("GET", "lifecycle/jobs", params={"state": "nope"})
    assert bad.status == 400
    missing = await api("GET", "lifecycle/jobs/j-000000000000")
    assert missing.status == 404
