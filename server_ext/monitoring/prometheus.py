"""Prometheus text exposition of the cached sample, in a private registry.

A custom collector reads what the sampler and the service already hold (the latest
sample, request statistics, bus counters): a scrape measures nothing itself. The
registry is private, never prometheus_client's global one (that one also feeds
jupyter_server's own ``/metrics`` and would be registered again by every server of a
process: "Duplicated timeseries"); the collector is unregistered when the service
stops. Names are ``notebench_*`` in base units (ratios 0-1, bytes, seconds, hertz).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from notebench.jobprotocol import STATES

from .alerts.engine import FIRING, PENDING
from .alerts.rules import SEVERITIES
from .series import CATALOG
from .stats import BUCKETS

if TYPE_CHECKING:
    from .service import NotebenchMonitoringService

__all__ = ["CONTENT_TYPE_LATEST", "Exporter"]


class _Collector:
    def __init__(self, service: NotebenchMonitoringService) -> None:
        self.service = service

    def describe(self) -> list[Metric]:
        return []  # no duplicate check against other collectors: the registry is ours

    def collect(self) -> Iterator[Metric]:
        service = self.service
        yield from _series_families(service.current_values())
        sample = service.latest_sample or {}
        yield from _io_counters(sample)
        # every state, zeros too: a dashboard's queue length is 0, not "no data"
        jobs = GaugeMetricFamily("notebench_jobs", "Jobs by state", labels=["state"])
        by_state = service.jobs_by_state
        for state in sorted(set(STATES) | set(by_state)):
            jobs.add_metric([state], by_state.get(state, 0))
        yield jobs
        gpus = (sample.get("gpu_status") or {}).get("count")
        if isinstance(gpus, int):  # 0 where NVML sees none: GPU panels are empty, not broken
            yield GaugeMetricFamily("notebench_gpus", "GPUs the server's NVML sees",
                                    value=gpus)
        alerts = GaugeMetricFamily("notebench_alerts", "Active alerts by state and severity",
                                   labels=["state", "severity"])
        counts = {(state, severity): 0 for state in (PENDING, FIRING)
                  for severity in SEVERITIES}  # zeros: "no alerts" is data too
        for alert in service.engine.active.values():
            key = (alert.state, alert.severity)
            counts[key] = counts.get(key, 0) + 1
        for (state, severity), count in sorted(counts.items()):
            alerts.add_metric([state, severity], count)
        yield alerts
        yield from _request_families(service)
        yield from _internal_families(service)


def _series_families(values: dict[Any, float]) -> Iterator[Metric]:
    grouped: dict[str, list[tuple[dict[str, str], float]]] = {}
    for (name, labels), value in values.items():
        info = CATALOG.get(name)
        if info is None or info.prometheus is None:
            continue
        grouped.setdefault(name, []).append((dict(labels), value * info.scale))
    for name, entries in sorted(grouped.items()):
        info = CATALOG[name]
        label_names = sorted({k for labels, _ in entries for k in labels})
        family = GaugeMetricFamily(info.prometheus, info.help, labels=label_names)
        for labels, value in entries:
            family.add_metric([labels.get(k, "") for k in label_names], value)
        yield family


def _io_counters(sample: dict[str, Any]) -> Iterator[Metric]:
    network = sample.get("network") or {}
    disk = sample.get("disk_io") or {}
    for name, help_, value in (
        ("notebench_network_receive_bytes", "Bytes received (all interfaces but loopback)",
         network.get("rx_bytes_total")),
        ("notebench_network_transmit_bytes", "Bytes sent (all interfaces but loopback)",
         network.get("tx_bytes_total")),
        ("notebench_disk_read_bytes", "Bytes read from disks", disk.get("read_bytes_total")),
        ("notebench_disk_written_bytes", "Bytes written to disks",
         disk.get("write_bytes_total")),
    ):
        if isinstance(value, (int, float)):
            yield CounterMetricFamily(name, help_, value=value)


def _request_families(service: NotebenchMonitoringService) -> Iterator[Metric]:
    stats = service.requests
    total = CounterMetricFamily("notebench_http_requests",
                                "HTTP requests finished, by method, route and status class",
                                labels=["method", "route", "status"])
    latency = HistogramMetricFamily(
        "notebench_http_request_duration_seconds",
        "Time to answer an HTTP request (streams excluded), by method and route",
        labels=["method", "route"])
    for (method, route), route_stats in sorted(stats.routes.items()):
        for status, count in sorted(route_stats.statuses.items()):
            total.add_metric([method, route, status], count)
        timed = route_stats.count - route_stats.streams
        if timed <= 0:
            continue
        cumulative = 0
        buckets = []
        for bound, count in zip((*BUCKETS, float("inf")), route_stats.buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency.add_metric([method, route], buckets, route_stats.sum)
    yield total
    yield latency


def _internal_families(service: NotebenchMonitoringService) -> Iterator[Metric]:
    bus = service.services.bus
    clients = GaugeMetricFamily("notebench_sse_clients", "Open event-stream clients by topic",
                                labels=["topic"])
    for topic, count in sorted(service.sse_by_topic().items()):
        clients.add_metric([topic], count)
    yield clients
    # all streams together, 0 too (a stream of several topics counts once)
    yield GaugeMetricFamily("notebench_sse_streams", "Open event streams",
                            value=service.sse_streams())
    yield CounterMetricFamily("notebench_events_published", "Events published on the bus",
                              value=bus.published)
    yield CounterMetricFamily("notebench_sse_dropped_clients",
                              "Stream clients dropped for falling behind",
                              value=bus.dropped_clients)
    sampler = service.sampler
    if sampler is not None:
        yield CounterMetricFamily("notebench_sampler_samples", "Samples taken",
                                  value=sampler.samples)
        yield CounterMetricFamily("notebench_sampler_cpu_seconds",
                                  "CPU time the sampler spent measuring",
                                  value=sampler.total_cpu_seconds)
        yield CounterMetricFamily("notebench_sampler_skipped_ticks",
                                  "Sampler ticks skipped because a sample ran late",
                                  value=sampler.skipped)
    sample = service.latest_sample
    if sample is not None:
        yield GaugeMetricFamily("notebench_sample_timestamp_seconds",
                                "Unix time of the latest sample", value=sample["ts"])
    webhook = service.webhook
    if webhook is not None:
        family = CounterMetricFamily("notebench_webhook_notifications",
                                     "Alert webhook notifications by result",
                                     labels=["result"])
        family.add_metric(["sent"], webhook.sent)
        family.add_metric(["failed"], webhook.failed)
        family.add_metric(["dropped"], webhook.dropped)
        yield family


class Exporter:
    """The private registry and its collector."""

    def __init__(self, service: NotebenchMonitoringService) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = _Collector(service)
        self.registry.register(self.collector)
        self.registered = True

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        if self.registered:
            self.registry.unregister(self.collector)
            self.registered = False
