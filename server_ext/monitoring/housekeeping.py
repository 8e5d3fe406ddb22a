"""``Housekeeping``: what monitoring does every few seconds, besides sampling.

Refreshes the count of jobs by state (for stats and Prometheus), reloads the alert rules
when their file changes, and runs retention over logs and resolved alerts every
``prune_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .alerts import records

if TYPE_CHECKING:
    from ..store import Store
    from .alertdesk import AlertDesk

log = logging.getLogger("notebench.monitoring")

HOUSEKEEPING_SECONDS = 5.0


@dataclass(frozen=True)
class Retention:
    """How long logs and resolved alerts are kept, and how often that is enforced."""

    log_max_age_days: float = 30.0  # 0: no age limit
    log_keep_records: int = 0  # 0: no count limit
    alert_keep_days: float = 30.0
    prune_interval: float = 600.0


class Housekeeping:
    """The periodic loop, the jobs-by-state figure and retention (loop only)."""

    def __init__(self, *, store: Store, alerts: AlertDesk, retention: Retention,
                 count_jobs: bool, every: float = HOUSEKEEPING_SECONDS) -> None:
        self.store = store
        self.alerts = alerts
        self.retention = retention
        self.count_jobs = count_jobs  # the jobs capability is there
        self.every = every
        self.jobs_by_state: dict[str, int] = {}
        self._last_prune = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.refresh_jobs_by_state()
                await self.alerts.reload_if_changed()
                if time.time() - self._last_prune >= self.retention.prune_interval:
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("monitoring housekeeping failed")

    async def refresh_jobs_by_state(self) -> None:
        if not self.count_jobs:
            return

        def read(conn: Any) -> dict[str, int]:
            return {r[0]: r[1] for r in conn.execute(
                "SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()}

        with contextlib.suppress(Exception):
            self.jobs_by_state = await self.store.read(read)

    async def prune(self) -> dict[str, int]:
        """Retention: logs by age and count, resolved alerts by age (one transaction)."""
        self._last_prune = time.time()
        if self.store.read_only:
            return {"logs": 0, "alerts": 0}
        now = time.time()
        max_age = self.retention.log_max_age_days * 86400.0
        keep = self.retention.log_keep_records
        alert_cutoff = now - self.retention.alert_keep_days * 86400.0

        def prune(conn: Any) -> dict[str, int]:
            removed = 0
            if max_age > 0:
                removed += conn.execute("DELETE FROM logs WHERE ts < ?",
                                        (now - max_age,)).rowcount
            if keep > 0:
                removed += conn.execute(
                    "DELETE FROM logs WHERE id <= (SELECT MAX(id) FROM logs) - ?",
                    (keep,)).rowcount
            before = conn.total_changes
            records.prune(conn, alert_cutoff)
            return {"logs": removed, "alerts": conn.total_changes - before}

        return await self.store.write(prune)
