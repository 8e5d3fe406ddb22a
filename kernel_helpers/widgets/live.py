"""The live feed: one SSE connection of a kernel, read in a background thread.

``LiveFeed`` follows ``notebench/api/stream`` through ``notebench.Client`` (asking the
server to coalesce with ``?max_hz=``), keeps the id of the last event, and hands events
to its listeners in batches from a second thread, at most ``redraw_hz`` times a second,
whatever the event rate. When the stream drops it reports ``reconnecting`` and resumes
from the last id (no gap); when the server cannot be reached again it reports ``gone``.
Changing the topics (a job starts, another ends) reopens the stream from the last id at
once.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import time
from typing import Any, Protocol

from ..client import ApiError, Client
from ..sse import Event

__all__ = ["CONNECTING", "GONE", "LIVE", "RECONNECTING", "STOPPED", "Listener", "LiveFeed"]

log = logging.getLogger("notebench.widgets")

CONNECTING, LIVE, RECONNECTING, GONE, STOPPED = (
    "connecting", "live", "reconnecting", "gone", "stopped")
READ_TIMEOUT = 60.0  # no byte (heartbeats included) for this long: the connection is dead
FIRST_RETRY = 1.0
MAX_RETRY = 10.0


class Listener(Protocol):
    """What a panel offers the feed (every method runs on the feed's dispatch thread)."""

    def feed_topics(self) -> set[str]: ...
    def on_events(self, events: list[Event]) -> None: ...
    def on_status(self, status: str, detail: dict[str, Any]) -> None: ...
    def on_resync(self, reset: bool) -> None: ...


class _StreamClient(Client):
    """A client that tells the feed when a stream opens and lets it cut the connection."""

    def __init__(self, parent: Client, on_open: Any) -> None:
        super().__init__(parent.url, parent.server.token, timeout=parent.timeout)
        self._on_open = on_open
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _open_stream(self, params: Any, last_id: str | None, timeout: float | None) -> Any:
        conn, resp = super()._open_stream(params, last_id, timeout)
        with self._lock:
            self._conn = conn
        self._on_open()
        return conn, resp

    def cut(self) -> None:
        """Shut the open stream's socket down (its reader sees the end at once)."""
        with self._lock:
            conn, self._conn = self._conn, None
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class LiveFeed:
    """One stream for several panels; start it once they are subscribed."""

    def __init__(self, client: Client, *, max_hz: float = 4.0, redraw_hz: float = 4.0,
                 gone_after: int = 3) -> None:
        self.client = client
        self.max_hz = max_hz
        self.interval = 1.0 / redraw_hz
        self.gone_after = gone_after
        self.status = CONNECTING
        self.detail: dict[str, Any] = {}
        self.last_event_id: int | None = None
        self.events_received = 0
        self.batches = 0
        self.connections = 0
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        self._status_changed = False
        self._resync: bool | None = None  # None: nothing; False: reconnected; True: reset
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._topics: frozenset[str] = frozenset()
        self._switch = False
        self._stream = _StreamClient(client, self._opened)
        self._threads: list[threading.Thread] = []
        self._was_connected = False
        self._planned = False

    # -- listeners ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)
        self.topics_changed()

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
        self.topics_changed()

    def wanted_topics(self) -> frozenset[str]:
        with self._lock:
            listeners = list(self._listeners)
        topics: set[str] = set()
        for listener in listeners:
            topics |= listener.feed_topics()
        return frozenset(topics)

    def topics_changed(self) -> None:
        """Reopen the stream (from the last id) if the listeners want other topics."""
        wanted = self.wanted_topics()
        if wanted == self._topics:
            return
        self._topics = wanted
        if self._threads:
            self._switch = True
            self._stream.cut()

    # -- life cycle --------------------------------------------------------------------------

    def mark(self) -> None:
        """Follow from now: take the server's last event id before panels read their state,
        so that nothing that happens in between is missed."""
        if self.last_event_id is not None:
            return
        # without it, the stream starts with what happens from its connection on
        with contextlib.suppress(ApiError, OSError, http.client.HTTPException, KeyError,
                                 TypeError, ValueError):
            self.last_event_id = int(self.client.info()["events"]["last_id"])

    def start(self) -> LiveFeed:
        if self._threads:
            return self
        self._topics = self.wanted_topics()
        for target, name in ((self._read, "notebench-feed-read"),
                             (self._dispatch, "notebench-feed-dispatch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        self._stream.cut()
        self._set_status(STOPPED, {})
        self._wake.set()

    # -- reading (thread 1) -------------------------------------------------------------------

    def _opened(self) -> None:
        self.connections += 1
        resumed = self._was_connected and not self._planned
        self._was_connected = True
        self._planned = False
        self._set_status(LIVE, {})
        if resumed:
            self._request_resync(False)

    def _read(self) -> None:
        failures = 0
        while not self._stop.is_set():
            topics = self._topics
            if not topics:
                self._stop.wait(0.2)
                continue
            self._switch = False
            stream = self._stream.stream(sorted(topics), last_event_id=self.last_event_id,
                                         max_hz=self.max_hz, timeout=READ_TIMEOUT)
            try:
                for event in stream:
                    if self._stop.is_set() or self._switch:
                        self._planned = True  # a new topic set, not a drop
                        break
                    if event.event == "reconnecting":
                        attempt = int(event.data.get("attempt", 1))
                        failures = attempt
                        self._lost(attempt, str(event.data.get("error")),
                                   float(event.data.get("delay", 0)))
                        continue
                    failures = 0
                    self._received(event)
            except ApiError as exc:
                failures += 1
                self._lost(failures, str(exc), self._retry_delay(failures), refused=False)
                self._stop.wait(self._retry_delay(failures))
            except (OSError, http.client.HTTPException) as exc:
                failures += 1
                self._lost(failures, f"{type(exc).__name__}: {exc}",
                           self._retry_delay(failures))
                self._stop.wait(self._retry_delay(failures))
            finally:
                stream.close()

    @staticmethod
    def _retry_delay(failures: int) -> float:
        return min(FIRST_RETRY * 2 ** (failures - 1), MAX_RETRY)

    def _lost(self, attempt: int, error: str, delay: float, *, refused: bool = True) -> None:
        gone = refused and attempt >= self.gone_after and "refused" in error.lower()
        self._set_status(GONE if gone else RECONNECTING,
                         {"attempt": attempt, "error": error, "delay": delay})

    def _received(self, event: Event) -> None:
        if event.id is not None:
            self.last_event_id = event.id
        self.events_received += 1
        if event.event == "reset":
            self._request_resync(True)
            return
        with self._lock:
            self._pending.append(event)
        self._wake.set()

    def _set_status(self, status: str, detail: dict[str, Any]) -> None:
        with self._lock:
            if status == self.status and detail == self.detail:
                return
            self.status, self.detail = status, detail
            self._status_changed = True
        self._wake.set()

    def _request_resync(self, reset: bool) -> None:
        with self._lock:
            self._resync = bool(self._resync) or reset
        self._wake.set()

    # -- dispatching (thread 2) ---------------------------------------------------------------

    def _dispatch(self) -> None:
        last = 0.0
        while True:
            self._wake.wait()
            if self._stop.is_set() and not self._status_changed:
                return
            wait = last + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # gather what arrives meanwhile: one batch per interval
            self._wake.clear()
            last = time.monotonic()
            self.flush()
            if self._stop.is_set():
                return

    def flush(self) -> None:
        """Hand what arrived to the listeners now (the dispatch thread calls this)."""
        with self._lock:
            events, self._pending = self._pending, []
            status_changed, self._status_changed = self._status_changed, False
            status, detail = self.status, dict(self.detail)
            resync, self._resync = self._resync, None
            listeners = list(self._listeners)
        for listener in listeners:
            if status_changed:
                _safely(listener.on_status, status, detail)
            if resync is not None:
                _safely(listener.on_resync, resync)
            if events:
                wanted = listener.feed_topics()
                mine = [e for e in events if e.topic in wanted]
                if mine:
                    _safely(listener.on_events, mine)
        if events:
            self.batches += 1


def _safely(method: Any, *args: Any) -> None:
    try:
        method(*args)
    except Exception:  # a panel's bug must not stop the feed of the others
        log.exception("a dashboard panel failed to apply an update")
