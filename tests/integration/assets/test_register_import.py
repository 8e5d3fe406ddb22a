"""Registering files and folders in place, importing from import folders, editing."""

from __future__ import annotations

import os

import orjson
import pytest

from tests.integration.assets.conftest import sha, temp_files
from tests.integration.assets.samples import csv_bytes, safetensors_bytes


async def test_register_a_file_in_place_is_idempotent(api, workspace, registry):
    registry.progress_bytes = 1  # every file reports hashing progress
    path = workspace / "models" / "sub" / "m.safetensors"
    path.parent.mkdir()
    data = safetensors_bytes(5000)
    path.write_bytes(data)
    body = {"category": "models", "path": "sub/m.safetensors", "tags": ["v1"],
            "metadata": {"framework": "torch", "parameters": 1250}}
    first = await api("POST", "assets/register", body)
    assert first.status == 200, first.body
    asset = first.body
    assert asset["sha256"] == sha(data) and asset["source"] == "register"
    assert asset["metadata"]["framework"] == "torch" and asset["tags"] == ["v1"]
    again = await api("POST", "assets/register", {"category": "models",
                                                  "path": "sub/m.safetensors"})
    assert again.body["id"] == asset["id"] and again.body["tags"] == ["v1"]
    events = await registry.store.read(lambda conn: conn.execute(
        "SELECT data FROM events WHERE topic = 'assets' AND type = 'register.progress'"
    ).fetchall())
    progress = [orjson.loads(e["data"])["data"] for e in events]
    assert progress and progress[-1]["done_bytes"] == len(data)


@pytest.mark.parametrize("path", ["../secret.txt", "/etc/passwd", "sub/../../x", "a//b",
                                  ".hidden.csv", "x\\..\\y"])
async def test_register_refuses_bad_paths(api, path):
    response = await api("POST", "assets/register", {"category": "datasets", "path": path})
    assert response.status == 400, response.body


async def test_register_does_not_follow_links_or_reveal_outside_files(api, workspace, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(csv_bytes())
    root = workspace / "datasets"
    (root / "out").symlink_to(outside)
    (root / "direct.csv").symlink_to(outside / "secret.csv")
    os.link(outside / "secret.csv", root / "hard.csv")
    answers = []
    for path in ("out/secret.csv", "out/nothing.csv", "direct.csv", "nothing.csv"):
        response = await api("POST", "assets/register", {"category": "datasets", "path": path})
        answers.append((response.status, response.body["error"]))
    assert len(set(map(str, answers))) == 1, answers  # the same 404 whether it exists or not
    assert answers[0][0] == 404
    hard = await api("POST", "assets/register", {"category": "datasets", "path": "hard.csv"})
    assert hard.status == 403 and hard.body["error"]["code"] == "hard_link_refused"


async def test_register_a_folder_with_a_manifest(api, workspace):
    folder = workspace / "datasets" / "images"
    (folder / "cats").mkdir(parents=True)
    files = {"cats/1.csv": csv_bytes(1), "cats/2.csv": csv_bytes(2), "labels.csv": csv_bytes(3)}
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    listed = await api("GET", "assets/list/datasets", params={"name": "images/"})
    assert len(listed.body["items"]) == 3  # found one by one before registration
    response = await api("POST", "assets/register", {"category": "datasets", "path": "images"})
    assert response.status == 200, response.body
    asset = response.body
    assert asset["kind"] == "dir" and asset["format"] == "directory"
    assert asset["size"] == sum(map(len, files.values()))
    assert asset["metadata"]["files"] == 3
    detail = await api("GET", f"assets/{asset['id']}", params={"manifest": "true"})
    manifest = detail.body["manifest"]
    assert [(f["path"], f["sha256"]) for f in manifest] == [
        (rel, sha(files[rel])) for rel in sorted(files)]
    lines = "".join(f"{sha(files[r])} {len(files[r])} {r}\n" for r in sorted(files))
    assert asset["sha256"] == sha(lines.encode())
    listed = await api("GET", "assets/list/datasets", params={"name": "images"})
    assert [i["rel_path"] for i in listed.body["items"]] == ["images"]
    (folder / "more.csv").write_bytes(csv_bytes(4))  # inside a folder asset: not an asset
    listed = await api("GET", "assets/list/datasets", params={"name": "images"})
    assert [i["rel_path"] for i in listed.body["items"]] == ["images"]
    download = await api("GET", f"assets/download/{asset['id']}")
    assert download.status == 200 and download.headers["Content-Type"] == "application/zip"


async def test_register_refuses_folders_with_links_and_where_folders_are_not_taken(
        api, workspace, tmp_path):
    folder = workspace / "datasets" / "linked"
    folder.mkdir()
    (folder / "escape").symlink_to(tmp_path)
    response = await api("POST", "assets/register", {"category": "datasets", "path": "linked"})
    assert response.status == 400 and response.body["error"]["code"] == "link_refused"
    (workspace / "notebooks" / "folder").mkdir()
    refused = await api("POST", "assets/register", {"category": "notebooks", "path": "folder"})
    assert refused.status == 415


async def test_import_copies_from_the_import_folder(api, import_dir, workspace, download):
    data = csv_bytes(40)
    (import_dir / "sub").mkdir()
    (import_dir / "sub" / "pick.csv").write_bytes(data)
    by_relative = await api("POST", "assets/import", {"category": "datasets",
                                                      "path": "sub/pick.csv"})
    assert by_relative.status == 201, by_relative.body
    asset = by_relative.body
    assert asset["source"] == "import" and asset["sha256"] == sha(data)
    assert (workspace / "datasets" / "pick.csv").read_bytes() == data
    assert (import_dir / "sub" / "pick.csv").read_bytes() == data  # a copy, not a move
    by_absolute = await api("POST", "assets/import", {
        "category": "datasets", "path": str(import_dir / "sub" / "pick.csv"),
        "name": "again.csv", "tags": ["imported"]})
    assert by_absolute.status == 201 and by_absolute.body["name"] == "again.csv"
    assert by_absolute.body["duplicates"] == [asset["id"]]
    taken = await api("POST", "assets/import", {"category": "datasets", "path": "sub/pick.csv"})
    assert taken.status == 409
    folder = await api("POST", "assets/import", {"category": "datasets", "path": "sub",
                                                 "name": "subset"})
    assert folder.status == 201 and folder.body["kind"] == "dir"
    assert (workspace / "datasets" / "subset" / "pick.csv").read_bytes() == data
    assert temp_files(workspace) == []


async def test_import_refuses_paths_outside_and_links(api, import_dir, tmp_path):
    (tmp_path / "secret.csv").write_bytes(csv_bytes())
    (import_dir / "out").symlink_to(tmp_path)
    os.link(tmp_path / "secret.csv", import_dir / "hard.csv")
    for path in ("/etc/passwd", str(tmp_path / "secret.csv"), "out/secret.csv",
                 "../secret.csv", "missing.csv"):
        response = await api("POST", "assets/import", {"category": "datasets", "path": path})
        assert response.status in (400, 404), (path, response.body)
    hard = await api("POST", "assets/import", {"category": "datasets", "path": "hard.csv"})
    assert hard.status == 403


@pytest.mark.parametrize("assets_config", [{"import_dirs": []}])
async def test_import_is_off_without_import_folders(api):
    response = await api("POST", "assets/import", {"category": "datasets", "path": "x.csv"})
    assert response.status == 403 and response.body["error"]["code"] == "import_disabled"


async def test_edit_tags_and_metadata(api, upload):
    asset = (await upload("datasets", "e.csv", csv_bytes())).body
    response = await api("PATCH", f"assets/{asset['id']}", {
        "tags": ["a", "b", "a"], "metadata": {"metrics": {"acc": 0.9, "loss": 0.1}}})
    assert response.status == 200
    assert response.body["tags"] == ["a", "b"]
    merged = await api("PATCH", f"assets/{asset['id']}",
                       {"metadata": {"metrics": {"loss": None}, "note": "x"}})
    assert merged.body["metadata"]["metrics"] == {"acc": 0.9}
    assert merged.body["metadata"]["note"] == "x"
    assert merged.body["metadata"]["type_check"] == "structure"
    for bad in ({"metadata": {"untrusted_pickle": False}}, {"name": "x.csv"},
                {"tags": "a"}, {"tags": [""]}, {"metadata": []}):
        response = await api("PATCH", f"assets/{asset['id']}", bad)
        assert response.status == 400, bad
    assert (await api("PATCH", "assets/0000000000000000", {"tags": []})).status == 404
    page = await api("GET", "assets/list/datasets", params={"tag": "b"})
    assert [i["id"] for i in page.body["items"]] == [asset["id"]]
