"""``GET monitoring/health``: liveness and readiness from component checks.

Liveness is the event loop answering. Readiness needs every component: the store takes a
write (a real write transaction, bounded by ``store_timeout``: a store locked by another
process or on a full disk fails it), the sampler thread runs and its latest sample is
recent, the job runner runs (when the jobs capability is there), the workspace's disk
has free space above a threshold, and NVML is in a sane state (no driver is fine; GPUs
that were seen and are gone are not).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import NotebenchMonitoringService


def _touch(conn: Any) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('monitoring_health_check', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(time.time()),))


class HealthChecker:
    def __init__(self, service: NotebenchMonitoringService) -> None:
        self.service = service
        self._write: asyncio.Future[Any] | None = None
        self._write_started = 0.0

    async def check(self, *, live_only: bool = False) -> tuple[int, dict[str, Any]]:
        now = time.time()
        body: dict[str, Any] = {"status": "pass", "live": True, "ready": True, "time": now,
                                "failed": [], "components": {}}
        if live_only:
            body["ready"] = None
            return 200, body
        checks = {
            "store": await self._store(),
            "sampler": self._sampler(),
            "jobs": self._jobs(),
            "disk": self._disk(),
            "nvml": self._nvml(),
        }
        body["components"] = checks
        body["failed"] = [name for name, result in checks.items() if not result["ok"]]
        if body["failed"]:
            body["status"], body["ready"] = "fail", False
        return (200 if body["ready"] else 503), body

    # -- components -----------------------------------------------------------------------

    async def _store(self) -> dict[str, Any]:
        store = self.service.services.store
        if store.read_only:
            return {"ok": True, "status": "read_only",
                    "detail": "another server owns the workspace; this one only reads"}
        timeout = self.service.health_store_timeout
        started = time.perf_counter()
        if self._write is None or self._write.done():
            try:
                self._write = asyncio.wrap_future(store.submit(_touch))
            except Exception as exc:
                return {"ok": False, "status": "failed", "detail": f"{exc}"}
            self._write_started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(self._write), timeout)
        except asyncio.TimeoutError:
            waited = time.monotonic() - self._write_started
            return {"ok": False, "status": "failed",
                    "detail": f"a write did not commit within {waited:.1f}s (the database is "
                    "locked or the disk is slow)"}
        except Exception as exc:
            return {"ok": False, "status": "failed", "detail": f"write failed: {exc}"}
        latency = (time.perf_counter() - started) * 1000.0
        return {"ok": True, "status": "ok", "detail": f"write committed in {latency:.1f} ms",
                "latency_ms": round(latency, 3)}

    def _sampler(self) -> dict[str, Any]:
        service = self.service
        sampler = service.sampler
        if sampler is None or not sampler.alive:
            detail = "not running" if service.started else "not started (read-only server?)"
            return {"ok": False, "status": "failed", "detail": f"the sampler is {detail}"}
        if sampler.last_sample_mono is None:
            return {"ok": True, "status": "starting", "detail": "no sample yet"}
        age = sampler.clock.monotonic() - sampler.last_sample_mono
        limit = service.sampler_max_age()
        ok = age <= limit
        return {"ok": ok, "status": "ok" if ok else "failed", "age_seconds": round(age, 3),
                "detail": f"last sample {age:.2f}s ago (limit {limit:.1f}s)"
                + (f"; last error: {sampler.last_error}" if sampler.last_error else "")}

    def _jobs(self) -> dict[str, Any]:
        jobs = self.service.services.jobs
        if jobs is None:
            return {"ok": True, "status": "absent", "detail": "the jobs capability is not "
                    "installed"}
        try:
            result = dict(jobs.health())
        except Exception as exc:
            return {"ok": False, "status": "failed", "detail": f"health check failed: {exc}"}
        result.setdefault("status", "ok" if result.get("ok") else "failed")
        result.setdefault("detail", "")
        return result

    def _disk(self) -> dict[str, Any]:
        service = self.service
        sample = service.latest_sample or {}
        roots = {r.get("root"): r for r in sample.get("storage") or []}
        workspace = roots.get("workspace")
        if workspace is None or workspace.get("free_percent") is None:
            return {"ok": True, "status": "unknown", "detail": "no free-space figure yet"}
        percent = workspace["free_percent"]
        free = workspace["free_bytes"]
        ok = percent >= service.health_min_disk_free_percent
        return {"ok": ok, "status": "ok" if ok else "failed", "free_percent": percent,
                "free_bytes": free,
                "detail": f"{percent:.1f}% free on the workspace's file system "
                f"(minimum {service.health_min_disk_free_percent:g}%)"}

    def _nvml(self) -> dict[str, Any]:
        sampler = self.service.sampler
        if sampler is None:
            return {"ok": True, "status": "unknown", "detail": "no sampler"}
        status = sampler.gpu_status
        if status.get("error"):
            return {"ok": False, "status": "failed", "detail": status["error"]}
        expected = status.get("count") or 0
        seen = status.get("seen", 0)
        if not expected:
            return {"ok": True, "status": "absent",
                    "detail": status.get("reason") or "no GPU"}
        if seen < expected:
            return {"ok": False, "status": "failed",
                    "detail": f"{expected} GPUs known, {seen} answered the last sample"}
        return {"ok": True, "status": "ok", "detail": f"{seen} GPUs"}
