"""Streamed uploads: raw and multipart round trips, digests, limits, cut-offs, collisions."""

from __future__ import annotations

import asyncio
import urllib.parse

import pytest

from tests.integration.assets.conftest import (
    SMALL_LIMIT,
    eventually,
    multipart_body,
    sha,
    temp_files,
)
from tests.integration.assets.samples import csv_bytes, random_bytes, safetensors_bytes


async def listed(api, category, name):
    page = await api("GET", f"assets/list/{category}", params={"name": name})
    assert page.status == 200
    return [item for item in page.body["items"] if item["name"] == name]


async def test_raw_upload_round_trip(api, upload, download, workspace):
    data = csv_bytes(5000)
    response = await upload("datasets", "train.csv", data)
    assert response.status == 201, response.body
    asset = response.body
    assert asset["sha256"] == sha(data)
    assert asset["size"] == len(data)
    assert asset["format"] == "csv" and asset["media_type"] == "text/csv"
    assert asset["source"] == "upload"
    assert (workspace / "datasets" / "train.csv").read_bytes() == data
    [item] = await listed(api, "datasets", "train.csv")
    assert item["id"] == asset["id"] and item["sha256"] == sha(data)
    got = await download(asset["id"])
    assert got.code == 200
    assert got.body == data and sha(got.body) == asset["sha256"]
    assert got.headers["ETag"] == f'"{asset["sha256"]}"'
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert temp_files(workspace) == []


async def test_multipart_upload_round_trip(api, download, workspace):
    data = safetensors_bytes(200_000)
    body, content_type = multipart_body("encoder.safetensors", data, {"sha256": sha(data)})
    response = await api("POST", "assets/upload/models", body,
                         headers={"Content-Type": content_type})
    assert response.status == 201, response.body
    assert response.body["name"] == "encoder.safetensors"
    assert response.body["format"] == "safetensors"
    assert response.body["metadata"]["type_check"] == "structure"
    [item] = await listed(api, "models", "encoder.safetensors")
    got = await download(item["id"])
    assert got.body == data and sha(got.body) == item["sha256"] == sha(data)
    assert temp_files(workspace) == []


async def test_name_in_a_header_and_unicode_names(upload, api, download):
    data = csv_bytes()
    name = "données d\u2019été.csv"
    response = await upload("datasets", "", data, params={"name": None},
                            headers={"X-Asset-Name": urllib.parse.quote(name)})
    assert response.status == 201, response.body
    assert response.body["name"] == name
    got = await download(response.body["id"])
    assert got.body == data
    assert "filename*=UTF-8''" + urllib.parse.quote(name, safe="") in \
        got.headers["Content-Disposition"]


async def test_digest_mismatch_leaves_nothing(upload, api, workspace):
    response = await upload("datasets", "bad.csv", csv_bytes(), params={"sha256": "0" * 64})
    assert response.status == 400
    assert response.body["error"]["code"] == "digest_mismatch"
    assert not (workspace / "datasets" / "bad.csv").exists()
    assert await listed(api, "datasets", "bad.csv") == []
    assert temp_files(workspace) == []


async def test_upload_needs_a_name_and_a_known_category(upload, api):
    nameless = await api("POST", "assets/upload/datasets", csv_bytes(),
                         headers={"Content-Type": "application/octet-stream"})
    assert nameless.status == 400 and nameless.body["error"]["code"] == "invalid_name"
    unknown = await upload("nope", "a.csv", csv_bytes())
    assert unknown.status == 404 and unknown.body["error"]["code"] == "unknown_category"


async def test_declared_length_over_the_limit_is_413_before_the_body(raw, workspace, api):
    conn = raw()
    await conn.open("POST", raw.api + "assets/upload/checkpoints?name=big.safetensors",
                    {"Content-Type": "application/octet-stream",
                     "Content-Length": str(SMALL_LIMIT + 1)})
    status, _headers, body = await conn.response()  # no byte of the body was sent
    await conn.close()
    assert status == 413
    assert b"too_large" in body
    assert temp_files(workspace) == []


async def test_size_limit_trips_mid_stream(raw, workspace, api):
    conn = raw()
    await conn.open("POST", raw.api + "assets/upload/checkpoints?name=huge.safetensors",
                    {"Content-Type": "application/octet-stream",
                     "Transfer-Encoding": "chunked"})
    data = safetensors_bytes(SMALL_LIMIT * 3)
    status = None
    for start in range(0, len(data), 32 * 1024):
        piece = data[start:start + 32 * 1024]
        try:
            await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        except (ConnectionError, OSError):
            break
        try:
            status, _headers, _body = await conn.response(timeout=0.05)
            break
        except asyncio.TimeoutError:
            continue
    if status is None:
        status, _headers, _body = await conn.response()
    sent = start + len(piece)
    await conn.close()
    assert status == 413
    assert sent < len(data), "the server read the whole body before refusing it"
    await eventually(lambda: temp_files(workspace) == [])
    assert not (workspace / "checkpoints" / "huge.safetensors").exists()
    assert await listed(api, "checkpoints", "huge.safetensors") == []


async def test_multipart_file_over_the_limit_is_refused(api, workspace):
    body, content_type = multipart_body("over.safetensors", safetensors_bytes(SMALL_LIMIT + 10))
    response = await api("POST", "assets/upload/checkpoints", body,
                         headers={"Content-Type": content_type})
    assert response.status == 413
    await eventually(lambda: temp_files(workspace) == [])
    assert await listed(api, "checkpoints", "over.safetensors") == []


async def test_upload_cut_off_mid_stream_leaves_nothing(raw, workspace, api, registry):
    data = csv_bytes(200_000)
    conn = raw()
    await conn.open("POST", raw.api + "assets/upload/datasets?name=cut.csv",
                    {"Content-Type": "application/octet-stream",
                     "Content-Length": str(len(data))})
    await conn.send(data[: len(data) // 2])
    await eventually(lambda: temp_files(workspace) != [])  # the temp file exists meanwhile
    conn.abort()
    await eventually(lambda: temp_files(workspace) == [])
    assert not (workspace / "datasets" / "cut.csv").exists()
    assert await listed(api, "datasets", "cut.csv") == []


async def test_collision_is_409_and_overwrite_moves_the_old_one_to_the_trash(
        upload, api, download, workspace):
    first = await upload("datasets", "same.csv", csv_bytes(3, seed=1))
    assert first.status == 201
    again = await upload("datasets", "same.csv", csv_bytes(3, seed=2))
    assert again.status == 409 and again.body["error"]["code"] == "name_exists"
    assert (workspace / "datasets" / "same.csv").read_bytes() == csv_bytes(3, seed=1)
    replaced = await upload("datasets", "same.csv", csv_bytes(3, seed=2),
                            params={"overwrite": "true"})
    assert replaced.status == 201
    assert replaced.body["id"] != first.body["id"]
    assert (await download(replaced.body["id"])).body == csv_bytes(3, seed=2)
    trash = await api("GET", "assets/trash", params={"category": "datasets"})
    [old] = [item for item in trash.body["items"] if item["id"] == first.body["id"]]
    assert old["state"] == "trashed" and old["sha256"] == sha(csv_bytes(3, seed=1))
    assert temp_files(workspace) == []


async def test_refused_types_leave_nothing(upload, api, workspace):
    not_safetensors = await upload("models", "w.safetensors", random_bytes(4096))
    assert not_safetensors.status == 415
    assert not_safetensors.body["error"]["code"] == "unsupported_type"
    wrong_extension = await upload("models", "tool.exe", random_bytes(100))
    assert wrong_extension.status == 415
    binary_csv = await upload("datasets", "b.csv", b"\x00\x01\x02" * 100)
    assert binary_csv.status == 415
    assert await listed(api, "models", "w.safetensors") == []
    assert not (workspace / "models" / "w.safetensors").exists()
    await eventually(lambda: temp_files(workspace) == [])


async def test_read_only_server_refuses_uploads(upload, services):
    services.workspace.read_only = True
    try:
        response = await upload("datasets", "ro.csv", csv_bytes())
    finally:
        services.workspace.read_only = False
    assert response.status == 409 and response.body["error"]["code"] == "read_only"


@pytest.mark.parametrize("assets_config", [{"upload_idle_timeout": 1.0}])
async def test_a_stalled_upload_is_closed_and_cleaned_up(raw, workspace, api):
    conn = raw()
    await conn.open("POST", raw.api + "assets/upload/datasets?name=stalled.csv",
                    {"Content-Type": "application/octet-stream", "Content-Length": "100000"})
    await conn.send(csv_bytes(100))
    await eventually(lambda: temp_files(workspace) != [])
    assert conn.reader is not None
    assert await asyncio.wait_for(conn.reader.read(), 10) == b""  # the server hung up
    await eventually(lambda: temp_files(workspace) == [])
    await conn.close()
    assert await listed(api, "datasets", "stalled.csv") == []


async def test_other_methods_on_the_upload_route_are_405(api):
    response = await api("GET", "assets/upload/datasets", validate=False)
    assert response.status == 405
