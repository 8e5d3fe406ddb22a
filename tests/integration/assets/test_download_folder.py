"""A folder asset downloaded as one zip: round trip, headers, path safety, clean-up."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from notebench.server.assets import handlers, sendfile
from tests.integration.assets.conftest import eventually, sha, temp_files
from tests.integration.assets.samples import csv_bytes, random_bytes
from tests.integration.assets.test_download import client, open_fds  # noqa: F401 (fixture)

FILES = {
    "labels.csv": csv_bytes(3),
    "cats/1.csv": csv_bytes(1),
    "cats/deep/er/2.csv": csv_bytes(2),
    "dogs/empty.bin": b"",
    "dogs/weights.bin": random_bytes(3 * 1024 * 1024 + 11),  # several pieces
    "été/naïve 名前.bin": random_bytes(1000),
}


@pytest.fixture
def framed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the chunks the handler framed itself (``sendfile.write_chunk``)."""
    sizes: list[int] = []
    real = handlers.write_chunk

    def spy(stream: Any, data: bytes) -> Any:
        sizes.append(len(data))
        return real(stream, data)

    monkeypatch.setattr(handlers, "write_chunk", spy)
    return sizes


def make_folder(workspace: Path, name: str = "images",
                files: dict[str, bytes] | None = None) -> Path:
    folder = workspace / "datasets" / name
    for rel, data in (files or FILES).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


async def register_folder(api, name: str = "images") -> dict:
    response = await api("POST", "assets/register", {"category": "datasets", "path": name})
    assert response.status == 200, response.body
    return response.body


def tree(workspace: Path) -> list[str]:
    """Every path of the workspace but the store's own files."""
    return sorted(p.relative_to(workspace).as_posix() for p in workspace.rglob("*")
                  if p.relative_to(workspace).parts[0] != ".notebench")


async def test_a_folder_downloads_as_a_zip_of_its_files(api, download, workspace, framed):
    make_folder(workspace)
    asset = await register_folder(api)
    before = tree(workspace)
    response = await download(asset["id"])
    assert response.code == 200
    assert response.headers["Content-Type"] == "application/zip"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="images.zip"')
    assert "filename*=UTF-8''images.zip" in disposition
    assert response.headers["Accept-Ranges"] == "none"
    assert "ETag" not in response.headers
    archive = zipfile.ZipFile(io.BytesIO(response.body))
    assert archive.testzip() is None
    names = archive.namelist()
    assert sorted(names) == sorted(FILES)  # relative to the folder, nothing else
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    for info in archive.infolist():
        assert info.compress_type == zipfile.ZIP_STORED
        assert archive.read(info) == FILES[info.filename]
    manifest = (await api("GET", f"assets/{asset['id']}", params={"manifest": "true"})
                ).body["manifest"]
    assert {f["path"]: f["sha256"] for f in manifest} == {
        name: sha(archive.read(name)) for name in names}
    assert tree(workspace) == before  # no temporary file left anywhere
    assert temp_files(workspace) == []
    assert sum(framed) == len(response.body)  # framed by us, not concatenated by Tornado


async def test_without_tornados_private_attributes_tornado_frames_the_zip(
        api, download, workspace, framed, monkeypatch):
    monkeypatch.setattr(sendfile, "PRIVATE_ATTRIBUTES",
                        (*sendfile.PRIVATE_ATTRIBUTES, "_attribute_of_another_tornado"))
    make_folder(workspace)
    asset = await register_folder(api)
    response = await download(asset["id"])
    assert response.code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.body))
    assert {name: archive.read(name) for name in archive.namelist()} == FILES
    assert framed == []


async def test_an_http_1_0_client_gets_the_zip_until_the_connection_closes(
        api, client, workspace, framed):  # noqa: F811
    make_folder(workspace, "old", {"a.csv": csv_bytes(1), "b/c.bin": random_bytes(2_500_000)})
    asset = await register_folder(api, "old")
    conn = await client()
    await conn.request(f"assets/download/{asset['id']}", version="HTTP/1.0")
    status, headers = await conn.head()
    assert status == 200 and "transfer-encoding" not in headers
    assert conn.reader is not None
    body = await conn.reader.read()  # no chunks in HTTP/1.0: the body ends with the connection
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.read("b/c.bin") == (workspace / "datasets" / "old" / "b" / "c.bin").read_bytes()
    assert framed == []


async def test_head_range_and_conditionals_on_a_folder(api, download, workspace):
    make_folder(workspace, "shards", {"a.csv": csv_bytes(1), "b.csv": csv_bytes(2)})
    asset = await register_folder(api, "shards")
    head = await download(asset["id"], method="HEAD")
    assert head.code == 200 and head.body == b""
    assert head.headers["Content-Type"] == "application/zip"
    ranged = await download(asset["id"], {"Range": "bytes=0-9",
                                          "If-None-Match": f'"{asset["sha256"]}"'})
    assert ranged.code == 200  # no ranges and no ETag for a generated archive
    archive = zipfile.ZipFile(io.BytesIO(ranged.body))
    assert archive.read("b.csv") == csv_bytes(2)


async def test_a_missing_or_replaced_member_is_refused_before_any_byte(
        api, download, workspace, tmp_path):
    folder = make_folder(workspace, "set", {"a.csv": csv_bytes(1), "sub/b.csv": csv_bytes(2)})
    asset = await register_folder(api, "set")
    secret = tmp_path / "secret.csv"
    secret.write_bytes(b"secret,1\n")
    (folder / "sub" / "b.csv").unlink()
    (folder / "sub" / "b.csv").symlink_to(secret)
    linked = await download(asset["id"])
    assert linked.code == 404 and b"sub/b.csv" in linked.body and b"secret" not in linked.body
    (folder / "sub" / "b.csv").unlink()
    missing = await download(asset["id"])
    assert missing.code == 404 and b"not_found" in missing.body
    (folder / "sub" / "b.csv").write_bytes(csv_bytes(2))
    os.link(folder / "a.csv", tmp_path / "outside.csv")
    hard = await download(asset["id"])
    assert hard.code == 403 and b"hard_link_refused" in hard.body
    os.unlink(tmp_path / "outside.csv")
    (folder / "sub").rename(folder / "moved")
    (folder / "sub").symlink_to(folder / "moved")  # a link on the way to a member
    assert (await download(asset["id"])).code == 404
    (folder / "sub").unlink()
    (folder / "moved").rename(folder / "sub")
    assert (await download(asset["id"])).code == 200
    (workspace / "datasets" / "set").rename(workspace / "datasets" / "elsewhere")
    assert (await download(asset["id"])).code == 404


async def test_a_client_gone_mid_archive_releases_its_files(api, client, download,  # noqa: F811
                                                            workspace):
    files = {f"part-{i}.bin": random_bytes(8 * 1024 * 1024) for i in range(3)}
    make_folder(workspace, "big", files)
    asset = await register_folder(api, "big")
    before = open_fds()
    conn = await client(rcvbuf=32 * 1024)
    await conn.request(f"assets/download/{asset['id']}")
    status, headers = await conn.head()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert len(await conn.body(128 * 1024)) == 128 * 1024
    conn.abort()
    await eventually(lambda: open_fds() <= before)
    again = await download(asset["id"])
    assert zipfile.ZipFile(io.BytesIO(again.body)).read("part-2.bin") == files["part-2.bin"]


async def test_a_member_failing_mid_archive_cuts_the_connection(api, client,  # noqa: F811
                                                                workspace):
    files = {"a-first.bin": random_bytes(8 * 1024 * 1024), "b-second.csv": csv_bytes(2)}
    folder = make_folder(workspace, "cut", files)
    asset = await register_folder(api, "cut")
    conn = await client(rcvbuf=32 * 1024)
    await conn.request(f"assets/download/{asset['id']}")
    status, _ = await conn.head()
    assert status == 200
    received = await conn.body(64 * 1024)
    (folder / "b-second.csv").unlink()  # the archive is still in the first member
    assert conn.reader is not None
    received += await conn.reader.read()  # until the server closes the connection
    assert not received.endswith(b"\r\n0\r\n\r\n")  # no chunked end: the client sees a failure
    assert len(received) > len(files["a-first.bin"])
