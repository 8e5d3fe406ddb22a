"""``_test/*`` routes that tests and benchmarks drive: publish, log, tick, loop lag, drops."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tornado.ioloop import PeriodicCallback

from notebench.server.errors import bad_request
from notebench.server.handlers import NotebenchHandler


class PublishHook(NotebenchHandler):
    """``POST _test/publish``: publish ``count`` events, optionally padded."""

    auth_area = "testing"

    async def post(self) -> None:
        body = self.json_body()
        topic = str(body.get("topic", "logs"))
        count = int(body.get("count", 1))
        pad = "x" * int(body.get("pad_bytes", 0))
        replay = bool(body.get("replay", True))
        if not self.services.bus.topics.known(topic):
            raise bad_request(f"unknown topic: {topic}")
        for index in range(count):
            data = {"index": index, "sent": time.time(), "pad": pad}
            self.services.bus.publish(topic, str(body.get("type", "test")), data, replay=replay)
        await self.services.store.write(_barrier)
        self.write_json({"published": count})


class LogHook(NotebenchHandler):
    """``POST _test/log``: write records through the extension's logger."""

    auth_area = "testing"

    async def post(self) -> None:
        body = self.json_body()
        count = int(body.get("count", 1))
        logger = logging.getLogger("notebench.test")
        for index in range(count):
            logger.info("%s %d", body.get("message", "test record"), index)
        await self.services.store.write(_barrier)
        self.write_json({"logged": count})


class TickerHook(NotebenchHandler):
    """``POST _test/ticker``: publish ``rate`` events/s on a topic for ``duration`` s."""

    auth_area = "testing"

    async def post(self) -> None:
        body = self.json_body()
        rate = float(body.get("rate", 20))
        duration = float(body.get("duration", 10))
        topic = str(body.get("topic", "logs"))
        replay = bool(body.get("replay", True))
        bus = self.services.bus
        state = {"sent": 0}
        stop_at = time.monotonic() + duration

        def tick() -> None:
            if time.monotonic() >= stop_at:
                ticker.stop()
                return
            state["sent"] += 1
            bus.publish(topic, "tick", {"n": state["sent"], "sent": time.time()}, replay=replay)

        ticker = PeriodicCallback(tick, 1000.0 / rate)
        ticker.start()
        self.write_json({"rate": rate, "duration": duration})


class LoopLagMonitor:
    """Measures how late a 10 ms timer fires: the loop's responsiveness."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.worst = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = loop.time() - expected
            self.samples += 1
            self.worst = max(self.worst, lag)

    def read_and_reset(self) -> dict[str, Any]:
        result = {"worst_lag_ms": round(self.worst * 1000, 3), "samples": self.samples}
        self.worst = 0.0
        self.samples = 0
        return result


class LoopLagHook(NotebenchHandler):
    """``GET _test/loop_lag``: the worst event-loop lag since the last read (and reset); the
    first read starts measuring."""

    auth_area = "testing"

    def initialize(self, monitor: LoopLagMonitor) -> None:
        self.monitor = monitor

    async def get(self) -> None:
        if not self.monitor.started:
            self.monitor.start()
        self.write_json(self.monitor.read_and_reset())


class CloseStreamsHook(NotebenchHandler):
    """``POST _test/close_streams``: the server closes every SSE connection."""

    auth_area = "testing"

    async def post(self) -> None:
        # SSE clients only: in-process subscribers (monitoring's job watch) have no socket
        subs = [s for s in self.services.bus.subscribers() if hasattr(s, "writer")]
        for sub in subs:
            sub.writer.close()
        self.write_json({"closed": len(subs)})


def _barrier(conn: object) -> None:
    """A no-op write: once it commits, every write queued before it has committed."""


def hook_routes() -> list[tuple[str, type, dict[str, Any]]]:
    """(pattern under ``notebench/api/``, handler, its arguments) of one server."""
    return [
        (r"_test/publish", PublishHook, {}),
        (r"_test/log", LogHook, {}),
        (r"_test/ticker", TickerHook, {}),
        (r"_test/loop_lag", LoopLagHook, {"monitor": LoopLagMonitor()}),
        (r"_test/close_streams", CloseStreamsHook, {}),
    ]
