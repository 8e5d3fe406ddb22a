"""``notebench.assets`` (the kernel side) against a real server, from a worker thread."""

from __future__ import annotations

import asyncio
import io
import json
import pickle
import struct
import zipfile

import pytest

from notebench import assets
from notebench.client import ApiError, Client
from tests.integration.assets.conftest import sha
from tests.integration.assets.samples import csv_bytes, npy_bytes, random_bytes


@pytest.fixture
def client(jp_http_port, jp_base_url, jp_auth_header, http_server_client):
    token = jp_auth_header["Authorization"].split()[1]
    return Client(f"http://127.0.0.1:{jp_http_port}{jp_base_url}", token)


async def test_upload_list_download_open(client, tmp_path):
    local = tmp_path / "train.csv"
    local.write_bytes(csv_bytes(2000))
    asset = await asyncio.to_thread(assets.upload, local, "datasets", tags=["k"],
                                    metadata={"rows": 2000}, client=client)
    assert asset["sha256"] == sha(local.read_bytes())
    assert asset["metadata"]["rows"] == 2000
    listed = await asyncio.to_thread(assets.list, "datasets", tag="k", client=client)
    assert [item["id"] for item in listed] == [asset["id"]]
    dest = tmp_path / "out"
    dest.mkdir()
    path = await asyncio.to_thread(assets.download, asset["id"], dest, client=client)
    assert path == dest / "train.csv" and path.read_bytes() == local.read_bytes()
    with await asyncio.to_thread(assets.open, asset["id"], client=client) as handle:
        assert handle.read() == local.read_bytes()
    with pytest.raises(ApiError) as info:
        await asyncio.to_thread(assets.upload, local, "datasets", client=client)
    assert info.value.status == 409


async def test_resumable_upload_survives_a_dropped_connection(client, tmp_path, monkeypatch):
    local = tmp_path / "big.bin"
    local.write_bytes(random_bytes(3 * 1024 * 1024 + 5))
    original = assets._Slice.read
    calls = {"n": 0}

    def flaky(self, size=-1):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionResetError("the network went away")
        return original(self, size)

    monkeypatch.setattr(assets._Slice, "read", flaky)
    asset = await asyncio.to_thread(assets.upload, local, "artifacts", resumable=True,
                                    part_bytes=2 * 1024 * 1024, client=client)
    assert calls["n"] > 2
    assert asset["sha256"] == sha(local.read_bytes())
    path = await asyncio.to_thread(assets.download, asset["id"], tmp_path / "copy.bin",
                                   client=client)
    assert path.read_bytes() == local.read_bytes()


async def test_download_resumes_a_partial_file(client, tmp_path, upload):
    data = random_bytes(300_000)
    asset = (await upload("artifacts", "p.bin", data)).body
    target = tmp_path / "p.bin"
    (tmp_path / "p.bin.part").write_bytes(data[:100_000])
    await asyncio.to_thread(assets.download, asset["id"], target, client=client)
    assert target.read_bytes() == data
    (tmp_path / "p.bin.part").write_bytes(b"x" * 100_000)  # a corrupt partial file
    target.unlink()
    with pytest.raises(OSError):
        await asyncio.to_thread(assets.download, asset["id"], target, client=client)
    assert not (tmp_path / "p.bin.part").exists()


async def test_register_finds_the_category_of_a_local_path(client, workspace):
    path = workspace / "datasets" / "mine" / "local.csv"
    path.parent.mkdir()
    path.write_bytes(csv_bytes())
    asset = await asyncio.to_thread(assets.register, path, tags=["x"], client=client)
    assert asset["category"] == "datasets" and asset["rel_path"] == "mine/local.csv"
    with pytest.raises(ValueError):
        await asyncio.to_thread(assets.register, workspace.parent / "elsewhere.csv",
                                client=client)


async def test_load_never_unpickles_arbitrary_objects(client, upload):
    array = (await upload("datasets", "a.npy", npy_bytes())).body
    loaded = await asyncio.to_thread(assets.load, array["id"], client=client)
    assert list(loaded) == [0.0, 0.0, 0.0, 0.0]

    class Evil:
        def __reduce__(self):
            return (exec, ("import os; os.environ['NOTEBENCH_PWNED'] = '1'",))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(Evil(), protocol=2))
        archive.writestr("evil/version", "3\n")
    evil = (await upload("checkpoints", "evil.pt", buffer.getvalue())).body
    assert evil["metadata"]["untrusted_pickle"] is True
    with pytest.raises(Exception):  # noqa: B017 - torch's weights_only refusal
        await asyncio.to_thread(assets.load, evil["id"], client=client)
    import os

    assert "NOTEBENCH_PWNED" not in os.environ

    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                         "__metadata__": {"format": "pt"}}).encode()
    header += b" " * (-len(header) % 8)
    weights = struct.pack("<Q", len(header)) + header + struct.pack("<4f", 1, 2, 3, 4)
    stored = (await upload("models", "w.safetensors", weights)).body
    tensors = await asyncio.to_thread(assets.load, stored["id"], client=client)
    assert tensors["w"].tolist() == [[1.0, 2.0], [3.0, 4.0]]


async def test_a_folder_asset_downloads_as_a_zip(client, tmp_path, jp_root_dir):
    folder = jp_root_dir / "notebench" / "datasets" / "shards"
    members = {"a.csv": csv_bytes(5), "part/b.bin": random_bytes(70_000)}
    for rel, data in members.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    asset = await asyncio.to_thread(client.post, "assets/register",
                                    json={"category": "datasets", "path": "shards"})
    assert asset["kind"] == "dir"
    path = await asyncio.to_thread(assets.download, asset["id"], tmp_path, client=client)
    assert path == tmp_path / "shards.zip" and not (tmp_path / "shards.zip.part").exists()
    with zipfile.ZipFile(path) as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == members
