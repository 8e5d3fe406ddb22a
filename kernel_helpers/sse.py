"""Parsing a ``text/event-stream`` response into events."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass
class Event:
    """One Server-Sent Event; ``data`` is JSON-decoded when it is JSON."""

    id: int | None
    event: str
    data: Any
    topic: str | None = None


def _make_event(event_id: int | None, event: str, data: Any) -> Event:
    topic = data.get("topic") if isinstance(data, dict) else None
    return Event(event_id, event, data, topic if isinstance(topic, str) else None)


class SSEParser:
    """Incremental ``text/event-stream`` parser: feed bytes, get complete events.

    Follows the HTML spec's field rules: ``data`` lines joined with newlines,
    ``:`` comments ignored, ``retry`` in ms, the ``id`` of the last complete block
    kept for reconnection; CRLF, LF or CR line ends, split anywhere across chunks.
    A block that names an ``event`` but has no ``data`` is still dispatched, with
    data None.
    """

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id  # value to send as Last-Event-ID
        self.retry_ms: int | None = None
        self._buf = b""
        self._bom_checked = False
        self._reset_block()

    def _reset_block(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None  # id field of the block being read

    def feed(self, chunk: bytes) -> list[Event]:
        """Consume ``chunk``; return the events it completes."""
        self._buf += chunk
        if not self._bom_checked:
            if len(self._buf) < 3 and b"\xef\xbb\xbf".startswith(self._buf):
                return []
            self._bom_checked = True
            self._buf = self._buf.removeprefix(b"\xef\xbb\xbf")
        events: list[Event] = []
        buf = self._buf
        start = 0
        n = len(buf)
        while start < n:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, lf if lf >= 0 else n)
            if cr >= 0:
                if cr == n - 1:
                    break  # a CR at the end: the LF of a CRLF may follow
                end, nxt = cr, cr + (2 if buf[cr + 1 : cr + 2] == b"\n" else 1)
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            event = self._line(buf[start:end].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            start = nxt
        self._buf = buf[start:]
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / heartbeat
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        data_lines, event, raw_id = self._data, self._event, self._id
        self._reset_block()
        if raw_id is not None:  # committed only once the block is complete
            self.last_event_id = raw_id or None
        if not data_lines and not event:
            return None  # only id/retry fields (or nothing): no event
        text = "\n".join(data_lines)
        data: Any = None
        if data_lines:
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                data = text
        event_id = int(raw_id) if raw_id and raw_id.isdigit() else None
        return _make_event(event_id, event or "message", data)


# --------------------------------------------------------------------------- client


def _read_events(resp: http.client.HTTPResponse, parser: SSEParser) -> Iterator[Event]:
    """Events of one response until it ends (errors propagate)."""
    while True:
        try:
            chunk = resp.read1(65536)
        except http.client.IncompleteRead as exc:
            raise ConnectionError("stream cut in the middle of a chunk") from exc
        if not chunk:
            return
        yield from parser.feed(chunk)



