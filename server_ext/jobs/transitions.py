"""``JobEvents``: a job's state changes stored and announced, and its lifecycle records.

Every state change goes through ``set_state``: the transition table (``states``) has the
last word, the row is written, and the change is published on the ``jobs`` topic and the
job's own topic with the job as the API shows it. Lifecycle records (queued, started,
stopping, ended …) go to the log store under the source ``jobs``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import JOBS_TOPIC, job_topic

from ..errors import conflict
from ..logs.text import printable
from . import states

if TYPE_CHECKING:
    from ..events.bus import EventBus
    from ..logs.store import LogStore
    from .presenting import JobPresenter
    from .repository import JobRepository

LIFECYCLE_SOURCE = "jobs"


class JobEvents:
    """State changes, change events and lifecycle records of jobs."""

    def __init__(self, repository: JobRepository, presenter: JobPresenter, bus: EventBus,
                 logs: LogStore) -> None:
        self.repository = repository
        self.presenter = presenter
        self.bus = bus
        self.logs = logs

    async def set_state(self, job_id: str, target: str, reason: str | None,
                        **fields: Any) -> dict[str, Any]:
        """Move a job to ``target`` (409 ``invalid_transition`` when the table forbids it)."""
        row = await self.repository.row(job_id)
        previous = row["state"]
        if previous != target and not states.can_move(previous, target):
            raise conflict(f"a {previous} job cannot become {target}", "invalid_transition",
                           state=previous)
        update = {"state": target, "reason": reason, "updated": time.time(), **fields}
        await self.repository.update(job_id, **update)
        row.update(update)
        job = self.presenter.public(row)
        if previous != target:
            self.publish_state(job, previous)
        return job

    def publish_state(self, job: dict[str, Any], previous: str | None) -> None:
        data = {"job_id": job["id"], "state": job["state"], "previous": previous,
                "reason": job["reason"], "job": job}
        self.bus.publish(JOBS_TOPIC, "state", data)
        self.bus.publish(job_topic(job["id"]), "state", data)

    def publish_change(self, job: dict[str, Any], kind: str) -> None:
        """A change other than the state (``updated``, ``trashed``, ``restored``)."""
        data = {"job_id": job["id"], "job": job}
        self.bus.publish(JOBS_TOPIC, kind, data)
        self.bus.publish(job_topic(job["id"]), kind, data)

    def publish(self, job_id: str | None, kind: str, data: dict[str, Any], *,
                to_all: bool = True) -> None:
        """An event on the job's own topic (given a job) and on the ``jobs`` topic
        (unless not ``to_all``)."""
        if job_id is not None:
            self.bus.publish(job_topic(job_id), kind, data)
        if to_all or job_id is None:
            self.bus.publish(JOBS_TOPIC, kind, data)

    def lifecycle(self, level: int, job_id: str, message: str) -> None:
        """One lifecycle record: one line (names and reasons in it are user text)."""
        if self.logs.writable:
            self.logs.append(level, LIFECYCLE_SOURCE, printable(message), job_id=job_id)
