"""Tidying runs: edit, sort and filter, delete to the trash, restore, purge, retention."""

from __future__ import annotations

import time

from .conftest import wait_for

LOOP = """
import time
import notebench
notebench.report(step=0, loss=1.0)
while not notebench.should_stop() and not quick:
    time.sleep(0.05)
"""


async def test_edit_sort_and_filter(jobs_api, write_notebook, api):
    path = write_notebook("tidy", [LOOP], "quick: bool = True")
    first = await jobs_api.submit(path, name="bbb")
    second = await jobs_api.submit(path, name="aaa")
    await jobs_api.wait(first["id"])
    await jobs_api.wait(second["id"])
    response = await api("PATCH", f"lifecycle/jobs/{first['id']}",
                         {"name": "zzz", "notes": "the good one", "starred": True,
                          "tags": ["keep", "best"]})
    assert response.status == 200, response.body
    edited = response.body
    assert (edited["name"], edited["notes"], edited["starred"], edited["tags"]) == (
        "zzz", "the good one", True, ["keep", "best"])
    bad = await api("PATCH", f"lifecycle/jobs/{first['id']}", {"state": "failed"})
    assert bad.status == 400
    bad = await api("PATCH", f"lifecycle/jobs/{first['id']}", {"starred": "yes"})
    assert bad.status == 400

    async def ids(**params: str) -> list[str]:
        response = await api("GET", "lifecycle/jobs", params=params)
        assert response.status == 200, response.body
        return [j["id"] for j in response.body["jobs"]]

    assert await ids(starred="true") == [first["id"]]
    assert await ids(starred="false") == [second["id"]]
    assert await ids(tag="best") == [first["id"]]
    assert await ids(state="succeeded", sort="name") == [second["id"], first["id"]]
    assert await ids(sort="-name") == [first["id"], second["id"]]
    assert await ids(sort="created") == [first["id"], second["id"]]
    assert await ids(q="zz") == [first["id"]]
    assert await ids(created_after=str(second["created"])) == [second["id"]]
    assert await ids(created_before="2000-01-01") == []
    assert set(await ids(sort="-disk")) == {first["id"], second["id"]}


async def test_delete_refuses_a_running_job_then_trash_restore_purge(
        jobs_api, write_notebook, api, services):
    path = write_notebook("trash", [LOOP], "quick: bool = False")
    job = await jobs_api.submit(path)
    await jobs_api.wait(job["id"], "running")
    refused = await api("DELETE", f"lifecycle/jobs/{job['id']}")
    assert refused.status == 409 and refused.body["error"]["code"] == "job_active"
    await jobs_api.control(job["id"], "stop")
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "stopped"
    before = await jobs_api.metrics(job["id"])
    job_dir = services.workspace.path / done["job_dir"]
    assert job_dir.is_dir()

    async def artifact_assets() -> list[str]:
        response = await api("GET", "assets/list/artifacts", params={"name": job["id"]})
        assert response.status == 200, response.body
        return sorted(a["rel_path"] for a in response.body["items"] if a["job_id"] == job["id"])

    expected = {f"jobs/{job['id']}/{name}" for name in ("output.ipynb", "papermill.log",
                                                         "metrics.csv")}

    async def registered() -> list[str] | None:
        listed = await artifact_assets()
        return listed if expected <= set(listed) else None

    assets_before = await wait_for(registered, 30)

    deleted = await api("DELETE", f"lifecycle/jobs/{job['id']}")
    assert deleted.status == 200, deleted.body
    assert deleted.body["trashed_at"] is not None
    assert not job_dir.exists()
    # its artifacts leave the asset listing with it (not even as missing files) ...

    async def none_listed() -> bool:
        return await artifact_assets() == []

    assert await wait_for(none_listed, 30)
    assets_trash = (await api("GET", "assets/trash")).body["items"]
    assert not [a for a in assets_trash if a["job_id"] == job["id"]]
    assert (job_dir.parent / ".trash" / job["id"] / "output.ipynb").is_file()
    assert (await api("GET", "lifecycle/jobs")).body["total"] == 0
    again = await api("DELETE", f"lifecycle/jobs/{job['id']}")
    assert again.status == 404
    trash = (await api("GET", "lifecycle/trash")).body
    assert [j["id"] for j in trash["items"]] == [job["id"]]
    assert trash["usage"]["jobs"] == 1 and trash["usage"]["bytes"] > 0
    restart = await jobs_api.control(job["id"], "restart", expect=409)
    assert restart["error"]["code"] == "in_trash"

    restored = await api("POST", f"lifecycle/trash/{job['id']}/restore")
    assert restored.status == 200, restored.body
    assert restored.body["trashed_at"] is None and restored.body["state"] == "stopped"
    assert (job_dir / "output.ipynb").is_file()
    assert [j["id"] for j in (await api("GET", "lifecycle/jobs")).body["jobs"]] == [job["id"]]
    assert (await api("GET", "lifecycle/trash")).body["items"] == []
    assert await jobs_api.metrics(job["id"]) == before  # its points came back with it
    async def listed_again() -> bool:  # ... and come back with it
        return await artifact_assets() == assets_before

    assert await wait_for(listed_again, 30)

    assert (await api("DELETE", f"lifecycle/jobs/{job['id']}")).status == 200
    purged = await api("DELETE", f"lifecycle/trash/{job['id']}")
    assert purged.status == 200 and purged.body["purged"] is True
    assert not (job_dir.parent / ".trash" / job["id"]).exists()
    assert (await api("GET", f"lifecycle/jobs/{job['id']}")).status == 404


async def test_retention_trashes_old_unstarred_runs(jobs_api, write_notebook, api, services):
    path = write_notebook("keep", [LOOP], "quick: bool = True")
    kept = await jobs_api.submit(path)
    old = await jobs_api.submit(path)
    for job in (kept, old):
        await jobs_api.wait(job["id"])
    await api("PATCH", f"lifecycle/jobs/{kept['id']}", {"starred": True})
    time.sleep(0.05)
    result = await services.jobs.apply_retention(days=0.01 / 86400, trash_days=0)
    assert result == {"trashed": [old["id"]], "purged": []}
    assert [j["id"] for j in (await api("GET", "lifecycle/jobs")).body["jobs"]] == [kept["id"]]
    purge = await api("POST", "lifecycle/trash/purge", {"older_than_days": 0})
    assert purge.status == 200 and purge.body["purged"] == [old["id"]]
    assert (await api("GET", "lifecycle/trash")).body["items"] == []


async def test_a_restore_right_after_a_trash_ends_with_the_artifacts_listed(
        jobs_api, write_notebook, api, services):
    path = write_notebook("quick", [LOOP], "quick: bool = True")
    job = await jobs_api.submit(path)
    await jobs_api.wait(job["id"])

    async def artifact_assets() -> list[str]:
        response = await api("GET", "assets/list/artifacts", params={"name": job["id"]})
        assert response.status == 200, response.body
        return sorted(a["rel_path"] for a in response.body["items"] if a["job_id"] == job["id"])

    await services.jobs.settle()  # the job's files are registered, all of them
    before = await artifact_assets()
    assert f"jobs/{job['id']}/output.ipynb" in before
    # back from the trash before the trash's own follow-up has run
    assert (await api("DELETE", f"lifecycle/jobs/{job['id']}")).status == 200
    assert (await api("POST", f"lifecycle/trash/{job['id']}/restore")).status == 200
    await services.jobs.settle()  # the follow-ups of both, in whatever order they ran
    assert await artifact_assets() == before
