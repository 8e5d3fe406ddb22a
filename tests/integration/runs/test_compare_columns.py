"""Interactive runs with parameters and tags compare with jobs in MLflow-style columns."""

from __future__ import annotations

import json
import os
from pathlib import Path

from notebench.jobprotocol import new_job_id
from tests.integration.test_kernel_side import run_in_kernel

from .conftest import TERMINAL, wait_for

TRAIN = """
import notebench
for step in range(steps):
    notebench.report(step=step, loss=lr / (step + 1))
"""
RUN = """
import notebench
run = notebench.start_run("by hand", params={"lr": 0.5, "model": "mlp", "steps": 3},
                          tags=["manual", "cmp"])
for step in range(3):
    notebench.report(step=step, loss=0.5 / (step + 1))
run.end()
print(run.id)
"""
COMPARE = """
import json, notebench
result = notebench.jobs.compare(["{job}", "{run}"])
frame = result.frame
print(json.dumps({"index": frame.index.tolist(), "columns": list(frame.columns),
                  "differing": result.differing, "differing_columns": result.differing_columns,
                  "metrics": result.metrics, "attrs": dict(frame.attrs),
                  "rows": frame.reset_index().to_dict(orient="records")}, default=str))
"""


async def _ended(api, job_id: str) -> dict | None:
    response = await api("GET", f"lifecycle/jobs/{job_id}")
    if response.status == 404:
        return None  # not discovered yet
    assert response.status == 200, response.body
    return response.body if response.body["state"] in TERMINAL else None


async def test_interactive_run_params_and_tags_compare_with_a_job(
        jp_serverapp, http_server_client, write_notebook, jobs_api, api):
    path = write_notebook("cmpcols", [TRAIN], "lr: float = 0.1\nmodel = 'cnn'\nsteps: int = 3")
    job = await jobs_api.submit(path, parameters={"lr": 0.2})
    run_id = (await run_in_kernel(jp_serverapp, RUN)).strip().splitlines()[-1]
    run = await wait_for(lambda: _ended(api, run_id), 60)
    assert run["state"] == "succeeded" and run["kind"] == "interactive"
    params = {"lr": 0.5, "model": "mlp", "steps": 3}
    assert run["parameters"] == run["resolved_parameters"] == params
    assert run["tags"] == ["manual", "cmp"]
    tagged = await api("GET", "lifecycle/jobs", params={"tag": "manual"})
    assert [j["id"] for j in tagged.body["jobs"]] == [run_id]
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "succeeded", done

    table = (await api("GET", "lifecycle/jobs/compare",
                       params={"ids": f"{job['id']},{run_id}"})).body
    assert table["differing"] == ["lr", "model"]
    rows = {p["name"]: p["resolved"] for p in table["parameters"]}
    assert rows["model"] == {job["id"]: "cnn", run_id: "mlp"}
    assert rows["steps"] == {job["id"]: 3, run_id: 3}

    code = COMPARE.replace("{job}", job["id"]).replace("{run}", run_id)
    result = json.loads((await run_in_kernel(jp_serverapp, code)).strip().splitlines()[-1])
    assert result["index"] == [job["id"], run_id]
    assert result["columns"] == ["name", "state", "duration", "model", "params.lr",
                                 "params.model", "params.steps", "metrics.loss.final",
                                 "metrics.loss.best"]
    assert result["differing"] == ["lr", "model"] and result["metrics"] == ["loss"]
    assert result["differing_columns"] == ["params.lr", "params.model"]
    assert result["attrs"] == {}
    first, second = result["rows"]
    # a parameter called ``model`` stays apart from the job's model (none registered)
    assert (first["params.model"], second["params.model"]) == ("cnn", "mlp")
    assert first["model"] is None and second["model"] is None
    assert (first["name"], second["name"]) == (done["name"], "by hand")
    assert (first["params.lr"], second["params.lr"]) == (0.2, 0.5)
    assert first["metrics.loss.final"] == 0.2 / 3 and second["metrics.loss.best"] == 0.5 / 3
    assert first["state"] == second["state"] == "succeeded"


async def test_invalid_params_in_run_json_are_ignored_with_a_warning(
        jp_serverapp, http_server_client, services, jobs_api, api):
    run_id = new_job_id("interactive")
    directory = Path(services.jobs.runs_dir) / run_id
    directory.mkdir(parents=True)
    (directory / "events.jsonl").write_text(json.dumps(
        {"t": 1.0, "kind": "run_end", "status": "succeeded"}) + "\n")
    (directory / "run.json").write_text(json.dumps({
        "id": run_id, "name": "hand-written", "kind": "interactive", "pid": os.getpid(),
        "started": 1.0, "params": {"lr": 0.1, "x": [1] * 40_000}, "tags": ["kept?"]}))
    run = await wait_for(lambda: _ended(api, run_id), 60)
    assert run["name"] == "hand-written" and run["state"] == "succeeded"
    assert run["parameters"] == {} and run["tags"] == []
    records = await jobs_api.logs(run_id, source="jobs")
    warned = [r for r in records if r["level"] == "warning"]
    assert any("bytes as JSON" in r["message"] for r in warned), records
