"""Server-Sent Events: the base handler every live stream subclasses.

A subclass names the topics it streams (``stream_topics``) and optionally the events a
new client gets first (``initial_events``, e.g. the current system sample). The base
does replay from ``Last-Event-ID``/``?last_event_id=``, ``retry:``, rate limiting
(``?max_hz=``), the bounded backlog that drops a client who cannot keep up, and
unsubscription when the client leaves. What one stream holds is bounded by the backlog
bound: a replay leaves in pages that each wait for the previous one to drain, events held
meanwhile or queued for the rate limit count toward the bound, and ``max_hz`` has a floor
(``NotebenchApp.sse_min_hz``). A user holds at most ``max_streams_per_user`` streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from tornado.iostream import StreamClosedError

from ..bounds import parse_number
from ..errors import ApiError, bad_request
from ..handlers import NotebenchHandler
from .bus import HEARTBEAT, Event, EventBus
from .transport import ClientWriter

MAX_HZ_LIMIT = 100.0
MIN_HZ_FLOOR = 1e-3  # whatever sse_min_hz says
_STREAM_COUNTS = "notebench_open_streams"  # application setting: user -> open streams


class StreamSubscriber:
    """One SSE connection as the bus sees it: frames in, bytes on the socket."""

    __slots__ = (
        "_held",
        "_held_bytes",
        "_last_flush",
        "_queued",
        "_queued_bytes",
        "_timer",
        "bus",
        "closed",
        "max_backlog",
        "min_interval",
        "replayed_through",
        "topics",
        "writer",
    )

    def __init__(self, handler: NotebenchHandler, bus: EventBus, topics: frozenset[str],
                 max_hz: float | None, max_backlog: int) -> None:
        self.topics = topics
        self.bus = bus
        self.writer = ClientWriter(handler.request.connection)
        self.max_backlog = max_backlog
        self.min_interval = 1.0 / max_hz if max_hz else 0.0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.replayed_through = 0
        self._held: list[Event] | None = []  # events that arrive while replaying
        self._held_bytes = 0
        self._queued: list[Event] = []  # events waiting for the rate limit
        self._queued_bytes = 0
        self._last_flush = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- bus side --------------------------------------------------------------------------

    def push(self, events: list[Event]) -> None:
        if self.closed.done():
            return
        if self._held is not None:
            self._held.extend(events)
            self._held_bytes += _size(events)
            if self._held_bytes > self.max_backlog:  # the replay is not being read
                self._drop()
            return
        if self.replayed_through:
            events = self._after_replay(events)
            if not events:
                return
        if self.min_interval:
            self._queued.extend(events)
            self._queued_bytes += _size(events)
            if self._queued_bytes > self.max_backlog:
                self._queued = _coalesce(self._queued)
                self._queued_bytes = _size(self._queued)
                if self._queued_bytes > self.max_backlog // 2:  # replayable events pile up
                    self._flush_queued()
                    return
            self._schedule()
            return
        self._send(events)

    def push_heartbeat(self) -> None:
        if not self.closed.done() and self._held is None:
            self._send((HEARTBEAT,))

    # -- handler side ----------------------------------------------------------------------

    async def replay(self, after_id: int) -> None:
        """Send what was missed since ``after_id``, page by page: a page leaves once the
        previous one has drained, so the socket never holds more than one."""
        pages = self.bus.replay(self.topics, after_id, max_bytes=max(self.max_backlog // 2, 1))
        async with contextlib.aclosing(pages):
            async for page in pages:
                waiter = self.writer.drained()
                if waiter is not None:
                    await asyncio.wait((waiter, self.closed),
                                       return_when=asyncio.FIRST_COMPLETED)
                if self.closed.done():
                    return
                self.replayed_through = max(
                    self.replayed_through, max((e.id for e in page if e.id is not None), default=0))
                self._send(page)

    def release(self, initial: list[Event]) -> None:
        """End the replay: send the initial events, then those that arrived meanwhile and
        were not replayed."""
        held, self._held = self._held or [], None
        self._held_bytes = 0
        if self.closed.done():
            return
        events = initial + self._after_replay(held)
        if events:
            self._send(events)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.closed.done():
            self.closed.set_result(None)

    # -- internals -------------------------------------------------------------------------

    def _after_replay(self, events: list[Event]) -> list[Event]:
        """Drop events the replay already sent. The writer thread hands committed events
        to the loop a little after the commit, so the replay may have read some of them
        from the store before the bus delivers them; ids arrive in order, so the check
        ends at the first newer one."""
        through = self.replayed_through
        fresh = [e for e in events if e.id is None or e.id > through]
        if any(e.id is not None for e in fresh):
            self.replayed_through = 0
        return fresh

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        wait = self._last_flush + self.min_interval - time.monotonic()
        loop = asyncio.get_running_loop()
        if wait <= 0:
            self._flush_queued()
        else:
            self._timer = loop.call_later(wait, self._flush_queued)

    def _flush_queued(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queued, self._queued = self._queued, []
        self._queued_bytes = 0
        if not queued or self.closed.done():
            return
        self._last_flush = time.monotonic()
        self._send(_coalesce(queued))

    def _send(self, events: Sequence[Event]) -> None:
        # A client is dropped when what it was given before is still unread past the bound,
        # not for one large write (after a pause of the loop, many events leave at once).
        if self.writer.backlog() > self.max_backlog:
            self._drop()
            return
        try:
            self.writer.write(events)
        except StreamClosedError:
            self.close()

    def _drop(self) -> None:
        """Disconnect a client that leaves too much unread."""
        self.bus.dropped_clients += 1
        self.writer.close()
        self.close()


def _size(events: Sequence[Event]) -> int:
    return sum(len(e.chunk) for e in events)


def _coalesce(events: list[Event]) -> list[Event]:
    """Keep every replayable event; of id-less ones keep the latest per topic and type."""
    latest: dict[tuple[str, str], int] = {}
    for index, event in enumerate(events):
        if event.id is None:
            latest[(event.topic, event.type)] = index
    if len(latest) == sum(1 for e in events if e.id is None):
        return events
    keep = set(latest.values())
    return [e for i, e in enumerate(events) if e.id is not None or i in keep]


class EventStreamHandler(NotebenchHandler):
    """Base of every SSE route."""

    _track_activity = False
    _stream_slot: tuple[dict[str, int], str] | None = None

    def stream_topics(self, *args: str) -> list[str]:
        """The topics this request streams (400 for unknown ones)."""
        raise NotImplementedError

    async def initial_events(self, topics: frozenset[str]) -> list[Event]:
        """Events a client receives first on connecting (e.g. the current sample)."""
        return []

    async def unreadable_area(self, topic: str) -> str | None:
        """The first area of ``topic`` the user may not read (None: the topic is readable)."""
        for area in self.services.bus.topics.areas(topic) or ():
            if not await self.is_allowed("read", f"notebench:{area}"):
                return area
        return None

    def _last_event_id(self) -> int | None:
        raw = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "last_event_id", None
        )
        return parse_number("last_event_id", raw, int, low=0, code="invalid_event_id")

    def _max_hz(self) -> float | None:
        # a configured floor of 0 still keeps the rate positive (its interval is 1/max_hz)
        low = max(self.services.config.sse_min_hz, MIN_HZ_FLOOR)
        return parse_number("max_hz", self.get_query_argument("max_hz", None), float,
                            low=low, high=MAX_HZ_LIMIT, code="invalid_max_hz")

    def _claim_stream(self) -> None:
        """Count this stream against its user's ``max_streams_per_user`` (429 past it);
        ``on_finish`` gives the slot back."""
        limit = self.services.config.max_streams_per_user
        user = self.principal()
        counts: dict[str, int] = self.settings.setdefault(_STREAM_COUNTS, {})
        held = counts.get(user, 0)
        if limit and held >= limit:
            raise ApiError(429, "too_many_streams",
                           f"at most {limit} open event streams per user", max_streams=limit)
        counts[user] = held + 1
        self._stream_slot = (counts, user)

    def on_finish(self) -> None:
        slot, self._stream_slot = self._stream_slot, None
        if slot is not None:
            counts, user = slot
            counts[user] -= 1
            if counts[user] <= 0:
                del counts[user]
        super().on_finish()

    async def get(self, *args: str) -> None:
        services = self.services
        bus = services.bus
        topics = frozenset(self.stream_topics(*args))
        areas = {topic: bus.topics.areas(topic) for topic in sorted(topics)}
        for topic, needed in areas.items():
            if needed is None:
                raise ApiError(400, "unknown_topic", f"unknown topic: {topic}")
        for topic in areas:
            area = await self.unreadable_area(topic)
            if area is not None:
                raise ApiError(403, "forbidden", f"reading the topic {topic} needs read "
                                                 f"on notebench:{area}")
        last_id = self._last_event_id()
        max_hz = self._max_hz()
        self._claim_stream()

        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-transform")
        self.set_header("X-Accel-Buffering", "no")
        sub = StreamSubscriber(self, bus, topics, max_hz, services.config.sse_max_backlog_bytes)
        self._subscriber = sub
        bus.subscribe(sub)
        try:
            self.write(b"retry: %d\n\n" % services.config.sse_retry_ms)
            await self.flush()
            if last_id is not None:
                await sub.replay(last_id)
            sub.release(await self.initial_events(topics))
            await sub.closed
        except StreamClosedError:
            pass
        finally:
            sub.close()
            bus.unsubscribe(sub)

    def on_connection_close(self) -> None:
        sub: StreamSubscriber | None = getattr(self, "_subscriber", None)
        if sub is not None:
            sub.close()

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        if self.request.connection.stream.closed():  # type: ignore[attr-defined]
            self._finished = True
            self.on_finish()
            return None
        return super().finish(*args, **kwargs)


class MultiplexStreamHandler(EventStreamHandler):
    """``GET stream?topics=a,b``: any topics on one connection."""

    def stream_topics(self, *args: str) -> list[str]:
        raw = self.get_query_argument("topics", "")
        topics = [t.strip() for t in raw.split(",") if t.strip()]
        if not topics:
            raise bad_request("name at least one topic: ?topics=logs,hardware", "missing_topics")
        return topics
