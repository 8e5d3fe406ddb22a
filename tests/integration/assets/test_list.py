"""Listing: reconciliation with the disk, background hashing, pagination, sorting, filters."""

from __future__ import annotations

import os

from tests.integration.assets.conftest import eventually, sha
from tests.integration.assets.samples import csv_bytes, png_bytes, safetensors_bytes


async def items(api, category, **params):
    response = await api("GET", f"assets/list/{category}", params=params)
    assert response.status == 200, response.body
    return response.body["items"]


async def by_name(api, category, rel_path):
    found = [i for i in await items(api, category, name=rel_path) if i["rel_path"] == rel_path]
    return found[0] if found else None


async def test_hand_dropped_files_appear_and_get_hashed(api, workspace):
    root = workspace / "datasets"
    (root / "hand").mkdir()
    (root / "hand" / "a.csv").write_bytes(csv_bytes(5))
    (root / "hand" / "deeper").mkdir()
    (root / "hand" / "deeper" / "b.png").write_bytes(png_bytes())
    a = await by_name(api, "datasets", "hand/a.csv")
    b = await by_name(api, "datasets", "hand/deeper/b.png")
    assert a is not None and b is not None
    assert a["source"] == "scan" and a["state"] == "present" and a["size"] == len(csv_bytes(5))

    async def hashed():
        item = await by_name(api, "datasets", "hand/deeper/b.png")
        return item if item["sha256"] else None

    b = await eventually(hashed)
    assert b["sha256"] == sha((root / "hand" / "deeper" / "b.png").read_bytes())
    assert b["format"] == "png" and b["media_type"] == "image/png"
    # a second drop right after a listing (same clock tick as the folder's mtime) shows too
    (root / "hand" / "c.csv").write_bytes(csv_bytes(1))
    assert await by_name(api, "datasets", "hand/c.csv") is not None
    (root / "hand" / "d.csv").write_bytes(csv_bytes(2))
    assert await by_name(api, "datasets", "hand/d.csv") is not None


async def test_vanished_files_are_marked_missing_and_come_back(api, workspace):
    root = workspace / "datasets"
    (root / "v").mkdir()
    (root / "v" / "x.csv").write_bytes(csv_bytes())
    (root / "v" / "y.csv").write_bytes(csv_bytes(4))
    first = await by_name(api, "datasets", "v/x.csv")
    (root / "v" / "x.csv").unlink()
    assert (await by_name(api, "datasets", "v/x.csv"))["state"] == "missing"
    assert [i["rel_path"] for i in await items(api, "datasets", name="v/", state="missing")] \
        == ["v/x.csv"]
    (root / "v" / "x.csv").write_bytes(csv_bytes())
    back = await by_name(api, "datasets", "v/x.csv")
    assert back["state"] == "present" and back["id"] == first["id"]
    for name in ("x.csv", "y.csv"):
        (root / "v" / name).unlink()
    (root / "v").rmdir()
    states = {i["rel_path"]: i["state"] for i in await items(api, "datasets", name="v/")}
    assert states == {"v/x.csv": "missing", "v/y.csv": "missing"}


async def test_files_rewritten_in_place_are_seen_by_the_deep_scan(api, workspace, registry):
    path = workspace / "datasets" / "inplace.csv"
    path.write_bytes(csv_bytes(3))
    await eventually(lambda: _hashed(api, "inplace.csv"))
    stat = path.stat()
    path.write_bytes(csv_bytes(30))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 5 * 10**9))
    await registry.scanner.deep_scan("datasets")
    item = await eventually(lambda: _hashed(api, "inplace.csv"))
    assert item["size"] == len(csv_bytes(30)) and item["sha256"] == sha(csv_bytes(30))


async def _hashed(api, rel_path):
    item = await by_name(api, "datasets", rel_path)
    return item if item and item["sha256"] else None


async def test_hidden_files_links_and_foreign_hard_links_are_not_listed(api, workspace, tmp_path):
    root = workspace / "datasets"
    (root / "vis").mkdir()
    (root / "vis" / ".hidden.csv").write_bytes(csv_bytes())
    (root / "vis" / "ok.csv").write_bytes(csv_bytes())
    outside = tmp_path / "outside.csv"
    outside.write_bytes(csv_bytes(9))
    (root / "vis" / "link.csv").symlink_to(outside)
    os.link(outside, root / "vis" / "hard.csv")
    names = [i["rel_path"] for i in await items(api, "datasets", name="vis/")]
    assert names == ["vis/ok.csv"]


async def test_pagination_sorting_and_filters(api, upload, workspace):
    folder = workspace / "datasets" / "pg"
    folder.mkdir()
    for index in range(25):
        (folder / f"f{index:02d}.csv").write_bytes(csv_bytes(index + 1))
    seen = []
    cursor = None
    while True:
        params = {"name": "pg/", "limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await api("GET", "assets/list/datasets", params=params)).body
        seen += [i["rel_path"] for i in page["items"]]
        if cursor is None:
            assert page["total"] == 25
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"pg/f{i:02d}.csv" for i in range(25)]
    by_size = await items(api, "datasets", name="pg/", sort="-size", limit=3)
    assert [i["rel_path"] for i in by_size] == ["pg/f24.csv", "pg/f23.csv", "pg/f22.csv"]
    descending = []
    cursor = None
    while True:
        params = {"name": "pg/", "limit": 7, "sort": "-name",
                  **({"cursor": cursor} if cursor else {})}
        page = (await api("GET", "assets/list/datasets", params=params)).body
        descending += [i["rel_path"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert descending == list(reversed(seen))
    await upload("datasets", "tagged.csv", csv_bytes(), params={"tags": "gold"})
    await upload("datasets", "pic.png", png_bytes())
    assert [i["name"] for i in await items(api, "datasets", tag="gold")] == ["tagged.csv"]
    assert [i["name"] for i in await items(api, "datasets", type="image")] == ["pic.png"]
    assert "tagged.csv" in [i["name"] for i in await items(api, "datasets", type="csv")]
    assert await items(api, "datasets", name="100%_") == []


async def test_bad_list_parameters_are_400(api):
    for params in ({"limit": "0"}, {"limit": "x"}, {"sort": "color"}, {"cursor": "!!"},
                   {"state": "gone"}):
        response = await api("GET", "assets/list/datasets", params=params)
        assert response.status == 400, params
    assert (await api("GET", "assets/list/unknown")).status == 404


async def test_identical_files_are_reported_as_duplicates(api, upload):
    one = (await upload("datasets", "one.csv", csv_bytes(7))).body
    two = (await upload("datasets", "two.csv", csv_bytes(7))).body
    assert two["duplicates"] == [one["id"]]
    listed = {i["id"]: i["duplicates"] for i in await items(api, "datasets", name=".csv")}
    assert listed[one["id"]] == [two["id"]]


async def test_roots_report_usage_and_free_space(api, upload, registry):
    await upload("checkpoints", "ep1.safetensors", safetensors_bytes(100))
    roots = (await api("GET", "assets/roots")).body
    by_category = {r["category"]: r for r in roots["roots"]}
    assert set(by_category) == {"models", "datasets", "checkpoints", "notebooks", "artifacts"}
    checkpoints = by_category["checkpoints"]
    assert checkpoints["files"] == 1 and checkpoints["bytes"] > 100
    assert checkpoints["max_bytes"] == 256 * 1024
    assert checkpoints["free_bytes"] > 0
    assert "safetensors" in checkpoints["types"]
    assert roots["allow_hidden"] is False
    assert roots["import_dirs"] == [str(p) for p in registry.import_dirs]

