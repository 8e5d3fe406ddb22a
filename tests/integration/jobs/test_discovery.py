"""Discovery (templates, notebook parameters), artifacts and their path safety, activity."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest

from tests.integration.test_auth import raw_fetch

from .conftest import wait_for

PARAMS = '''import typing
from typing import Union
epochs: int = 3  # how many passes
lr: float = 1e-3
batch_size: typing.Union[int, str] = "auto"
workers: int | str = "auto"
mode: typing.Literal["fast", "slow"] = "fast"
maybe: typing.Optional[int] = None
dataset: str = "digits-sample"  # the training data; asset: datasets
made = dict(a=1)
plain = "text"
'''

PAYLOADS = Path(__file__).resolve().parents[2] / "fixtures" / "path_payloads.txt"


async def test_notebook_parameters_read_what_papermill_drops(api, write_notebook):
    path = write_notebook("params", ["pass"], PARAMS)
    response = await api("GET", "lifecycle/parameters", params={"path": path})
    assert response.status == 200, response.body
    params = {p["name"]: p for p in response.body["parameters"]}
    assert list(params) == ["epochs", "lr", "batch_size", "workers", "mode", "maybe",
                            "dataset", "made", "plain"]
    assert params["epochs"]["types"] == ["int"] and params["epochs"]["help"] == "how many passes"
    assert params["batch_size"]["types"] == ["int", "str"]
    assert params["batch_size"]["type"] == "typing.Union[int, str]"
    assert params["workers"]["types"] == ["int", "str"]
    assert params["mode"]["choices"] == ["fast", "slow"]
    assert params["maybe"]["types"] == ["int", "none"]
    assert params["dataset"]["asset"] == "datasets"
    assert params["dataset"]["help"] == "the training data"
    assert params["made"]["default"] is None and params["made"]["default_source"] == "dict(a=1)"
    assert params["plain"]["types"] == ["str"] and params["plain"]["default"] == "text"
    for bad in ("nbs/missing.ipynb", "../etc/passwd", "/etc/passwd", "nbs/../../x.ipynb"):
        refused = await api("GET", "lifecycle/parameters", params={"path": bad})
        assert refused.status == 404, bad
    missing = await api("GET", "lifecycle/parameters")
    assert missing.status == 400


async def test_templates_list_the_workspace_training_notebooks(api, services):
    response = await api("GET", "lifecycle/templates")
    assert response.status == 200
    templates = {t["name"]: t for t in response.body["templates"]}
    shipped = {p.stem for p in (services.workspace.root("notebooks")).glob("*.ipynb")}
    assert set(templates) <= shipped
    for template in templates.values():
        names = [p["name"] for p in template["parameters"]]
        assert "epochs" in names
        asset = [p for p in template["parameters"] if p["asset"]]
        assert asset and asset[0]["asset"] == "datasets"
        assert template["path"].startswith("notebench/notebooks/")
        assert template["estimated_seconds"] is None and template["runs"] == 0
    assert len(templates) >= 2


async def test_artifacts_are_listed_downloaded_and_never_escape(
        jobs_api, write_notebook, services, api, jp_root_dir, jp_http_port, jp_base_url,
        jp_auth_header):
    path = write_notebook("files", [
        "import os\nos.makedirs('checkpoints', exist_ok=True)\n"
        "open('checkpoints/last.bin', 'wb').write(b'\\x00\\x01')\n"
        "open('page.html', 'w').write('<script>alert(1)</script>')"])
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "succeeded"
    job_dir = services.workspace.path / done["job_dir"]
    secret = jp_root_dir / "secret.txt"
    secret.write_text("do not serve")
    os.symlink(secret, job_dir / "link_out")
    os.symlink(jp_root_dir, job_dir / "dir_out")
    (job_dir / ".hidden").write_text("hidden")
    listing = await api("GET", f"lifecycle/artifacts/{job['id']}")
    files = {f["path"]: f for f in listing.body["files"]}
    assert files["checkpoints/last.bin"]["kind"] == "checkpoint"
    assert files["output.ipynb"]["kind"] == "output"
    assert "link_out" not in files and ".hidden" not in files
    assert not any(p.startswith("dir_out") for p in files)

    base = f"{jp_base_url}notebench/api/lifecycle/artifacts/{job['id']}/"
    ok = await raw_fetch(jp_http_port, base + "checkpoints/last.bin", "GET", jp_auth_header)
    assert ok.code == 200 and ok.body == b"\x00\x01"
    assert "attachment" in ok.headers["Content-Disposition"]
    html = await raw_fetch(jp_http_port, base + "page.html", "GET", jp_auth_header)
    assert html.code == 200
    assert html.headers["Content-Type"] == "application/octet-stream"
    assert html.headers["X-Content-Type-Options"] == "nosniff"

    payloads = [line for line in PAYLOADS.read_text().splitlines() if line.strip()]
    payloads += ["link_out", "dir_out/secret.txt", ".hidden", "%2e%2e/%2e%2e/secret.txt",
                 "..%2F..%2Fsecret.txt", "checkpoints/../../../secret.txt"]
    served = 0
    for raw in payloads:
        for variant in {raw, urllib.parse.quote(raw, safe="/")}:
            response = await raw_fetch(jp_http_port, base + variant, "GET", jp_auth_header)
            assert response.code < 500, (variant, response.code)
            if response.code == 200:
                served += 1
                assert response.body != b"do not serve", variant
                assert b"root:" not in response.body, variant
            else:
                assert response.code in (400, 403, 404), (variant, response.code)
    assert served <= 3  # only names that really are files of the job could be served


async def test_running_jobs_count_as_server_activity(jobs_api, write_notebook, jp_serverapp):
    extension = jp_serverapp.extension_manager.extension_apps["notebench.server"]
    app = next(iter(extension))
    assert not app.current_activity()
    path = write_notebook("busy", ["import time\ntime.sleep(2)"])
    job = await jobs_api.submit(path)
    await jobs_api.wait(job["id"], "running")
    activity = app.current_activity()
    assert [a["job_id"] for a in activity] == [job["id"]]
    assert jp_serverapp.extension_manager.any_activity()
    before = jp_serverapp.web_app.last_activity()
    await jobs_api.wait(job["id"])
    assert jp_serverapp.web_app.settings["notebench_jobs_last_activity"] >= before
    assert not app.current_activity()


@pytest.mark.parametrize("jobs_config", [{"cpu_slots": 0, "tick_seconds": 0.2}])
async def test_a_queued_job_alone_counts_as_server_activity(jobs_api, write_notebook,
                                                            jp_serverapp):
    """No slot: the job only waits, and the server still reports work in flight (a Hub's
    idle culler must not stop it)."""
    extension = jp_serverapp.extension_manager.extension_apps["notebench.server"]
    app = next(iter(extension))
    job = await jobs_api.submit(write_notebook("waits", ["1"]))
    assert job["state"] == "queued"

    def queued_activity():
        return app.current_activity()

    assert await wait_for(queued_activity, 10) == [
        {"type": "notebench_queued_jobs", "count": 1}]
    before = jp_serverapp.web_app.settings.get("notebench_jobs_last_activity")

    def noted_again():
        now = jp_serverapp.web_app.settings.get("notebench_jobs_last_activity")
        return now if now is not None and (before is None or now > before) else None

    assert await wait_for(noted_again, 10)  # ticks keep noting it, with no job running
    await jobs_api.control(job["id"], "cancel")
    assert await wait_for(lambda: app.current_activity() is None, 10)
