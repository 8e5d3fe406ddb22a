"""Putting encoded SSE bytes on one client's connection, cheaply.

Tornado's ``HTTP1Connection.write`` costs two futures, a callback and a chunk encoding per
call; at a thousand clients that, and the garbage it makes, is most of the server's work.
Every event already carries its HTTP chunk encoded once (``Event.chunk``), so when
Tornado has nothing queued for the client we hand the bytes straight to the socket, and
give Tornado's buffer only what the socket did not take. The backlog is then the length
of that buffer. Connections where this does not apply (TLS, no chunked encoding, another
connection class) take Tornado's ordinary path with the backlog counted by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tornado.concurrent import Future
from tornado.iostream import SSLIOStream, StreamClosedError

from .bus import Event


class ClientWriter:
    """Writes events to one SSE connection; tells how many bytes wait for the client."""

    __slots__ = ("_last", "_pending", "connection", "direct", "stream")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.stream = getattr(connection, "stream", None)
        self.direct: bool | None = None  # decided at the first write, after the headers
        self._pending = 0
        self._last: Future[None] | None = None  # Tornado's future of the latest write

    @property
    def closed(self) -> bool:
        return self.stream is None or self.stream.closed()

    def backlog(self) -> int:
        """Bytes written for this client but not yet taken by its socket."""
        if self.direct:
            return len(self.stream._write_buffer)  # type: ignore[union-attr]
        return self._pending

    def drained(self) -> Future[None] | None:
        """A future done when everything written so far has left (None: nothing waits)."""
        if self.closed:
            return None
        if self.direct:
            stream = self.stream
            assert stream is not None
            return stream.write(b"") if stream._write_buffer else None
        last = self._last
        return last if self._pending and last is not None and not last.done() else None

    def write(self, events: Sequence[Event]) -> None:
        """Send events (raises StreamClosedError when the client is gone)."""
        if self.closed:
            raise StreamClosedError()
        if self.direct is None:
            self.direct = self._can_write_directly()
        if self.direct:
            if len(events) == 1:
                self._write_direct(events[0].chunk)
            else:
                self._write_direct(b"".join([e.chunk for e in events]))
        else:
            data = events[0].frame if len(events) == 1 else b"".join([e.frame for e in events])
            self._write_tornado(data)

    def _can_write_directly(self) -> bool:
        stream = self.stream
        return (
            not isinstance(stream, SSLIOStream)
            and bool(getattr(self.connection, "_chunking_output", False))
            and hasattr(stream, "_write_buffer")
            and hasattr(stream, "socket")
        )

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()

    def _write_direct(self, data: bytes) -> None:
        stream = self.stream
        assert stream is not None
        if not stream._write_buffer:
            try:
                sent = stream.socket.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                stream.close()
                raise StreamClosedError() from None
            if sent == len(data):
                return
            data = data[sent:]
        stream.write(data)

    def _write_tornado(self, data: bytes) -> None:
        size = len(data)
        self._pending += size
        future = self.connection.write(data)
        future.add_done_callback(lambda _: self._written(size))
        self._last = future

    def _written(self, size: int) -> None:
        self._pending -= size
