"""The Lightning template: offered where ``lightning`` is installed, runs as a job."""

from __future__ import annotations

import pytest

from .conftest import events, wait_for


async def test_a_template_whose_packages_are_missing_is_listed_unavailable_and_refused(
        api, jobs_api, services):
    notebooks = services.workspace.root("notebooks")
    shipped = (notebooks / "train_lightning.ipynb").read_text()
    needs = shipped.replace('"requires": [\n    "lightning"\n   ]',
                            '"requires": [\n    "no_such_package_for_notebench"\n   ]')
    assert needs != shipped, "the shipped template names its requirement"
    (notebooks / "needs_missing.ipynb").write_text(needs)
    listing = (await api("GET", "lifecycle/templates")).body
    offered = {t["name"] for t in listing["templates"]}
    unavailable = {t["name"]: t for t in listing["unavailable"]}
    assert "needs_missing" not in offered
    assert "no_such_package_for_notebench" in unavailable["needs_missing"]["reason"]
    assert "notebench[lightning]" in unavailable["needs_missing"]["reason"]
    assert unavailable["needs_missing"]["requires"] == ["no_such_package_for_notebench"]
    refused = await jobs_api.submit(template="needs_missing", expect=400)
    assert refused["error"]["code"] == "template_unavailable"
    assert "no_such_package_for_notebench" in refused["error"]["message"]
    assert "train_tabular" in offered  # templates that need nothing extra stay offered


async def test_the_lightning_template_runs_as_a_job_and_registers_its_model(
        api, jobs_api, services):
    pytest.importorskip("lightning")
    listing = (await api("GET", "lifecycle/templates")).body
    assert "train_lightning" in {t["name"] for t in listing["templates"]}
    assert "train_lightning" not in {t["name"] for t in listing["unavailable"]}
    job = await jobs_api.submit(template="train_lightning",
                                parameters={"epochs": 2, "batch_size": 128})
    done = await jobs_api.wait(job["id"], timeout=240)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    assert {"loss", "val_loss", "val_accuracy"} <= set(done["latest_metrics"])
    assert done["progress"]["total_steps"] == done["progress"]["step"] + 1
    job_dir = services.workspace.path / done["job_dir"]
    [hparams] = events(job_dir, "hparams")
    assert hparams["hparams"]["hidden"] == 64 and hparams["hparams"]["task"] == "classification"
    checkpoints = await services.jobs.checkpoints(job["id"])
    assert sorted(c["path"] for c in checkpoints) == ["checkpoints/epoch-0001.pt",
                                                      "checkpoints/epoch-0002.pt"]

    async def registered():
        current = await jobs_api.get(job["id"])
        return current if current["model"] else None

    model = (await wait_for(registered, 30))["model"]
    assert model["name"].startswith("tabular-lightning")
