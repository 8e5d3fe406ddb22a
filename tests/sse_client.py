"""A raw-socket SSE client for tests: real HTTP/1.1, chunked decoding, frame parsing."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    """One SSE frame as received."""

    id: int | None
    event: str
    data: Any
    received: float
    raw: str = ""


@dataclass
class SSEConnection:
    """One open SSE response being read."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]
    frames: list[Frame] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    closed: bool = False
    _buffer: str = ""

    async def read_frames(self, count: int, timeout: float = 20.0) -> list[Frame]:
        """Read until ``count`` new frames arrived (or the timeout/EOF)."""
        target = len(self.frames) + count
        deadline = time.monotonic() + timeout
        while len(self.frames) < target and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self._read_chunk(remaining)
        return self.frames[target - count:]

    async def read_for(self, seconds: float) -> None:
        """Keep reading for a while (collecting frames and comments)."""
        deadline = time.monotonic() + seconds
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await self._read_chunk(remaining)

    async def _read_chunk(self, timeout: float) -> None:
        try:
            size_line = await asyncio.wait_for(self.reader.readline(), timeout)
        except asyncio.TimeoutError:
            return
        if not size_line:
            self.closed = True
            return
        size = int(size_line.strip() or b"0", 16)
        if size == 0:
            await self.reader.readline()
            self.closed = True
            return
        data = await self.reader.readexactly(size + 2)
        self._feed(data[:-2].decode())

    def _feed(self, text: str) -> None:
        self._buffer += text
        while "\n\n" in self._buffer:
            block, self._buffer = self._buffer.split("\n\n", 1)
            self._parse(block)

    def _parse(self, block: str) -> None:
        event_id: int | None = None
        event = "message"
        data_lines: list[str] = []
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data_lines.append(line[5:].lstrip(" "))
            elif line.startswith("retry:"):
                self.retry = int(line[6:].strip())
        if data_lines:
            self.frames.append(Frame(event_id, event, json.loads("\n".join(data_lines)),
                                     time.time(), block))

    def close(self) -> None:
        self.writer.close()
        self.closed = True

    @property
    def last_id(self) -> int | None:
        ids = [f.id for f in self.frames if f.id is not None]
        return ids[-1] if ids else None


async def open_sse(port: int, path: str, *, headers: dict[str, str] | None = None,
                   rcvbuf: int | None = None, host: str = "127.0.0.1",
                   tls: ssl.SSLContext | None = None) -> SSEConnection:
    """Open ``path`` on ``host:port`` (over TLS with ``tls``) and read the response head."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(
        sock=sock, limit=1 << 22, ssl=tls, server_hostname=host if tls else None)
    head = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 30)
    status = int(status_line.split()[1])
    response_headers: dict[str, str] = {}
    while True:
        line = (await reader.readline()).decode().strip()
        if not line:
            break
        key, _, value = line.partition(":")
        response_headers[key.strip().lower()] = value.strip()
    return SSEConnection(reader, writer, status, response_headers)
