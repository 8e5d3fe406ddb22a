"""Delete to the trash, restore (never overwriting), purge one, purge by age."""

from __future__ import annotations

import time

from tests.integration.assets.conftest import sha
from tests.integration.assets.samples import csv_bytes


async def test_delete_restore_purge(api, upload, download, workspace):
    data = csv_bytes(10)
    asset = (await upload("datasets", "t.csv", data, params={"tags": "keep,raw"})).body
    deleted = await api("DELETE", f"assets/{asset['id']}")
    assert deleted.status == 200 and deleted.body["state"] == "trashed"
    assert not (workspace / "datasets" / "t.csv").exists()
    slot = workspace / "datasets" / ".trash" / asset["id"]
    assert (slot / "content").read_bytes() == data
    assert (slot / "asset.json").is_file()  # the metadata travels with the bytes
    page = await api("GET", "assets/list/datasets", params={"name": "t.csv"})
    assert page.body["items"] == []
    trash = await api("GET", "assets/trash")
    [item] = [i for i in trash.body["items"] if i["id"] == asset["id"]]
    assert item["tags"] == ["keep", "raw"] and trash.body["usage"]["datasets"]["files"] == 1
    assert (await api("DELETE", f"assets/{asset['id']}")).status == 404  # already trashed

    restored = await api("POST", f"assets/trash/{asset['id']}/restore")
    assert restored.status == 200 and restored.body["state"] == "present"
    assert restored.body["id"] == asset["id"] and restored.body["sha256"] == sha(data)
    assert (await download(asset["id"])).body == data
    assert not slot.exists()
    assert (await api("POST", f"assets/trash/{asset['id']}/restore")).status == 404

    await api("DELETE", f"assets/{asset['id']}")
    purged = await api("DELETE", f"assets/trash/{asset['id']}")
    assert purged.status == 200 and purged.body["state"] == "purged"
    assert not slot.exists()
    assert (await api("GET", f"assets/{asset['id']}")).status == 404


async def test_restore_refuses_to_overwrite(api, upload, workspace):
    first = (await upload("datasets", "r.csv", csv_bytes(3, seed=1))).body
    await api("DELETE", f"assets/{first['id']}")
    newer = await upload("datasets", "r.csv", csv_bytes(3, seed=2))
    assert newer.status == 201
    refused = await api("POST", f"assets/trash/{first['id']}/restore")
    assert refused.status == 409 and refused.body["error"]["code"] == "name_exists"
    assert (workspace / "datasets" / "r.csv").read_bytes() == csv_bytes(3, seed=2)
    # a file dropped there by hand (not registered yet) is not overwritten either
    await api("DELETE", f"assets/{newer.body['id']}")
    (workspace / "datasets" / "r.csv").write_bytes(b"mine\n")
    refused = await api("POST", f"assets/trash/{first['id']}/restore")
    assert refused.status == 409
    assert (workspace / "datasets" / "r.csv").read_bytes() == b"mine\n"


async def test_restore_recreates_missing_folders(api, workspace, registry):
    folder = workspace / "datasets" / "deep" / "er"
    folder.mkdir(parents=True)
    (folder / "x.csv").write_bytes(csv_bytes())
    asset = (await api("POST", "assets/register", {"category": "datasets",
                                                   "path": "deep/er/x.csv"})).body
    await api("DELETE", f"assets/{asset['id']}")
    folder.rmdir()
    (workspace / "datasets" / "deep").rmdir()
    restored = await api("POST", f"assets/trash/{asset['id']}/restore")
    assert restored.status == 200
    assert (folder / "x.csv").read_bytes() == csv_bytes()


async def test_purge_by_age(api, upload, registry, services):
    old = (await upload("datasets", "old.csv", csv_bytes(1))).body
    new = (await upload("datasets", "new.csv", csv_bytes(2))).body
    await api("DELETE", f"assets/{old['id']}")
    await api("DELETE", f"assets/{new['id']}")
    ten_days_ago = time.time() - 10 * 86400
    await services.store.write(lambda conn: conn.execute(
        "UPDATE assets SET trashed_at = ? WHERE id = ?", (ten_days_ago, old["id"])))
    purged = await api("POST", "assets/trash/purge", {"older_than_days": 7})
    assert purged.status == 200 and purged.body["purged"] == [old["id"]]
    left = await api("GET", "assets/trash")
    assert [i["id"] for i in left.body["items"]] == [new["id"]]
    everything = await api("POST", "assets/trash/purge", {"older_than_days": 0})
    assert everything.body["purged"] == [new["id"]]
    bad = await api("POST", "assets/trash/purge", {"older_than_days": "soon"})
    assert bad.status == 400


async def test_deleting_a_missing_file_forgets_it(api, workspace):
    (workspace / "datasets" / "gone.csv").write_bytes(csv_bytes())
    page = await api("GET", "assets/list/datasets", params={"name": "gone.csv"})
    [item] = page.body["items"]
    (workspace / "datasets" / "gone.csv").unlink()
    page = await api("GET", "assets/list/datasets", params={"name": "gone.csv"})
    assert page.body["items"][0]["state"] == "missing"
    removed = await api("DELETE", f"assets/{item['id']}")
    assert removed.status == 200 and removed.body["state"] == "removed"
    assert (await api("GET", f"assets/{item['id']}")).status == 404
