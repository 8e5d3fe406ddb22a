"""Downloads: streaming, Range (first, middle, suffix, invalid, multiple), ETag, links."""

from __future__ import annotations

import os

import pytest

from tests.integration.assets.conftest import eventually, sha
from tests.integration.assets.samples import random_bytes

DATA = random_bytes(1000)


async def make_blob(upload):
    response = await upload("artifacts", "blob.bin", DATA)
    assert response.status == 201
    return response.body


@pytest.mark.parametrize(("header", "expected", "content_range"), [
    ("bytes=0-99", DATA[:100], "bytes 0-99/1000"),
    ("bytes=400-599", DATA[400:600], "bytes 400-599/1000"),
    ("bytes=-100", DATA[-100:], "bytes 900-999/1000"),
    ("bytes=900-", DATA[900:], "bytes 900-999/1000"),
    ("bytes=990-5000", DATA[990:], "bytes 990-999/1000"),
])
async def test_single_ranges(upload, download, header, expected, content_range):
    blob = await make_blob(upload)
    response = await download(blob["id"], {"Range": header})
    assert response.code == 206
    assert response.body == expected
    assert response.headers["Content-Range"] == content_range
    assert int(response.headers["Content-Length"]) == len(expected)


@pytest.mark.parametrize("header", ["bytes=1000-1001", "bytes=5000-", "bytes=abc",
                                    "bytes=5-2", "bytes=-0", "bytes=", "bytes=1-2,x"])
async def test_unsatisfiable_or_invalid_ranges_are_416(upload, download, header):
    blob = await make_blob(upload)
    response = await download(blob["id"], {"Range": header})
    assert response.code == 416
    assert response.headers["Content-Range"] == "bytes */1000"
    assert b"range_not_satisfiable" in response.body


async def test_multiple_ranges_are_multipart(upload, download):
    blob = await make_blob(upload)
    response = await download(blob["id"], {"Range": "bytes=0-9,500-509,-5"})
    assert response.code == 206
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.split("boundary=")[1].encode()
    parts = response.body.split(b"--" + boundary)
    assert parts[-1] == b"--\r\n"
    bodies = [part.split(b"\r\n\r\n", 1)[1][:-2] for part in parts[1:-1]]
    assert bodies == [DATA[:10], DATA[500:510], DATA[-5:]]
    assert int(response.headers["Content-Length"]) == len(response.body)


async def test_other_units_are_ignored_and_conditionals_work(upload, download):
    blob = await make_blob(upload)
    full = await download(blob["id"], {"Range": "items=0-5"})
    assert full.code == 200 and full.body == DATA
    etag = full.headers["ETag"]
    assert etag == f'"{sha(DATA)}"'
    not_modified = await download(blob["id"], {"If-None-Match": etag})
    assert not_modified.code == 304 and not_modified.body == b""
    stale = await download(blob["id"], {"Range": "bytes=0-9", "If-Range": '"deadbeef"'})
    assert stale.code == 200 and stale.body == DATA
    fresh = await download(blob["id"], {"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.code == 206 and fresh.body == DATA[:10]


async def test_head_and_large_streamed_download(upload, download):
    data = random_bytes(5 * 1024 * 1024 + 17)
    asset = (await upload("artifacts", "large.bin", data)).body
    head = await download(asset["id"], method="HEAD")
    assert head.code == 200 and head.body == b""
    assert int(head.headers["Content-Length"]) == len(data)
    got = await download(asset["id"])
    assert got.body == data


async def test_unknown_and_trashed_assets_are_404(upload, download, api):
    blob = await make_blob(upload)
    assert (await download("0123456789abcdef")).code == 404
    assert (await download("roots")).code == 404
    assert (await api("DELETE", f"assets/{blob['id']}")).status == 200
    assert (await download(blob["id"])).code == 404


async def test_a_file_changed_in_place_loses_its_etag_until_rehashed(upload, download,
                                                                       workspace):
    blob = await make_blob(upload)
    path = workspace / "artifacts" / "blob.bin"
    changed = random_bytes(1000)
    path.write_bytes(changed)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 10**10))
    response = await download(blob["id"])
    assert response.body == changed
    assert "ETag" not in response.headers  # never a hash computed on the loop

    async def rehashed():
        again = await download(blob["id"])
        return again.headers.get("ETag") == f'"{sha(changed)}"'

    await eventually(rehashed)


async def test_a_registered_file_hard_linked_from_outside_is_refused(upload, download, workspace,
                                                                     tmp_path):
    blob = await make_blob(upload)
    os.link(workspace / "artifacts" / "blob.bin", tmp_path / "outside-link.bin")
    response = await download(blob["id"])
    assert response.code == 403
    assert b"hard_link_refused" in response.body
