"""Sweeps (a grid of jobs in one group) and clones with edits."""

from __future__ import annotations

import nbformat

REPORT = """
import notebench
notebench.report(step=0, lr=lr, batch_size=batch_size, epochs=epochs, marker=1.0)
"""
PARAMS = "lr: float = 0.1\nbatch_size: int = 16\nepochs: int = 1"


async def test_two_by_two_sweep_is_one_group_compared(jobs_api, write_notebook, api):
    path = write_notebook("sweep", [REPORT], PARAMS)
    bad = await api("POST", "lifecycle/sweeps", {"notebook": path,
                                                 "grid": {"lr": [0.1, "x"]}})
    assert bad.status == 400 and bad.body["error"]["code"] == "invalid_parameters"
    assert (await api("GET", "lifecycle/jobs")).body["total"] == 0  # nothing was queued

    response = await api("POST", "lifecycle/sweeps", {
        "notebook": path, "grid": {"lr": [0.001, 0.01], "batch_size": [32, 64]},
        "parameters": {"epochs": 2}, "priority": 3, "name": "grid", "tags": ["sw"]})
    assert response.status == 201, response.body
    sweep = response.body
    jobs = sweep["jobs"]
    assert len(jobs) == 4 and sweep["job_count"] == 4
    assert {j["sweep_id"] for j in jobs} == {sweep["id"]}
    assert {j["priority"] for j in jobs} == {3}
    combos = {(j["parameters"]["lr"], j["parameters"]["batch_size"]) for j in jobs}
    assert combos == {(0.001, 32), (0.001, 64), (0.01, 32), (0.01, 64)}
    assert len({j["name"] for j in jobs}) == 4 and all(j["name"].startswith("grid ")
                                                       for j in jobs)
    for job in jobs:
        done = await jobs_api.wait(job["id"])
        assert done["state"] == "succeeded", done
        assert done["latest_metrics"]["epochs"] == 2

    listed = await api("GET", "lifecycle/jobs", params={"sweep_id": sweep["id"]})
    assert {j["id"] for j in listed.body["jobs"]} == {j["id"] for j in jobs}
    sweeps = await api("GET", "lifecycle/sweeps")
    assert sweeps.body["sweeps"][0]["id"] == sweep["id"]
    assert sweeps.body["sweeps"][0]["states"] == {"succeeded": 4}
    one = await api("GET", f"lifecycle/sweeps/{sweep['id']}")
    assert one.status == 200
    table = one.body["compare"]
    assert sorted(table["differing"]) == ["batch_size", "lr"]
    assert len(table["jobs"]) == 4
    assert {r["metrics"]["lr"]["final"] for r in table["jobs"]} == {0.001, 0.01}
    missing = await api("GET", "lifecycle/sweeps/s-000000000000")
    assert missing.status == 404


async def test_clone_with_one_edited_parameter(jobs_api, write_notebook, api, jp_root_dir):
    path = write_notebook("clone", [REPORT], PARAMS)
    parent = await jobs_api.submit(path, parameters={"lr": 0.5, "batch_size": 8},
                                   tags=["orig"], name="parent")
    parent = await jobs_api.wait(parent["id"])
    assert parent["state"] == "succeeded"
    # a later edit of the notebook does not reach the clone: it copies the snapshot
    nb = nbformat.read(jp_root_dir / path, as_version=4)
    nb.cells[-1].source = "raise RuntimeError('edited')"
    nbformat.write(nb, jp_root_dir / path)

    clone = await jobs_api.submit(from_job=parent["id"], parameters={"lr": 0.25})
    assert clone["cloned_from"] == parent["id"] and clone["parent_id"] is None
    assert clone["parameters"] == {"lr": 0.25, "batch_size": 8}
    assert clone["resolved_parameters"] == {"lr": 0.25, "batch_size": 8, "epochs": 1}
    assert clone["tags"] == ["orig"] and clone["name"] == "parent"
    assert clone["notebook"]["sha256"] == parent["notebook"]["sha256"]
    done = await jobs_api.wait(clone["id"])
    assert done["state"] == "succeeded", done
    assert done["latest_metrics"]["lr"] == 0.25 and done["latest_metrics"]["batch_size"] == 8

    both = await api("POST", "lifecycle/jobs", {"from_job": parent["id"], "notebook": path})
    assert both.status == 400
    unknown = await api("POST", "lifecycle/jobs", {"from_job": "j-000000000000"})
    assert unknown.status == 400 and unknown.body["error"]["code"] == "unknown_job"
