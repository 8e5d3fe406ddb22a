"""What an asset write may reach: templates run as code, job directories are not assets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.authorizers import AsyncNoExecuteAuthorizer
from tests.integration.assets.conftest import sha

JOB_ID = "j-0123456789ab"


def notebook_bytes(code: str) -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    cell = nbformat.v4.new_code_cell("epochs = 1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(code)]
    return nbformat.writes(nb).encode()


@pytest.fixture
def authorizer_class() -> type | None:
    """The test server's authorizer (None: the default, which allows everything)."""
    return None


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any],
                     authorizer_class: type | None) -> dict[str, Any]:
    if authorizer_class is not None:
        jp_server_config["ServerApp"]["authorizer_class"] = authorizer_class
    return jp_server_config


@pytest.fixture
def template(workspace: Path) -> tuple[Path, bytes]:
    """A job template in the notebooks root, and its content."""
    data = notebook_bytes("print('the template as its author wrote it')")
    path = workspace / "notebooks" / "shared-train.ipynb"
    path.write_bytes(data)
    return path, data


async def template_asset(api: Any, name: str) -> dict[str, Any]:
    page = await api("GET", "assets/list/notebooks", params={"name": name})
    assert page.status == 200
    (item,) = [i for i in page.body["items"] if i["name"] == name]
    return item


# -- the notebooks root holds the templates: writing there runs code -------------------------


@pytest.mark.parametrize("authorizer_class", [AsyncNoExecuteAuthorizer])
async def test_writing_templates_needs_execute(api, upload, registry, import_dir, workspace,
                                               template):
    path, original = template
    rogue = notebook_bytes("import os; os.system('echo the uploader runs here')")

    def refused(response: Any) -> None:
        assert response.status == 403, response.body
        assert response.body["error"]["code"] == "forbidden"
        assert "execute" in response.body["error"]["message"]

    # the single-request upload, over the template and under a new name
    refused(await upload("notebooks", path.name, rogue, params={"overwrite": "true"}))
    refused(await upload("notebooks", "new.ipynb", rogue))
    # a resumable upload: neither started nor completed
    refused(await api("POST", "assets/uploads", {"category": "notebooks", "name": "r.ipynb",
                                                 "size": len(rogue), "sha256": sha(rogue)}))
    started = await registry.uploads.create({"category": "notebooks", "name": "r.ipynb",
                                             "size": len(rogue), "sha256": sha(rogue)})
    chunk = await api("PATCH", f"assets/uploads/{started['id']}", rogue,
                      headers={"Upload-Offset": "0",
                               "Content-Type": "application/offset+octet-stream"})
    assert chunk.status == 200, chunk.body
    refused(await api("POST", f"assets/uploads/{started['id']}/complete"))
    # import, register, delete and restore
    (import_dir / path.name).write_bytes(rogue)
    refused(await api("POST", "assets/import", {"category": "notebooks", "path": path.name,
                                                "overwrite": True}))
    refused(await api("POST", "assets/register", {"category": "notebooks",
                                                  "path": path.name}))
    asset = await template_asset(api, path.name)
    refused(await api("DELETE", f"assets/{asset['id']}"))
    assert path.read_bytes() == original
    await registry.delete(asset["id"])  # as a user who may
    refused(await api("POST", f"assets/trash/{asset['id']}/restore"))
    assert not path.exists()
    assert not (workspace / "notebooks" / "new.ipynb").exists()
    assert not (workspace / "notebooks" / "r.ipynb").exists()
    # the same user writes anywhere no notebook runs from
    assert (await upload("artifacts", "notes.ipynb", rogue)).status == 201


async def test_a_user_who_may_execute_overwrites_a_template(upload, template):
    path, original = template
    revised = notebook_bytes("print('revised')")
    response = await upload("notebooks", path.name, revised, params={"overwrite": "true"})
    assert response.status == 201, response.body
    assert path.read_bytes() == revised
    # the replaced version waits in the root's trash
    kept = [p.read_bytes() for p in (path.parent / ".trash").glob("*/content")]
    assert kept == [original]


# -- job directories belong to the jobs ---------------------------------------------------------


@pytest.fixture
def job_dir(services: Any) -> Path:
    """A job's directory under the artifacts root, as a running job has it."""
    folder = Path(services.jobs.runs_dir) / JOB_ID
    folder.mkdir(parents=True)
    (folder / "output.ipynb").write_bytes(notebook_bytes("print('running')"))
    (folder / "papermill.log").write_text("cell 1 of 2\n")
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_job_directories_cannot_be_registered(api, registry, job_dir):
    runs = job_dir.parent
    before = tree(runs)
    for path in ("jobs", f"jobs/{JOB_ID}"):
        response = await api("POST", "assets/register", {"category": "artifacts",
                                                         "path": path})
        assert response.status == 403, (path, response.body)
        assert response.body["error"]["code"] == "job_directory"
    page = await api("GET", "assets/list/artifacts", params={"limit": "1000"})
    assert not [i for i in page.body["items"] if i["kind"] == "dir"]
    assert tree(runs) == before
    trash = await api("GET", "assets/trash", params={"category": "artifacts"})
    assert trash.body["items"] == []
    # the job's own registration of its files, in place, still works
    asset = await registry.register_path(job_dir / "output.ipynb", category="artifacts",
                                         source="job", job_id=JOB_ID)
    assert asset["job_id"] == JOB_ID and asset["rel_path"] == f"jobs/{JOB_ID}/output.ipynb"


async def test_a_job_directory_registered_before_is_never_trashed(api, upload, registry,
                                                                   import_dir, job_dir,
                                                                   monkeypatch):
    runs = job_dir.parent
    before = tree(runs)

    async def unchecked(path: Path) -> None:
        return None

    # rows such as these exist where the folders were registered before they were refused
    with monkeypatch.context() as patch:
        patch.setattr(registry, "refuse_job_folder", unchecked)
        rows = [(await api("POST", "assets/register", {"category": "artifacts", "path": p}))
                .body for p in ("jobs", f"jobs/{JOB_ID}")]
    assert all(r.get("kind") == "dir" for r in rows), rows
    for row in rows:
        response = await api("DELETE", f"assets/{row['id']}")
        assert response.status == 403, response.body
        assert response.body["error"]["code"] == "job_directory"
    # nor replaced by an upload or an import that overwrites
    over = await upload("artifacts", "jobs", b"x", params={"overwrite": "true"}, validate=False)
    assert over.status == 403 and over.body["error"]["code"] == "job_directory"
    (import_dir / "jobs").write_bytes(b"x")
    imported = await api("POST", "assets/import", {"category": "artifacts", "path": "jobs",
                                                   "overwrite": True})
    assert imported.status == 403 and imported.body["error"]["code"] == "job_directory"
    assert tree(runs) == before
    trash = await api("GET", "assets/trash", params={"category": "artifacts"})
    assert trash.body["items"] == []
