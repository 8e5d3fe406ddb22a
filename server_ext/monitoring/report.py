"""``StatsReport``: the ``GET monitoring/stats`` document, from figures the parts keep.

Requests per route, streams by topic, bus counters, jobs by state, the sampler's cost,
alert evaluations, the history's size and the webhook's figures: nothing is measured here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..events.sse import StreamSubscriber

if TYPE_CHECKING:
    from ..events.bus import EventBus
    from .alertdesk import AlertDesk
    from .history import History
    from .housekeeping import Housekeeping
    from .sampler import Sampler
    from .stats import RequestStats
    from .webhook import WebhookNotifier


def sse_by_topic(bus: EventBus) -> dict[str, int]:
    """Open SSE streams per topic (a stream of several topics counts in each)."""
    counts: dict[str, int] = {}
    for sub in bus.subscribers():
        if not isinstance(sub, StreamSubscriber):
            continue
        for topic in sub.topics:
            counts[topic] = counts.get(topic, 0) + 1
    return counts


def sse_streams(bus: EventBus) -> int:
    """Open SSE streams (one per client, whatever its topics)."""
    return sum(isinstance(sub, StreamSubscriber) for sub in bus.subscribers())


def sampler_figures(sampler: Sampler | None, interval: float) -> dict[str, Any]:
    """Whether the sampler runs, its samples, skipped ticks, errors and cost."""
    figures: dict[str, Any] = {"running": bool(sampler and sampler.alive),
                               "interval": interval}
    if sampler is None:
        return figures
    samples = sampler.samples
    figures.update({
        "samples": samples, "skipped_ticks": sampler.skipped, "errors": sampler.errors,
        "last_error": sampler.last_error,
        "cpu_ms_per_sample": {
            "last": round(sampler.last_cost.get("cpu_seconds", 0.0) * 1000, 3),
            "mean": round(sampler.total_cpu_seconds / samples * 1000, 3)
            if samples else None,
            "max": round(sampler.max_cpu_seconds * 1000, 3)},
        "wall_ms_last": round(sampler.last_cost.get("wall_seconds", 0.0) * 1000, 3),
    })
    return figures


class StatsReport:
    """Assembles the stats document of one monitoring service."""

    def __init__(self, *, bus: EventBus, requests: RequestStats, history: History,
                 alerts: AlertDesk, housekeeping: Housekeeping,
                 webhook: WebhookNotifier | None, interval: float) -> None:
        self.bus = bus
        self.requests = requests
        self.history = history
        self.alerts = alerts
        self.housekeeping = housekeeping
        self.webhook = webhook
        self.interval = interval

    def document(self, sampler: Sampler | None) -> dict[str, Any]:
        bus = self.bus
        webhook = self.webhook.figures() if self.webhook is not None else {"url_set": False}
        history = self.history
        return {
            "time": time.time(),
            "requests": {"total": self.requests.total, "routes": self.requests.summary()},
            "sse": {"clients": sum(1 for s in bus.subscribers()
                                   if isinstance(s, StreamSubscriber)),
                    "by_topic": sse_by_topic(bus)},
            "events": {"published": bus.published, "delivered_frames": bus.delivered_frames,
                       "dropped_clients": bus.dropped_clients, "last_id": bus.last_id},
            "jobs": {"by_state": dict(self.housekeeping.jobs_by_state)},
            "sampler": sampler_figures(sampler, self.interval),
            "alerts": {"active": len(self.alerts.engine.active),
                       "transitions": self.alerts.transitions,
                       "evaluations": self.alerts.engine.evaluations},
            "history": {"series": len(history.ring),
                        "ring_points": sum(len(p) for p in history.ring.values()),
                        "persisted_rows_written": history.rows_written},
            "webhook": webhook,
        }
