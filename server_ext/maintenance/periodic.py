"""``PeriodicBackup``: the server's own backups of its store, every ``interval`` seconds.

Configured by ``c.NotebenchApp.backup_dir`` (off when empty), ``backup_interval`` and
``backup_keep``. Each backup is ``take_backup``'s, into
``<backup_dir>/notebench-backup-<UTC time>``; then the folder is pruned to the newest
``keep`` (and the partial folders of processes that died mid-backup are removed). The first
backup is due ``interval`` after the newest one already there (at once when there is
none or it is older), so a server restarted more often than ``interval`` still backs up.
The task is kept in a ``TaskSet``; waiting and the work run on a thread of their own,
never on the event loop, and waiting reads an injectable ``Clock`` (tests use a
``ManualClock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..tasks import TaskSet
from .backup import PARTIAL, take_backup

log = logging.getLogger("notebench.maintenance")

PREFIX = "notebench-backup-"
_STAMP = "%Y%m%dT%H%M%S.%fZ"
NAME = re.compile(re.escape(PREFIX) + r"(\d{8}T\d{6}\.\d{6}Z)")
_PARTIAL = re.compile(r"\." + re.escape(PREFIX) + r".*" + re.escape(PARTIAL) + r"(\d+)-\w+")


class PeriodicBackup:
    """Backups of one store into ``folder`` (see the module docstring)."""

    def __init__(self, store_path: Path, folder: Path, *, interval: float, keep: int,
                 workspace: Path | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        if interval <= 0 or keep < 1:
            raise ValueError("a periodic backup needs interval > 0 and keep >= 1")
        self.store_path = Path(store_path)
        self.folder = Path(folder)
        self.interval = float(interval)
        self.keep = int(keep)
        self.workspace = workspace
        self.clock = clock
        self.tasks = TaskSet()
        self.taken = 0  # backups written by this object
        self.last: dict[str, Any] | None = None  # the newest one's manifest
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notebench-backup")

    def start(self) -> None:
        """Start the periodic task (on the event loop)."""
        self.tasks.spawn(self._run())

    async def stop(self) -> None:
        """Stop waiting; a backup under way is finished first."""
        self._stop.set()
        await self.tasks.settle()
        await asyncio.to_thread(self._thread.shutdown, wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = await loop.run_in_executor(self._thread, self._first_due)
        while not await loop.run_in_executor(self._thread, self.clock.wait_until, self._stop,
                                             due):
            try:
                await loop.run_in_executor(self._thread, self.run_once)
            except Exception as exc:
                self.last_error = str(exc)
                log.error("periodic backup into %s failed: %s", self.folder, exc)
            due = max(due + self.interval, self.clock.monotonic())

    def _first_due(self) -> float:
        """(thread) Monotonic time of the first backup: ``interval`` after the newest."""
        newest = newest_time(self.folder)
        now = self.clock.monotonic()
        if newest is None:
            return now
        return now + max(0.0, newest + self.interval - self.clock.time())

    def run_once(self) -> dict[str, Any]:
        """(thread) One backup now, then prune; its manifest."""
        self.folder.mkdir(parents=True, exist_ok=True)
        dest = self.folder / backup_name(self.clock.time())
        manifest = take_backup(self.store_path, dest, workspace=self.workspace)
        self.taken += 1
        self.last = manifest
        self.last_error = None
        removed = prune(self.folder, self.keep)
        log.info("backup %s written (%d bytes in %.2f s); %d old ones removed", dest,
                 manifest["database"]["size"], manifest["seconds"], len(removed))
        return manifest


def backup_name(wall: float) -> str:
    """The folder name of a backup taken at ``wall`` (sorts by time)."""
    stamp = datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).strftime(_STAMP)
    return PREFIX + stamp


def backups(folder: Path) -> list[Path]:
    """The periodic backups in ``folder``, oldest first."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if NAME.fullmatch(p.name) and p.is_dir())


def newest_time(folder: Path) -> float | None:
    """The wall time of the newest backup in ``folder`` (None: none)."""
    found = backups(folder)
    if not found:
        return None
    match = NAME.fullmatch(found[-1].name)
    assert match is not None
    stamp = datetime.datetime.strptime(match.group(1), _STAMP)
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups, and partial ones whose process is gone;
    what was deleted."""
    removed = backups(folder)[:-keep]
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = _PARTIAL.fullmatch(entry.name)
            if match and not _alive(int(match.group(1))):
                removed.append(entry)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours: none is under way while this thread prunes
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
