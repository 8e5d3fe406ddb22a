"""The one structured log store: records in SQLite, live on the ``logs`` topic.

The extension's own logger writes here through ``StoreLogHandler``; later capabilities
(job output, lifecycle records) append through ``LogStore.append`` too.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

from ..events.bus import EventBus
from ..store import Store

LOGS_TOPIC = "logs"
#: streaming the topic needs read on these areas: it is monitoring's log view, and its
#: records include jobs' output and lifecycle (``job_id`` set), which are jobs' data
LOGS_TOPIC_AREAS = ("monitoring", "jobs")
LOGGER_NAME = "notebench"
# loggers whose records must not re-enter the store (they report the store itself)
_EXCLUDED = ("notebench.store", "notebench.events")


class LogStore:
    """Appends log records to the store and publishes them on the bus."""

    def __init__(self, store: Store, bus: EventBus, *, keep_records: int = 100_000) -> None:
        self.store = store
        self.bus = bus
        self.keep_records = keep_records
        self._appended = 0

    @property
    def writable(self) -> bool:
        return not self.store.read_only

    def append(self, level: int, source: str, message: str, *, job_id: str | None = None,
               ts: float | None = None) -> None:
        """Record one entry; safe from any thread, never blocks."""
        if not self.writable:
            return
        record = {
            "ts": time.time() if ts is None else ts,
            "level": logging.getLevelName(level).lower(),
            "source": source,
            "message": message,
            "job_id": job_id,
        }
        self._appended += 1
        prune = self._appended % 1000 == 0
        self.store.write_nowait(lambda conn: self._insert(conn, record, level, prune))
        self.bus.publish(LOGS_TOPIC, "log", record)

    def _insert(self, conn: sqlite3.Connection, record: dict[str, Any], levelno: int,
                prune: bool) -> None:
        conn.execute(
            "INSERT INTO logs (ts, level, levelno, source, message, job_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (record["ts"], record["level"], levelno, record["source"], record["message"],
             record["job_id"]),
        )
        if prune:
            conn.execute(
                "DELETE FROM logs WHERE id <= (SELECT MAX(id) FROM logs) - ?",
                (self.keep_records,),
            )


class StoreLogHandler(logging.Handler):
    """A ``logging`` handler that feeds the log store."""

    def __init__(self, logs: LogStore, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_EXCLUDED):
            return
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message = f"{message}: {record.exc_info[1]!r}"
            self.logs.append(record.levelno, record.name, message,
                             job_id=getattr(record, "job_id", None), ts=record.created)
        except Exception:
            self.handleError(record)
