"""Server-Sent Events: the base handler every live stream subclasses.

A subclass names the topics it streams (``stream_topics``) and optionally the events a
new client gets first (``initial_events``, e.g. the current system sample). The base
does replay from ``Last-Event-ID``/``?last_event_id=``, ``retry:``, rate limiting
(``?max_hz=``), the bounded backlog that drops a client who cannot keep up, and
unsubscription when the client leaves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from tornado.iostream import StreamClosedError

from ..errors import ApiError, bad_request
from ..handlers import NotebenchHandler
from .bus import HEARTBEAT, Event, EventBus
from .transport import ClientWriter

MAX_HZ_LIMIT = 100.0


class StreamSubscriber:
    """One SSE connection as the bus sees it: frames in, bytes on the socket."""

    __slots__ = (
        "_held",
        "_last_flush",
        "_queued",
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
        self._queued: list[Event] = []  # events waiting for the rate limit
        self._last_flush = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- bus side --------------------------------------------------------------------------

    def push(self, events: list[Event]) -> None:
        if self.closed.done():
            return
        if self._held is not None:
            self._held.extend(events)
            return
        if self.replayed_through:
            events = self._after_replay(events)
            if not events:
                return
        if self.min_interval:
            self._queued.extend(events)
            self._schedule()
            return
        self._send(events)

    def push_heartbeat(self) -> None:
        if not self.closed.done() and self._held is None:
            self._send((HEARTBEAT,))

    # -- handler side ----------------------------------------------------------------------

    def release(self, replayed: list[Event], initial: list[Event]) -> None:
        """End the replay: send what was missed, then what arrived meanwhile."""
        through = max((e.id for e in replayed if e.id is not None), default=0)
        held, self._held = self._held or [], None
        self.replayed_through = through
        events = replayed + initial + self._after_replay(held)
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
        self._timer = None
        queued, self._queued = self._queued, []
        if not queued or self.closed.done():
            return
        self._last_flush = time.monotonic()
        self._send(_coalesce(queued))

    def _send(self, events: Sequence[Event]) -> None:
        # A client is dropped when what it was given before is still unread past the bound,
        # not for one large write (after a pause of the loop, many events leave at once).
        if self.writer.backlog() > self.max_backlog:
            self.bus.dropped_clients += 1
            self.writer.close()
            self.close()
            return
        try:
            self.writer.write(events)
        except StreamClosedError:
            self.close()


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

    def stream_topics(self, *args: str) -> list[str]:
        """The topics this request streams (400 for unknown ones)."""
        raise NotImplementedError

    async def initial_events(self, topics: frozenset[str]) -> list[Event]:
        """Events a client receives first on connecting (e.g. the current sample)."""
        return []

    def _last_event_id(self) -> int | None:
        raw = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "last_event_id", None
        )
        if raw in (None, ""):
            return None
        try:
            value = int(raw)
        except ValueError:
            raise bad_request("last_event_id must be an integer", "invalid_event_id") from None
        if value < 0:
            raise bad_request("last_event_id must not be negative", "invalid_event_id")
        return value

    def _max_hz(self) -> float | None:
        raw = self.get_query_argument("max_hz", None)
        if raw in (None, ""):
            return None
        try:
            value = float(raw)
        except ValueError:
            raise bad_request("max_hz must be a number", "invalid_max_hz") from None
        if not 0 < value <= MAX_HZ_LIMIT:
            raise bad_request(f"max_hz must be in (0, {MAX_HZ_LIMIT:g}]", "invalid_max_hz")
        return value

    async def get(self, *args: str) -> None:
        services = self.services
        bus = services.bus
        topics = frozenset(self.stream_topics(*args))
        for topic in topics:
            if not bus.topics.known(topic):
                raise ApiError(400, "unknown_topic", f"unknown topic: {topic}")
        last_id = self._last_event_id()
        max_hz = self._max_hz()

        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-transform")
        self.set_header("X-Accel-Buffering", "no")
        sub = StreamSubscriber(self, bus, topics, max_hz, services.config.sse_max_backlog_bytes)
        self._subscriber = sub
        bus.subscribe(sub)
        try:
            self.write(b"retry: %d\n\n" % services.config.sse_retry_ms)
            await self.flush()
            replayed: list[Event] = []
            if last_id is not None:
                result = await bus.replay(topics, last_id)
                replayed = [result.reset] if result.reset is not None else result.events
            sub.release(replayed, await self.initial_events(topics))
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
