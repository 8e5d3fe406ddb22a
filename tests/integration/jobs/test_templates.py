"""The shipped templates as jobs: real training (torch), metrics, a registered model."""

from __future__ import annotations

import pytest

from .conftest import wait_for


@pytest.mark.parametrize("template", ["train_tabular"])
async def test_template_job_succeeds_with_metrics_and_a_registered_model(
        jobs_api, api, services, template):
    assert services.assets is not None, "templates resolve their dataset through the registry"
    unknown = await jobs_api.submit(template=template, parameters={"dataset": "no-such-data"},
                                    expect=400)
    assert unknown["error"]["details"]["problems"][0]["name"] == "dataset"
    job = await jobs_api.submit(template=template, parameters={"epochs": 3})
    assert job["template"] == template
    dataset = job["resolved_parameters"]["dataset"]
    assert dataset.startswith(str(services.workspace.root("datasets")))
    assert job["parameters"] == {"epochs": 3}
    done = await jobs_api.wait(job["id"], timeout=240)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    assert done["auto"]["device"] == {"value": "cpu", "source": "server",
                                      "reason": done["auto"]["device"]["reason"],
                                      # the template's kernel: this environment's python3
                                      "kernel_name": "python3",
                                      "python": done["auto"]["device"]["python"]}
    assert done["auto"]["batch_size"]["source"] in ("measured", "recommended")
    assert done["resolved_parameters"]["device"] == "cpu"
    metrics = await jobs_api.metrics(job["id"])
    assert metrics["series"] and all(s["count"] > 0 for s in metrics["series"])
    assert done["progress"]["cell"] == done["progress"]["cells"] - 1

    async def registered():
        current = await jobs_api.get(job["id"])
        return current if current["model"] else None

    finished = await wait_for(registered, 30)
    model = finished["model"]
    asset = await api("GET", f"assets/{model['asset_id']}", validate=False)
    assert asset.status == 200, asset.body
    assert asset.body["category"] == "models"
    assert asset.body["metadata"]["job_id"] == job["id"]
    assert asset.body["metadata"]["parameters"]["epochs"] == 3
    templates = await api("GET", "lifecycle/templates")
    runs = {t["name"]: t for t in templates.body["templates"]}
    assert runs[template]["runs"] == 1 and runs[template]["estimated_seconds"] > 0


async def test_template_stop_checkpoints_and_restart_continues_the_epochs(
        jobs_api, services):
    assert services.assets is not None, "templates resolve their dataset through the registry"
    job = await jobs_api.submit(template="train_tabular", parameters={"epochs": 200})

    async def in_third_epoch():
        current = await jobs_api.get(job["id"])
        epoch = current["latest_metrics"].get("epoch")
        return current if isinstance(epoch, (int, float)) and epoch >= 3 else None

    running = await wait_for(in_third_epoch, 180)
    pids = [p["pid"] for p in running["processes"].values()]
    pids += await services.jobs.job_pids(job["id"])
    await jobs_api.control(job["id"], "stop")
    stopped = await jobs_api.wait(job["id"], timeout=60)
    assert stopped["state"] == "stopped", (stopped["reason"], stopped["error"])
    checkpoints = await services.jobs.checkpoints(job["id"])
    assert any("stopped-step" in c["path"] for c in checkpoints)
    from .conftest import gone

    await wait_for(lambda: all(gone(p) for p in pids), 10)
    last_epoch = stopped["latest_metrics"]["epoch"]
    child = await jobs_api.control(job["id"], "restart", expect=201,
                                   parameters={"epochs": int(last_epoch) + 1})
    assert "stopped-step" in child["resume_from"]
    done = await jobs_api.wait(child["id"], timeout=180)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    epochs = await jobs_api.metrics(child["id"], names="epoch", max_points=10000)
    seen = {b["last"] for b in epochs["series"][0]["buckets"]}
    assert min(seen) == last_epoch  # the interrupted epoch runs again, not epoch 1
    assert max(seen) == int(last_epoch) + 1
