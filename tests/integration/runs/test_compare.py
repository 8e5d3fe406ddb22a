"""Runs compared: parameters that differ marked, metric summaries, one step axis, ETA, disk."""

from __future__ import annotations

import time

import pytest

from .conftest import wait_for

TRAIN = """
import time
import notebench
for step in range(steps):
    notebench.report(step=step, total_steps=steps, loss=lr / (step + 1), acc=step / steps)
    time.sleep(delay)
"""
PARAMS = "lr: float = 0.1\nsteps: int = 10\ndelay: float = 0.0\nlabel = 'same'"


async def test_compare_two_runs_marks_the_differing_parameter(jobs_api, write_notebook, api):
    path = write_notebook("cmp", [TRAIN], PARAMS)
    slow = await jobs_api.submit(path, parameters={"lr": 0.1, "steps": 40, "delay": 0.1})
    fast = await jobs_api.submit(path, parameters={"lr": 0.2, "steps": 40})

    # ETA while the slow one runs: from total_steps and the step rate
    async def eta() -> dict | None:
        job = await jobs_api.get(slow["id"])
        progress = job["progress"]
        return job if job["state"] == "running" and "eta" in progress else None

    running = await wait_for(eta, 60, 0.2)
    progress = running["progress"]
    assert progress["steps_per_second"] > 0
    left = 40 - progress["step"]  # step counts the steps done
    assert 0 <= progress["eta_seconds"] <= left / progress["steps_per_second"] + 1
    assert time.time() - 1 <= progress["eta"] <= time.time() + progress["eta_seconds"] + 2
    assert running["disk_bytes"] > 0

    a = await jobs_api.wait(slow["id"])
    b = await jobs_api.wait(fast["id"])
    assert a["state"] == b["state"] == "succeeded"
    assert "eta" not in a["progress"]
    assert a["load_snippet"] and f'notebench.load_model("{a["id"]}")' in a["load_snippet"]

    # disk use: at least the files the job lists
    listing = await api("GET", f"lifecycle/artifacts/{a['id']}")
    assert a["disk_bytes"] >= sum(f["size"] for f in listing.body["files"]) > 0

    response = await api("GET", "lifecycle/jobs/compare", params={"ids": f"{a['id']},{b['id']}"})
    assert response.status == 200, response.body
    table = response.body
    assert table["ids"] == [a["id"], b["id"]]
    assert table["differing"] == ["lr", "delay"]  # in the notebook's order
    params = {p["name"]: p for p in table["parameters"]}
    assert params["lr"]["differs"] and params["lr"]["resolved"] == {a["id"]: 0.1, b["id"]: 0.2}
    assert not params["steps"]["differs"] and not params["label"]["differs"]
    assert params["label"]["given"] == {} and params["label"]["resolved"][a["id"]] == "same"
    assert params["delay"]["given"] == {a["id"]: 0.1}
    assert params["delay"]["resolved"] == {a["id"]: 0.1, b["id"]: 0.0}
    row_a, row_b = table["jobs"]
    assert row_a["state"] == "succeeded" and row_a["duration"] > 0
    loss = row_b["metrics"]["loss"]
    assert loss["mode"] == "min" and loss["count"] == 40
    assert loss["final"] == 0.2 / 40 and loss["best"] == 0.2 / 40 and loss["best_step"] == 39
    assert loss["max"] == 0.2
    acc = row_b["metrics"]["acc"]
    assert acc["mode"] == "max" and acc["best"] == 39 / 40
    assert table["metrics"] == ["acc", "loss"]

    # the series of both runs on one step axis
    response = await api("GET", "lifecycle/jobs/metrics",
                         params={"ids": f"{a['id']},{b['id']}", "names": "loss",
                                 "max_points": "8"})
    assert response.status == 200, response.body
    data = response.body
    assert data["grid"]["width"] == 5 and data["grid"]["buckets"] == 8
    xs = [[bk["x"] for bk in run["series"][0]["buckets"]] for run in data["runs"]]
    assert xs[0] == xs[1] == list(range(0, 40, 5))
    first = data["runs"][1]["series"][0]
    assert first["count"] == 40 and first["downsampled"]
    assert first["buckets"][0]["max"] == 0.2 and first["buckets"][-1]["last"] == 0.2 / 40
    # the same buckets as a single job's series with the same grid (means: to rounding)
    single = await jobs_api.metrics(b["id"], names="loss", max_points=8)
    assert single["series"][0]["buckets"] == [
        {**bk, "mean": pytest.approx(bk["mean"], rel=1e-12)} for bk in first["buckets"]]
    # the same buckets column by column (opt-in), the rest of the answer unchanged
    response = await api("GET", "lifecycle/jobs/metrics",
                         params={"ids": f"{a['id']},{b['id']}", "names": "loss",
                                 "max_points": "8", "layout": "columns"})
    assert response.status == 200, response.body
    assert response.body["layout"] == "columns" and response.body["grid"] == data["grid"]
    for run, by_rows in zip(response.body["runs"], data["runs"], strict=True):
        series = run["series"][0]
        assert {k: series[k] for k in ("name", "count", "downsampled")} == {
            k: by_rows["series"][0][k] for k in ("name", "count", "downsampled")}
        columns = series["columns"]
        rows = zip(*columns.values(), strict=True)
        assert [dict(zip(columns, values, strict=True)) for values in rows
                ] == by_rows["series"][0]["buckets"]
    response = await api("GET", "lifecycle/jobs/metrics",
                         params={"ids": a["id"], "layout": "rows"})
    assert response.status == 400 and response.body["error"]["code"] == "invalid_parameter"


async def test_runs_routes_are_not_read_as_ids(api):
    for route in ("lifecycle/jobs/compare", "lifecycle/jobs/metrics"):
        response = await api("GET", route)
        assert response.status == 400 and response.body["error"]["code"] == "missing_ids"
    response = await api("GET", "lifecycle/jobs/compare", params={"ids": "j-000000000000"})
    assert response.status == 404 and response.body["error"]["code"] == "unknown_job"
    response = await api("GET", "lifecycle/jobs", params={"sort": "nope"})
    assert response.status == 400
