"""Downloads: streaming, Range (first, middle, suffix, invalid, multiple), ETag, links;
the body by ``sendfile`` (HTTP/1.1 and 1.0, keep-alive, a slow or vanishing client) and
the fallback through Tornado when its private attributes are missing."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from typing import Any

import pytest

from notebench.server.assets import sendfile
from tests.integration.assets.conftest import RawConnection, eventually, sha
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


# -- the body by sendfile, and without it ----------------------------------------------------


class RawClient(RawConnection):
    """Hand-written requests on one socket (any HTTP version, a chosen receive buffer)."""

    def __init__(self, port: int, auth: dict[str, str], api: str) -> None:
        super().__init__(port, auth)
        self.api = api

    async def connect(self, rcvbuf: int | None = None) -> RawClient:
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
        return self

    async def request(self, target: str, headers: dict[str, str] | None = None, *,
                      method: str = "GET", version: str = "HTTP/1.1") -> None:
        assert self.writer is not None
        lines = [f"{method} {self.api}{target} {version}", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in {**self.auth, **(headers or {})}.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin1"))
        await self.writer.drain()

    async def body(self, length: int, *, piece: int = 1 << 20, pause: float = 0.0) -> bytes:
        assert self.reader is not None
        parts = []
        while length:
            data = await asyncio.wait_for(self.reader.read(min(piece, length)), 20)
            if not data:
                break
            parts.append(data)
            length -= len(data)
            if pause:
                await asyncio.sleep(pause)
        return b"".join(parts)

    async def get(self, target: str, headers: dict[str, str] | None = None, *,
                  version: str = "HTTP/1.1") -> tuple[int, dict[str, str], bytes]:
        await self.request(target, headers, version=version)
        status, response_headers = await self.head()
        body = await self.body(int(response_headers.get("content-length", "0")))
        return status, response_headers, body

    async def at_eof(self) -> bool:
        assert self.reader is not None
        return await asyncio.wait_for(self.reader.read(1), 20) == b""


@pytest.fixture
def client(jp_http_port: int, jp_auth_header: dict, jp_base_url: str,
           http_server_client: Any) -> Any:
    """``conn = await client(rcvbuf=...)``: a connected ``RawClient``."""
    opened: list[RawClient] = []

    async def make(rcvbuf: int | None = None) -> RawClient:
        conn = RawClient(jp_http_port, jp_auth_header, f"{jp_base_url}notebench/api/")
        opened.append(conn)
        return await conn.connect(rcvbuf)

    yield make
    for conn in opened:
        if conn.writer is not None:
            conn.writer.close()


class SentLog(list):
    """``(bytes, socket left full)`` of each trip of the direct path to its thread."""

    @property
    def total(self) -> int:
        return sum(count for count, _ in self)

    @property
    def waited_on_loop(self) -> bool:
        return any(full for _, full in self)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> SentLog:
    """A record of every ``_send_some`` call (``os.sendfile`` in a thread)."""
    calls = SentLog()
    real = sendfile._send_some

    def spy(*args: Any) -> tuple[int, bool]:
        result = real(*args)
        calls.append(result)
        return result

    monkeypatch.setattr(sendfile, "_send_some", spy)
    return calls


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_the_body_goes_by_sendfile_on_a_kept_alive_connection(upload, client, sent):
    data = random_bytes(3 * 1024 * 1024 + 5)
    asset = (await upload("artifacts", "direct.bin", data)).body
    conn = await client()
    status, headers, body = await conn.get(f"assets/download/{asset['id']}")
    assert status == 200 and body == data
    assert int(headers["content-length"]) == len(data)
    assert "transfer-encoding" not in headers
    await eventually(lambda: sent.total == len(data))  # recorded once the thread returns
    # the same connection serves the next requests: Tornado's own count of the body held
    status, headers, body = await conn.get(f"assets/download/{asset['id']}",
                                           {"Range": "bytes=1000-1999"})
    assert status == 206 and body == data[1000:2000]
    await eventually(lambda: sent.total == len(data) + 1000)
    status, _, body = await conn.get(f"assets/download/{asset['id']}",
                                     {"Range": "bytes=0-9,20-29"})
    assert status == 206 and body.count(data[:10]) == 1  # multipart: through Tornado
    await eventually(lambda: sent.total == len(data) + 1000)
    status, _, body = await conn.get(f"assets/{asset['id']}")
    assert status == 200 and b'"sha256"' in body
    await conn.close()


async def test_an_http_1_0_client_gets_the_body_and_the_connection_closes(upload, client, sent):
    data = random_bytes(2 * 1024 * 1024 + 3)
    asset = (await upload("artifacts", "old.bin", data)).body
    conn = await client()
    status, headers, body = await conn.get(f"assets/download/{asset['id']}",
                                           version="HTTP/1.0")
    assert status == 200 and body == data
    assert int(headers["content-length"]) == len(data)
    assert await conn.at_eof()
    conn = await client()
    status, headers, body = await conn.get(f"assets/download/{asset['id']}",
                                           {"Range": "bytes=-10"}, version="HTTP/1.0")
    assert status == 206 and body == data[-10:]
    await eventually(lambda: sent.total == len(data) + 10)


async def test_a_slow_reader_gets_every_byte_and_the_loop_waits_for_its_socket(
        upload, client, sent):
    data = random_bytes(12 * 1024 * 1024)
    asset = (await upload("artifacts", "slow.bin", data)).body
    conn = await client(rcvbuf=32 * 1024)
    await conn.request(f"assets/download/{asset['id']}", {"Range": "bytes=100-"})
    status, headers = await conn.head()
    assert status == 206 and headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    first = await conn.body(256 * 1024, piece=16 * 1024, pause=0.01)
    rest = await conn.body(len(data) - 100 - len(first))
    assert first + rest == data[100:]
    assert sent.waited_on_loop  # the socket stayed full: the loop, not a thread, waited
    await eventually(lambda: sent.total == len(data) - 100)


async def test_a_client_gone_mid_body_releases_everything(upload, client, download, sent):
    data = random_bytes(16 * 1024 * 1024)
    asset = (await upload("artifacts", "gone.bin", data)).body
    before = open_fds()
    conn = await client(rcvbuf=32 * 1024)
    await conn.request(f"assets/download/{asset['id']}")
    status, _ = await conn.head()
    assert status == 200
    assert len(await conn.body(64 * 1024)) == 64 * 1024
    await eventually(lambda: sent.waited_on_loop)  # the loop waits on the full socket
    conn.abort()
    await eventually(lambda: open_fds() <= before)
    assert sent.total < len(data)
    again = await download(asset["id"])
    assert again.code == 200 and again.body == data


async def test_without_tornados_private_attributes_the_body_goes_through_tornado(
        upload, download, client, sent, monkeypatch):
    monkeypatch.setattr(sendfile, "PRIVATE_ATTRIBUTES",
                        (*sendfile.PRIVATE_ATTRIBUTES, "_attribute_of_another_tornado"))
    data = random_bytes(3 * 1024 * 1024 + 1)
    asset = (await upload("artifacts", "plain.bin", data)).body
    full = await download(asset["id"])
    assert full.code == 200 and full.body == data
    assert int(full.headers["Content-Length"]) == len(data)
    part = await download(asset["id"], {"Range": "bytes=-1000"})
    assert part.code == 206 and part.body == data[-1000:]
    conn = await client()
    status, _, body = await conn.get(f"assets/download/{asset['id']}", version="HTTP/1.0")
    assert status == 200 and body == data
    assert sent == []


async def test_a_body_reframed_after_the_headers_goes_through_tornado(upload, download, sent,
                                                                   monkeypatch):
    from notebench.server.assets import handlers

    monkeypatch.setattr(handlers, "expects_raw_body", lambda connection, length: False)
    data = random_bytes(2 * 1024 * 1024 + 9)
    asset = (await upload("artifacts", "reframed.bin", data)).body
    full = await download(asset["id"])
    assert full.code == 200 and full.body == data
    part = await download(asset["id"], {"Range": "bytes=10-19"})
    assert part.code == 206 and part.body == data[10:20]
    assert sent == []


class FakeConnection:
    """What the direct path reads of Tornado's HTTP/1 connection."""

    def __init__(self, stream: Any, length: int) -> None:
        self.stream = stream
        self._chunking_output = False
        self._expected_content_remaining = length


async def test_the_sender_on_a_socket_pair_and_a_cancelled_transfer(tmp_path, monkeypatch):
    from tornado.iostream import IOStream

    data = random_bytes(6 * 1024 * 1024 + 7)
    (tmp_path / "f.bin").write_bytes(data)
    fd = os.open(tmp_path / "f.bin", os.O_RDONLY)
    ours, theirs = socket.socketpair()
    stream = IOStream(ours)
    connection = FakeConnection(stream, len(data) - 5)
    assert sendfile.direct_stream(connection) is stream
    assert sendfile.expects_raw_body(connection, len(data) - 5)
    received = bytearray()

    def read_all() -> None:
        while len(received) < len(data) - 5:
            received.extend(theirs.recv(1 << 16))

    reader = threading.Thread(target=read_all)
    reader.start()
    await sendfile.DirectSender(connection, stream).send(fd, 5, len(data))
    await asyncio.to_thread(reader.join, 20)
    assert bytes(received) == data[5:] and connection._expected_content_remaining == 0

    started, finished = threading.Event(), threading.Event()
    real = sendfile._send_some

    def slow(*args: Any) -> tuple[int, bool]:
        started.set()
        time.sleep(0.2)
        try:
            return real(*args)
        finally:
            finished.set()

    monkeypatch.setattr(sendfile, "_send_some", slow)
    task = asyncio.ensure_future(sendfile.DirectSender(FakeConnection(stream, len(data)),
                                                       stream).send(fd, 0, len(data)))
    await eventually(started.is_set)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()  # the thread was done before its descriptors were let go
    os.close(fd)
    stream.close()
    theirs.close()


def test_the_direct_path_is_refused_for_connections_it_does_not_know():
    class Bare:
        stream = None

    assert sendfile.direct_stream(Bare()) is None
    assert sendfile.direct_stream(object()) is None
    assert not sendfile.expects_raw_body(Bare(), 10)
