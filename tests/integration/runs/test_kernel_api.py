"""``notebench.jobs`` and ``notebench.load_model`` in a real kernel started by the server."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.integration.test_kernel_side import run_in_kernel

from .conftest import wait_for

TRAIN = """
import time
import notebench
for step in range(steps):
    notebench.report(step=step, total_steps=steps, loss=lr / (step + 1))
    time.sleep(delay)
    if notebench.should_stop():
        break
"""

KERNEL_CODE = """
import json, notebench
jobs = notebench.jobs
a = jobs.submit("nbs/k.ipynb", lr=0.5, name="from-kernel", tags=["kern"])
b = jobs.submit(a, lr=0.25)          # clone with one edit
a.wait(timeout=90)
b.wait(timeout=90, progress=False)
frame = a.metrics()
compared = jobs.compare([a, b])
table = compared.frame
long = jobs.metrics([a, b], names=["loss"], max_points=4)
slow = jobs.submit("nbs/k.ipynb", steps=100000, delay=0.05)
for _ in range(400):
    if slow.refresh().state == "running":
        break
    __import__("time").sleep(0.1)
paused = slow.pause().state
resumed = slow.resume().state
slow.stop().wait(timeout=60, progress=False)
print(json.dumps({
    "a": [a.id, a.state], "b": [b.state, b["parameters"]],
    "columns": list(frame.columns), "steps": frame.index.tolist(),
    "loss": frame["loss"].tolist(),
    "table_index": table.index.tolist(), "lr": table["params.lr"].tolist(),
    "differing": compared.differing, "best": table["metrics.loss.best"].tolist(),
    "long_rows": len(long), "listed": [j.id for j in jobs.list(tag="kern")], "b_id": b.id,
    "got": jobs.get(a.id).name, "cells": len(a.output().cells),
    "paused": paused, "resumed": resumed, "stopped": slow.state,
}))
"""


async def test_submit_wait_metrics_compare_control_from_a_kernel(
        jp_serverapp, http_server_client, write_notebook, jobs_api):
    write_notebook("k", [TRAIN], "lr: float = 0.1\nsteps: int = 6\ndelay: float = 0.0")
    output = await run_in_kernel(jp_serverapp, KERNEL_CODE)
    result = json.loads(output.strip().splitlines()[-1])
    assert result["a"][1] == "succeeded" and result["b"][0] == "succeeded"
    assert result["b"][1] == {"lr": 0.25}
    assert result["columns"] == ["loss"] and result["steps"] == list(range(6))
    assert result["loss"][-1] == 0.5 / 6
    assert result["table_index"][0] == result["a"][0] and result["lr"] == [0.5, 0.25]
    assert result["differing"] == ["lr"] and result["best"] == [0.5 / 6, 0.25 / 6]
    assert result["long_rows"] == 6  # 2 runs x 3 buckets (6 steps, 2 a bucket)
    # newest first; the clone kept the tags
    assert result["listed"] == [result["b_id"], result["a"][0]]
    assert result["got"] == "from-kernel"
    assert result["cells"] >= 2
    assert (result["paused"], result["resumed"], result["stopped"]) == (
        "paused", "running", "stopped")


BEST = """
import torch, notebench
torch.manual_seed(0)
model = torch.nn.Linear(3, 2)
for epoch, val_loss in enumerate([1.0, 0.5, 0.8, 0.9]):   # epoch 1 is the best
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    notebench.report(step=epoch, val_loss=val_loss)
    notebench.checkpoint({"model": model.state_dict(), "epoch": epoch}, epoch=epoch,
                         metrics={"val_loss": val_loss}, monitor="val_loss", mode="min", keep=1)
notebench.save_model(model, "tiny")
"""

LOAD = """
import json, torch, notebench
torch.manual_seed(0)
reference = torch.nn.Linear(3, 2)
def shifted(times):  # the same float additions as the training loop
    out = {k: v.clone() for k, v in reference.state_dict().items()}
    for _ in range(times):
        out = {k: v + 1.0 for k, v in out.items()}
    return out
best = notebench.load_model("{job}", torch.nn.Linear(3, 2), which="best")
final = notebench.load_model("{job}")
by_asset = notebench.load_model("{asset}")  # the model's asset in models/, not the job
into = notebench.load_model("{asset}", torch.nn.Linear(3, 2))
print(json.dumps({
    "best_equal": all(torch.equal(best.state_dict()[k], v) for k, v in shifted(2).items()),
    "final_equal": all(torch.equal(final[k], v) for k, v in shifted(4).items()),
    "asset_equal": all(torch.equal(by_asset[k], v) for k, v in shifted(4).items()),
    "asset_into_equal": all(torch.equal(into.state_dict()[k], v)
                            for k, v in shifted(4).items()),
}))
"""


async def test_best_checkpoint_is_kept_and_load_model_restores_it(
        jp_serverapp, http_server_client, write_notebook, jobs_api, api, services):
    path = write_notebook("best", [BEST], "seed = 0")
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"], timeout=180)
    assert done["state"] == "succeeded", done
    files = {f["path"] for f in (await api("GET", f"lifecycle/artifacts/{job['id']}")
                                 ).body["files"]}
    # keep=1: the last one, and the best although later epochs were worse
    assert {p for p in files if p.endswith(".pt")} == {"checkpoints/epoch-0001.pt",
                                                        "checkpoints/epoch-0003.pt"}
    assert any(p.startswith("model/tiny.") for p in files)

    async def linked() -> dict | None:
        current = await jobs_api.get(job["id"])
        return current["model"] if current.get("model") else None

    model = await wait_for(linked, 30)
    asset = (await api("GET", f"assets/{model['asset_id']}")).body
    assert asset["category"] == "models" and asset["job_id"] == job["id"]
    assert Path(asset["path"]).parent == services.workspace.root("models")
    # a notebook kernel without the runs folder in its environment asks the server
    env = {k: v for k, v in os.environ.items() if k != "NOTEBENCH_RUNS_DIR"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("NOTEBENCH_SERVER")})
    code = LOAD.replace("{job}", job["id"]).replace("{asset}", model["asset_id"])
    output = await run_in_kernel(jp_serverapp, code, env=env)
    result = json.loads(output.strip().splitlines()[-1])
    assert result == {"best_equal": True, "final_equal": True, "asset_equal": True,
                      "asset_into_equal": True}
