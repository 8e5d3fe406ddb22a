"""``RemoteControl``: what each job that runs on another machine should do now, and when
it was last heard from.

The ingest routes answer every call of a job's forwarder with ``state(job_id)`` (plus the
server-side ``control.json``); the forwarder applies it to the job's processes. Pausing
and signals are set here by the executor; ``heard`` records each contact and where the job
runs. Thread-safe: the executor's methods run in threads, the handlers on the loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SIGNALS = ("term", "kill")


@dataclass
class _Remote:
    paused: bool = False
    signal: str | None = None
    last_heard: float | None = None
    placement: dict[str, Any] = field(default_factory=dict)


class RemoteControl:
    """Per remote job: paused or not, a signal to deliver, the last contact and placement."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._jobs: dict[str, _Remote] = {}
        self._lock = threading.Lock()

    def _get(self, job_id: str) -> _Remote:
        remote = self._jobs.get(job_id)
        if remote is None:
            remote = self._jobs[job_id] = _Remote()
        return remote

    def set_paused(self, job_id: str, paused: bool) -> None:
        """Freeze (True) or thaw (False) the job's processes at the forwarder's next call."""
        with self._lock:
            self._get(job_id).paused = bool(paused)

    def send_signal(self, job_id: str, signal: str) -> None:
        """Have the forwarder send SIGTERM (``"term"``) or SIGKILL (``"kill"``) to the job's
        processes; a kill is never downgraded to a term."""
        if signal not in SIGNALS:
            raise ValueError(f"signal must be one of {', '.join(SIGNALS)}")
        with self._lock:
            remote = self._get(job_id)
            if remote.signal != "kill":
                remote.signal = signal

    def state(self, job_id: str) -> dict[str, Any]:
        """``{"stop": None, "paused": bool, "signal": None | "term" | "kill"}`` (the ingest
        routes fill ``stop`` from the job's ``control.json``)."""
        with self._lock:
            remote = self._jobs.get(job_id) or _Remote()
            return {"stop": None, "paused": remote.paused, "signal": remote.signal}

    def heard(self, job_id: str, info: dict[str, Any]) -> bool:
        """The job's forwarder called now; ``info`` (worker, host, GPU UUIDs, pid) updates
        its placement. True when that changed where the job is known to run."""
        with self._lock:
            remote = self._get(job_id)
            remote.last_heard = self.clock()
            changed = any(remote.placement.get(k) != v for k, v in info.items())
            remote.placement.update(info)
            return changed

    def last_heard(self, job_id: str) -> float | None:
        """When (``clock`` seconds) the job was last heard from; None: never."""
        with self._lock:
            remote = self._jobs.get(job_id)
            return None if remote is None else remote.last_heard

    def placement(self, job_id: str) -> dict[str, Any]:
        """Where the job runs, as its heartbeats said (empty: not yet known)."""
        with self._lock:
            remote = self._jobs.get(job_id)
            return dict(remote.placement) if remote is not None else {}

    def forget(self, job_id: str) -> None:
        """Drop what is known of a job (it ended)."""
        with self._lock:
            self._jobs.pop(job_id, None)
