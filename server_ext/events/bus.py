"""The event bus: topics, one durable event log, delivery to subscribers.

Replayable events are appended to the store's ``events`` table by the writer thread,
which assigns ids from one global sequence; they are delivered to subscribers only
after their commit, so an id a client has seen is always replayable. Ephemeral events
(system samples) carry no id and are delivered at once. Every event is encoded into
its SSE frame exactly once, whatever the number of subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from tornado.ioloop import PeriodicCallback

from ..store import Store, get_meta, set_meta

log = logging.getLogger("notebench.events")

_REPLAY_PAGE = 5000


def http_chunk(data: bytes) -> bytes:
    """``data`` as one chunk of an HTTP/1.1 chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


@dataclass(slots=True)
class Event:
    """One event, with its SSE frame (and that frame as an HTTP chunk) encoded once."""

    topic: str
    type: str
    data: Any
    ts: float
    id: int | None = None
    frame: bytes = b""
    chunk: bytes = b""

    def __post_init__(self) -> None:
        if self.frame and not self.chunk:
            self.chunk = http_chunk(self.frame)


HEARTBEAT = Event("", "heartbeat", None, 0.0, None, b": keepalive\n\n")


def encode_payload(event_id: int | None, topic: str, type_: str, ts: float, data: Any) -> bytes:
    """The JSON body of an event as clients receive it in ``data:``."""
    return orjson.dumps({"id": event_id, "topic": topic, "type": type_, "ts": ts, "data": data})


def sse_frame(event_id: int | None, type_: str, payload: bytes) -> bytes:
    """One SSE frame; id-less frames leave the client's last event id alone."""
    head = b"id: %d\n" % event_id if event_id is not None else b""
    return head + b"event: " + type_.encode() + b"\ndata: " + payload + b"\n\n"


class Subscriber(Protocol):
    """What the bus needs of a live stream."""

    topics: frozenset[str]

    def push(self, events: list[Event]) -> None: ...

    def push_heartbeat(self) -> None: ...


class TopicRegistry:
    """Known topic names and patterns (``job:<id>`` and the like), each with the areas a
    reader needs ``read`` on (``notebench:<area>``) to stream it."""

    def __init__(self) -> None:
        self._names: dict[str, tuple[str, ...]] = {}
        self._patterns: list[tuple[re.Pattern[str], tuple[str, ...]]] = []

    def add(self, name: str, areas: Iterable[str]) -> None:
        self._names[name] = _areas(areas)

    def add_pattern(self, pattern: str, areas: Iterable[str]) -> None:
        self._patterns.append((re.compile(pattern), _areas(areas)))

    def areas(self, topic: str) -> tuple[str, ...] | None:
        """The areas whose read permission the topic needs; None for an unknown topic."""
        found = self._names.get(topic)
        if found is not None:
            return found
        return next((areas for p, areas in self._patterns if p.fullmatch(topic)), None)

    def known(self, topic: str) -> bool:
        return self.areas(topic) is not None

    def names(self) -> list[str]:
        return sorted(self._names)


def _areas(areas: Iterable[str]) -> tuple[str, ...]:
    found = tuple(areas)
    if not found or isinstance(areas, str):
        raise ValueError("a topic names the areas (a tuple) its readers need read on")
    return found


class EventBus:
    """Publishes events on topics to subscribers, through the durable event log."""

    def __init__(
        self,
        store: Store | None,
        *,
        keep_events: int = 200_000,
        heartbeat_interval: float = 15.0,
    ) -> None:
        self.store = store
        self.keep_events = keep_events
        self.heartbeat_interval = heartbeat_interval
        self.topics = TopicRegistry()
        self._subs: dict[str, set[Subscriber]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: list[Event] = []
        self._outbox_lock = threading.Lock()
        self._drain_scheduled = False
        self._heartbeat: PeriodicCallback | None = None
        # writer-thread state (the sequence is read from the store on first append)
        self._next_id: int | None = None
        self.pruned_through = 0
        # counters (read by stats)
        self.published = 0
        self.delivered_frames = 0
        self.dropped_clients = 0

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Load the sequence position from the store and start heartbeats."""
        self._loop = asyncio.get_running_loop()
        if self.store is not None:
            _, self.pruned_through = await self.store.read(_sequence_position)
        self._heartbeat = PeriodicCallback(self._send_heartbeat, self.heartbeat_interval * 1000)
        self._heartbeat.start()

    def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    @property
    def durable(self) -> bool:
        return self.store is not None and not self.store.read_only

    @property
    def last_id(self) -> int:
        return (self._next_id or 1) - 1

    # -- publishing ---------------------------------------------------------------------

    def publish(self, topic: str, type_: str, data: Any, *, replay: bool = True) -> None:
        """Publish an event; thread-safe. Replayable events get a durable id first."""
        ts = time.time()
        if replay and self.durable:
            assert self.store is not None
            self.store.write_nowait(
                lambda conn: self.append(conn, topic, type_, ts, data), self.deliver_soon
            )
            return
        self.published += 1
        payload = encode_payload(None, topic, type_, ts, data)
        self.deliver_soon(Event(topic, type_, data, ts, None, sse_frame(None, type_, payload)))

    def append(self, conn: sqlite3.Connection, topic: str, type_: str, ts: float,
               data: Any) -> Event:
        """Writer thread, inside a caller's transaction: assign the next id, store the
        event and encode its frame. Hand the event to ``deliver_soon`` after the commit;
        a capability does this to store its rows and their events in one transaction."""
        self.published += 1
        if self._next_id is None:
            last_id, self.pruned_through = _sequence_position(conn)
            self._next_id = last_id + 1
        event_id = self._next_id
        payload = encode_payload(event_id, topic, type_, ts, data)
        conn.execute(
            "INSERT INTO events (id, topic, type, ts, data) VALUES (?, ?, ?, ?, ?)",
            (event_id, topic, type_, ts, payload),
        )
        self._next_id = event_id + 1
        if event_id - self.pruned_through > self.keep_events * 1.1 + 100:
            self._prune(conn, event_id - self.keep_events)
        return Event(topic, type_, data, ts, event_id, sse_frame(event_id, type_, payload))

    def _prune(self, conn: sqlite3.Connection, through: int) -> None:
        conn.execute("DELETE FROM events WHERE id <= ?", (through,))
        set_meta(conn, "events_pruned_through", str(through))
        self.pruned_through = through

    def deliver_soon(self, event: Event) -> None:
        """Hand an event to the loop; many events from one commit travel together."""
        loop = self._loop
        if loop is None:
            return
        with self._outbox_lock:
            self._outbox.append(event)
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._outbox_lock:
            events, self._outbox = self._outbox, []
            self._drain_scheduled = False
        self.deliver(events)

    def deliver(self, events: list[Event]) -> None:
        """Loop: give each subscriber, in one call, the events of its topics."""
        if len(events) == 1:  # the common case: no per-subscriber lists at all
            subs = self._subs.get(events[0].topic)
            if subs:
                self.delivered_frames += len(subs)
                for sub in tuple(subs):
                    sub.push(events)
            return
        per_sub: dict[Subscriber, list[Event]] = {}
        for event in events:
            for sub in self._subs.get(event.topic, ()):
                batch = per_sub.get(sub)
                if batch is None:
                    per_sub[sub] = [event]
                else:
                    batch.append(event)
        for sub, batch in per_sub.items():
            self.delivered_frames += len(batch)
            sub.push(batch)

    # -- subscribers -------------------------------------------------------------------

    def subscribe(self, sub: Subscriber) -> None:
        for topic in sub.topics:
            self._subs.setdefault(topic, set()).add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        for topic in sub.topics:
            subs = self._subs.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[topic]

    def subscribers(self) -> set[Subscriber]:
        """Every distinct live subscriber."""
        return {sub for subs in self._subs.values() for sub in subs}

    def subscriber_count(self, topic: str | None = None) -> int:
        """Streams to clients (the server's own followers, ``internal = True``, not counted)."""
        subs = self._subs.get(topic, set()) if topic is not None else self.subscribers()
        return sum(1 for sub in subs if not getattr(sub, "internal", False))

    def _send_heartbeat(self) -> None:
        for sub in self.subscribers():
            sub.push_heartbeat()

    # -- replay -------------------------------------------------------------------------

    async def replay(self, topics: Iterable[str], after_id: int, *,
                     max_bytes: int = 1 << 20) -> AsyncGenerator[list[Event], None]:
        """Events of ``topics`` with id > ``after_id`` up to the log's end when asked, in
        pages of at most ``max_bytes`` (or one event); or a page of one reset event, alone
        or after some pages, when some are gone. The caller sends a page before asking for
        the next, so one replay holds one page in memory."""
        topic_list = sorted(set(topics))
        if self.store is None:
            yield [self._reset_event(after_id, "no event log")]
            return
        last_id, pruned = await self.store.read(_sequence_position)
        if after_id > last_id:
            yield [self._reset_event(after_id, "unknown event id", last_id)]
            return
        cursor = after_id
        while cursor < last_id:
            page, more = await self.store.read(
                lambda conn, c=cursor: _read_events(conn, topic_list, c, last_id,
                                                    _REPLAY_PAGE, max_bytes))
            # checked after reading: a prune racing the read must not leave a silent gap
            if cursor < max(pruned, self.pruned_through):
                reason = "event id older than the kept log"
                yield [self._reset_event(after_id, reason, last_id)]
                return
            if not page:
                return
            yield page
            if not more:
                return
            cursor = page[-1].id or last_id

    def _reset_event(self, after_id: int, reason: str, last_id: int | None = None) -> Event:
        last = self.last_id if last_id is None else last_id
        data = {"reason": reason, "last_event_id": after_id,
                "oldest_kept_id": self.pruned_through + 1, "current_id": last}
        payload = encode_payload(last, "", "reset", time.time(), data)
        return Event("", "reset", data, time.time(), last, sse_frame(last, "reset", payload))


def _sequence_position(conn: sqlite3.Connection) -> tuple[int, int]:
    row = conn.execute("SELECT MAX(id) FROM events").fetchone()
    pruned = get_meta(conn, "events_pruned_through")
    pruned_through = int(pruned) if pruned else 0
    return max(row[0] or 0, pruned_through), pruned_through


def _read_events(conn: sqlite3.Connection, topics: list[str], after_id: int, through: int,
                 limit: int, max_bytes: int) -> tuple[list[Event], bool]:
    """Events with ``after_id < id <= through``: at most ``limit`` of them and about
    ``max_bytes`` (at least one); and whether more may follow."""
    marks = ",".join("?" * len(topics))
    cursor = conn.execute(
        f"SELECT id, topic, type, ts, data FROM events WHERE id > ? AND id <= ? "
        f"AND topic IN ({marks}) ORDER BY id LIMIT ?",
        (after_id, through, *topics, limit),
    )
    events: list[Event] = []
    size = 0
    for r in cursor:
        frame = sse_frame(r["id"], r["type"], bytes(r["data"]))
        if events and size + len(frame) > max_bytes:
            cursor.close()
            return events, True
        size += len(frame)
        events.append(Event(r["topic"], r["type"], None, r["ts"], r["id"], frame))
    return events, len(events) == limit
