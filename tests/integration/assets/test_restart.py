"""A server killed mid-upload: the next start clears its temp files, resumable uploads go on."""

from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.request
from pathlib import Path

from tests.integration.assets.samples import csv_bytes
from tests.server_process import ServerProcess


def call(server: ServerProcess, method: str, path: str, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"{server.url}notebench/api/{path}", data=data, method=method,
        headers={"Authorization": f"token {server.token}", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def tmp_entries(root: Path) -> list[str]:
    folder = root / "notebench" / "datasets" / ".notebench-tmp"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_crash_leftovers_are_cleared_at_the_next_start(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    extra = ["--NotebenchAssetRegistry.upload_batch_bytes=65536"]
    server = ServerProcess(root, extra=extra).start()
    sock = None
    try:
        data = csv_bytes(100_000)
        # a resumable upload with one chunk stored
        status, _, body = call(server, "POST", "assets/uploads", json.dumps({
            "category": "datasets", "name": "resumed.csv", "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}).encode())
        assert status == 201
        uid = json.loads(body)["id"]
        status, _, _ = call(server, "PATCH", f"assets/uploads/{uid}", data[:1000],
                            {"Upload-Offset": "0"})
        assert status == 200
        # a streamed upload in flight when the server dies
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall((f"POST /notebench/api/assets/upload/datasets?name=inflight.csv HTTP/1.1\r\n"
                      f"Host: 127.0.0.1:{server.port}\r\nAuthorization: token {server.token}\r\n"
                      f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:300_000])
        wait_for(lambda: any(n.startswith("up-") for n in tmp_entries(root)))
        server.kill()
        part = next(root.glob(f"notebench/datasets/.notebench-tmp/res-{uid}.part"))
        with part.open("ab") as handle:  # bytes written but never recorded (no fsync)
            handle.write(b"garbage")
    finally:
        if sock is not None:
            sock.close()
        server.kill()
    leftovers = tmp_entries(root)
    assert any(n.startswith("up-") for n in leftovers)

    server = ServerProcess(root, extra=extra).start()
    try:
        wait_for(lambda: tmp_entries(root) == [f"res-{uid}.part"])
        assert part.stat().st_size == 1000  # cut back to the recorded offset
        status, headers, _ = call(server, "HEAD", f"assets/uploads/{uid}")
        assert status == 200 and headers["Upload-Offset"] == "1000"
        status, _, _ = call(server, "PATCH", f"assets/uploads/{uid}", data[1000:],
                            {"Upload-Offset": "1000"})
        assert status == 200
        status, _, body = call(server, "POST", f"assets/uploads/{uid}/complete")
        assert status == 201, body
        asset = json.loads(body)
        status, _, got = call(server, "GET", f"assets/download/{asset['id']}")
        assert got == data
        status, _, listing = call(server, "GET", "assets/list/datasets?name=inflight")
        assert json.loads(listing)["items"] == []
        assert not (root / "notebench" / "datasets" / "inflight.csv").exists()
        assert tmp_entries(root) == []
    finally:
        server.stop()
