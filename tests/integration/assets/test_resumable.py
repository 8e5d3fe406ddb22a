"""Resumable uploads: offsets, resume after a dropped connection, completion checks, expiry."""

from __future__ import annotations

import itertools

from tests.integration.assets.conftest import eventually, sha, temp_files
from tests.integration.assets.samples import csv_bytes, random_bytes, safetensors_bytes


async def start(api, category, name, data, **extra):
    response = await api("POST", "assets/uploads", {"category": category, "name": name,
                                                    "size": len(data), "sha256": sha(data),
                                                    **extra})
    assert response.status == 201, response.body
    return response.body["id"]


async def send(api, uid, data, offset):
    return await api("PATCH", f"assets/uploads/{uid}", data,
                     headers={"Upload-Offset": str(offset),
                              "Content-Type": "application/offset+octet-stream"})


async def offset_of(api, uid):
    head = await api("HEAD", f"assets/uploads/{uid}")
    assert head.status == 200
    return int(head.headers["Upload-Offset"])


async def test_resumable_round_trip(api, download, workspace):
    data = safetensors_bytes(300_000)
    uid = await start(api, "models", "big.safetensors", data, tags=["resumable"])
    assert await offset_of(api, uid) == 0
    cuts = [0, 70_000, 200_001, len(data)]
    for start_at, end in itertools.pairwise(cuts):
        response = await send(api, uid, data[start_at:end], start_at)
        assert response.status == 200, response.body
        assert response.body["offset"] == end
        assert response.headers["Upload-Offset"] == str(end)
    done = await api("POST", f"assets/uploads/{uid}/complete")
    assert done.status == 201, done.body
    asset = done.body
    assert asset["sha256"] == sha(data) and asset["tags"] == ["resumable"]
    page = await api("GET", "assets/list/models", params={"tag": "resumable"})
    assert [item["id"] for item in page.body["items"]] == [asset["id"]]
    got = await download(asset["id"])
    assert got.body == data
    assert (await api("GET", f"assets/uploads/{uid}")).status == 404
    assert temp_files(workspace) == []


async def test_wrong_offset_is_409_with_the_right_one(api):
    data = csv_bytes(1000)
    uid = await start(api, "datasets", "o.csv", data)
    assert (await send(api, uid, data[:100], 0)).status == 200
    wrong = await send(api, uid, data[100:200], 50)
    assert wrong.status == 409
    assert wrong.body["error"]["code"] == "offset_mismatch"
    assert wrong.body["error"]["details"]["offset"] == 100
    early = await api("POST", f"assets/uploads/{uid}/complete")
    assert early.status == 409 and early.body["error"]["code"] == "incomplete"


async def test_resume_after_a_dropped_connection(api, raw, download, workspace, registry):
    registry.upload_batch_bytes = 64 * 1024  # written as it arrives: the test can see it
    data = csv_bytes(150_000)
    uid = await start(api, "datasets", "resumed.csv", data)
    conn = raw()
    await conn.open("PATCH", raw.api + f"assets/uploads/{uid}",
                    {"Upload-Offset": "0", "Content-Length": str(len(data)),
                     "Content-Type": "application/offset+octet-stream"})
    half = len(data) // 2
    await conn.send(data[:half])
    await eventually(lambda: _part_size(workspace) >= half - 65536)
    conn.abort()
    reached = await eventually(lambda: _offset_if_idle(api, uid))
    assert 0 < reached <= half
    rest = await send(api, uid, data[reached:], reached)
    assert rest.status == 200 and rest.body["offset"] == len(data)
    done = await api("POST", f"assets/uploads/{uid}/complete")
    assert done.status == 201, done.body
    assert (await download(done.body["id"])).body == data
    assert temp_files(workspace) == []


def _part_size(workspace):
    parts = list((workspace / "datasets" / ".notebench-tmp").glob("res-*.part"))
    return parts[0].stat().st_size if parts else 0


async def _offset_if_idle(api, uid):
    status = await api("GET", f"assets/uploads/{uid}")
    busy = await api("POST", f"assets/uploads/{uid}/complete")  # 409 upload_busy while held
    if busy.body["error"]["code"] == "upload_busy":
        return None
    return status.body["offset"] or None


async def test_digest_mismatch_at_completion_drops_the_upload(api, workspace):
    data = csv_bytes(100)
    response = await api("POST", "assets/uploads", {"category": "datasets", "name": "d.csv",
                                                    "size": len(data), "sha256": "1" * 64})
    uid = response.body["id"]
    assert (await send(api, uid, data, 0)).status == 200
    done = await api("POST", f"assets/uploads/{uid}/complete")
    assert done.status == 400 and done.body["error"]["code"] == "digest_mismatch"
    assert (await api("GET", f"assets/uploads/{uid}")).status == 404
    assert temp_files(workspace) == []
    assert not (workspace / "datasets" / "d.csv").exists()


async def test_chunk_past_the_declared_size_is_413(api):
    data = csv_bytes(10)
    uid = await start(api, "datasets", "s.csv", data)
    over = await send(api, uid, data + b"9,9,9\n", 0)
    assert over.status == 413


async def test_refused_type_at_the_first_chunk_drops_the_upload(api, workspace):
    data = random_bytes(70_000)
    uid = await start(api, "models", "fake.safetensors", data)
    refused = await send(api, uid, data, 0)
    assert refused.status == 415
    assert (await api("GET", f"assets/uploads/{uid}")).status == 404
    await eventually(lambda: temp_files(workspace) == [])


async def test_create_checks_before_any_byte(api, upload):
    too_big = await api("POST", "assets/uploads", {"category": "checkpoints",
                                                   "name": "x.safetensors", "size": 10**9})
    assert too_big.status == 413
    bad_type = await api("POST", "assets/uploads", {"category": "models", "name": "x.exe",
                                                    "size": 10})
    assert bad_type.status == 415
    await upload("datasets", "taken.csv", csv_bytes())
    taken = await api("POST", "assets/uploads", {"category": "datasets", "name": "taken.csv",
                                                 "size": 10})
    assert taken.status == 409
    bad_name = await api("POST", "assets/uploads", {"category": "datasets", "name": "../x.csv",
                                                    "size": 10})
    assert bad_name.status == 400


async def test_abandoned_uploads_expire_and_abort_works(api, registry, workspace):
    data = csv_bytes(50)
    old = await start(api, "datasets", "old.csv", data)
    assert (await send(api, old, data[:20], 0)).status == 200
    aborted = await start(api, "datasets", "aborted.csv", data)
    response = await api("DELETE", f"assets/uploads/{aborted}")
    assert response.status == 200 and response.body["state"] == "aborted"
    registry.upload_expiry_hours = 0.0
    try:
        assert await registry.uploads.expire() == [old]
    finally:
        registry.upload_expiry_hours = 24.0
    assert (await api("GET", f"assets/uploads/{old}")).status == 404
    assert temp_files(workspace) == []
