"""Fixtures of the asset tests: a server with import folders, upload and raw-socket helpers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

SMALL_LIMIT = 256 * 1024  # the checkpoints category's size limit in these tests


@pytest.fixture
def import_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "import"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def assets_config(import_dir: Path) -> dict[str, Any]:
    """``c.NotebenchAssetRegistry`` of the test server (tests may override this fixture)."""
    return {"import_dirs": [str(import_dir)], "scan_interval": 0.0,
            "size_limits": {"checkpoints": SMALL_LIMIT}}


@pytest.fixture
def jp_server_config(notebench_config: dict[str, Any],
                     assets_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"notebench.server": True}},
        "NotebenchApp": notebench_config,
        "NotebenchAssetRegistry": assets_config,
    }


@pytest.fixture
def workspace(services: Any) -> Path:
    return services.workspace.path


@pytest.fixture
def registry(services: Any) -> Any:
    return services.assets


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def upload(api: Any) -> Any:
    """``await upload("datasets", "a.csv", b"...")``: a raw streamed upload."""

    async def send(category: str, name: str, data: bytes, *, params: dict | None = None,
                   headers: dict | None = None, validate: bool = True) -> Any:
        query = {k: v for k, v in {"name": name, **(params or {})}.items() if v is not None}
        return await api("POST", f"assets/upload/{category}", data, params=query,
                         headers={"Content-Type": "application/octet-stream", **(headers or {})},
                         validate=validate)

    return send


@pytest.fixture
def download(jp_fetch: Any) -> Any:
    """``await download(asset_id, headers)``: the raw response (no JSON decoding)."""

    async def fetch(asset_id: str, headers: dict | None = None, method: str = "GET") -> Any:
        return await jp_fetch("notebench", "api", "assets", "download", asset_id,
                              method=method, headers=headers or {}, raise_error=False)

    return fetch


def multipart_body(filename: str, data: bytes, fields: dict[str, str] | None = None,
                   boundary: str = "nbBoundary7MA4YWxkTrZu0gW") -> tuple[bytes, str]:
    """A form with optional text fields first and one file part."""
    parts = []
    for key, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                     f"{value}\r\n".encode())
    quoted = urllib.parse.quote(filename, safe="")
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f"filename*=UTF-8''{quoted}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class RawConnection:
    """An HTTP/1.1 request written by hand over a real socket (cut-offs, slow bodies)."""

    def __init__(self, port: int, token_header: dict[str, str]) -> None:
        self.port = port
        self.auth = token_header
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, method: str, target: str, headers: dict[str, str]) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in {**self.auth, **headers}.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin1"))
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def head(self, timeout: float = 20) -> tuple[int, dict[str, str]]:
        """The status and the (lower-cased) headers of the response."""
        assert self.reader is not None
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *header_lines = head.decode("latin1").split("\r\n")
        headers = {}
        for line in header_lines:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    async def response(self, timeout: float = 20) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None
        status, headers = await self.head(timeout)
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout) if length else b""
        return status, headers, body

    def abort(self) -> None:
        """Close the socket abruptly (RST), as a client that crashed."""
        assert self.writer is not None
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            import socket
            import struct

            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.close()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()


@pytest.fixture
def raw(jp_http_port: int, jp_auth_header: dict, jp_base_url: str, http_server_client: Any):
    """``conn = raw(); await conn.open("POST", raw.api + "assets/...", headers)``."""

    def make() -> RawConnection:
        return RawConnection(jp_http_port, jp_auth_header)

    make.api = f"{jp_base_url}notebench/api/"  # type: ignore[attr-defined]
    return make


def temp_files(workspace: Path) -> list[str]:
    """Everything in the roots' temp folders."""
    found = []
    for root in workspace.iterdir():
        tmp = root / ".notebench-tmp"
        if tmp.is_dir():
            found += [f"{root.name}/{p.name}" for p in tmp.iterdir()]
    return found


async def eventually(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async or plain predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)


__all__ = ["RawConnection", "dump", "eventually", "multipart_body", "os", "sha", "temp_files"]
