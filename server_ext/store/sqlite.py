"""The SQLite store: one writer thread, a small pool of reader threads.

Nothing here runs on the event loop. Writes are callables ``fn(conn)`` queued to the
single writer thread, which runs whatever is queued together in one transaction
(bulk work amortised over a commit); reads run on reader threads with connections
of their own. Callers on the loop await ``write()``/``read()``; threads (log handler)
use ``write_nowait()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .migrations import MIGRATIONS

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], Any]

# Logger that must never feed the store back (the store's own trouble is reported here).
log = logging.getLogger("notebench.store")

_STOP = object()
_MAX_BATCH = 2000


class StoreReadOnly(RuntimeError):
    """A write was attempted on a store opened read-only."""


class Store:
    """The workspace's SQLite database (schema migrations, one writer, readers).

    ``schemas`` maps a capability's name to its own forward migrations (each a SQL
    script); the core's are in ``migrations.py``.
    """

    def __init__(self, path: Path, *, read_only: bool = False, journal_mode: str = "wal",
                 schemas: dict[str, list[str]] | None = None):
        self.path = Path(path)
        self.schemas = schemas or {}
        self.read_only = read_only
        self.journal_mode = journal_mode
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="notebench-read")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.last_write_error: str | None = None
        self.last_commit_at: float | None = None

    # -- life cycle -------------------------------------------------------------------

    def open(self) -> None:
        """Create or migrate the database, then start the writer thread."""
        if self.read_only:
            if not self.path.exists():
                raise StoreReadOnly(f"no store at {self.path}")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect(write=True)
        self._migrate(conn)
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="notebench-store-writer", daemon=True
        )
        self._writer.start()

    def close(self) -> None:
        """Finish queued writes, stop the writer and close every connection."""
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join(timeout=30)
            self._writer = None
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._reader_conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._reader_conns.clear()

    # -- public API ---------------------------------------------------------------------

    def write_nowait(self, fn: WriteFn, on_done: Callable[[Any], None] | None = None) -> None:
        """Queue ``fn(conn)`` for the writer; ``on_done(result)`` runs on the writer thread."""
        if self.read_only or self._writer is None:
            raise StoreReadOnly("the store is read-only")
        self._queue.put((fn, None, on_done))

    def submit(self, fn: WriteFn) -> Future[Any]:
        """Queue ``fn(conn)`` for the writer and return a concurrent future of its result."""
        if self.read_only or self._writer is None:
            raise StoreReadOnly("the store is read-only")
        future: Future[Any] = Future()
        self._queue.put((fn, future, None))
        return future

    async def write(self, fn: WriteFn) -> Any:
        """Run ``fn(conn)`` in a write transaction and return its result."""
        return await asyncio.wrap_future(self.submit(fn))

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a reader thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_sync, fn)

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` with this thread's reader connection (never on the loop)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(write=False)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return fn(conn)

    def check_writable(self, timeout: float = 2.0) -> str | None:
        """Return None if a write transaction can commit now, else the reason."""
        if self.read_only:
            return "read-only"
        try:
            self.submit(_touch_meta).result(timeout=timeout)
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None

    # -- internals ---------------------------------------------------------------------

    def _connect(self, *, write: bool) -> sqlite3.Connection:
        if write:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                   check_same_thread=False)
            mode = conn.execute(f"PRAGMA journal_mode={self.journal_mode}").fetchone()[0]
            if mode.lower() != self.journal_mode.lower():
                log.warning("SQLite journal mode %s refused, using %s", self.journal_mode, mode)
                self.journal_mode = mode.lower()
            conn.execute("PRAGMA synchronous=NORMAL")
        else:
            uri = f"file:{self.path}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None,
                                   check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.row_factory = sqlite3.Row
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the core schema and every capability's schema up to date."""
        steps = {"core": MIGRATIONS, **self.schemas}
        conn.execute("BEGIN IMMEDIATE")
        try:
            # the core's version is the file's user_version; capabilities keep theirs in meta
            _apply(conn, "core", MIGRATIONS, conn.execute("PRAGMA user_version").fetchone()[0])
            for name, migrations in steps.items():
                if name == "core":
                    continue
                row = conn.execute("SELECT value FROM meta WHERE key = ?",
                                   (f"schema:{name}",)).fetchone()
                _apply(conn, name, migrations, int(row[0]) if row else 0)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(item is _STOP for item in batch):
                stop = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                self._run_batch(conn, batch)
        conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        results: list[tuple[Any, Future[Any] | None, Callable[[Any], None] | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail_batch(batch, exc)
            return
        for fn, future, on_done in batch:
            conn.execute("SAVEPOINT item")
            try:
                result = fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO item")
                conn.execute("RELEASE item")
                if future is not None:
                    _settle(future, exc=exc)
                else:
                    log.error("store write failed: %s", exc)
                continue
            conn.execute("RELEASE item")
            results.append((result, future, on_done))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._fail_batch([(None, f, d) for _, f, d in results], exc)
            return
        self.last_write_error = None
        self.last_commit_at = time.time()
        for result, future, on_done in results:
            if future is not None:
                _settle(future, result)
            if on_done is not None:
                try:
                    on_done(result)
                except Exception:
                    log.exception("store callback failed")

    def _fail_batch(self, batch: list[Any], exc: Exception) -> None:
        self.last_write_error = str(exc)
        log.error("store commit failed: %s", exc)
        for _fn, future, _on_done in batch:
            if future is not None:
                _settle(future, exc=exc)


def _settle(future: Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    """Resolve a caller's future, unless the caller gave up on it (cancelled)."""
    with contextlib.suppress(InvalidStateError):
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def _apply(conn: sqlite3.Connection, name: str, migrations: list[str], version: int) -> None:
    if version > len(migrations):
        raise RuntimeError(
            f"the store's {name} schema is at version {version}, newer than this notebench "
            f"({len(migrations)}); upgrade notebench"
        )
    for number in range(version, len(migrations)):
        for statement in _split_sql(migrations[number]):
            conn.execute(statement)
        if name == "core":
            conn.execute(f"PRAGMA user_version={number + 1}")
        else:
            set_meta(conn, f"schema:{name}", str(number + 1))


def _touch_meta(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('last_write_check', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(time.time()),),
    )


def _split_sql(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    """Read one metadata value."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Write one metadata value (inside a writer transaction)."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
