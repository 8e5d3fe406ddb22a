"""``NotebenchMonitoringService``: the sampler, history, alerts, logs, health, stats and exposition.

Configured as ``c.NotebenchMonitoringService.<option>`` (a child configurable of the extension).
The sampler thread hands each sample to the event loop, where it becomes the cached
sample every client receives, a point of the history, an ephemeral ``sample`` event on
the ``monitoring`` topic and an evaluation of the alert rules (``AlertDesk``: alert
changes are stored, published on the ``alerts`` topic, logged, and sent to the webhook).
``Housekeeping`` runs retention and rules-file reloads; ``StatsReport`` assembles the
stats. The service is the facade its handlers call.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from traitlets import Bool, Dict, Float, Instance, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from ..clock import SYSTEM_CLOCK, Clock
from ..events.bus import Event, encode_payload, sse_frame
from ..logs import LOGS_TOPIC
from ..logs.query import LogQuery, describe, run_query
from . import ALERTS_TOPIC, MONITORING_TOPIC
from .alertdesk import AlertDesk, RuleSettings
from .health import HealthChecker
from .history import History
from .housekeeping import Housekeeping, Retention
from .jobwatch import JobWatch
from .prometheus import Exporter
from .report import StatsReport, sse_by_topic, sse_streams
from .roots import sample_roots
from .sampler import Sampler
from .series import SeriesKey, flatten
from .sources import MetricSource
from .stats import RequestStats
from .webhook import WebhookNotifier

if TYPE_CHECKING:
    from ..services import Services
    from .alerts import AlertEngine

STREAM_TOPICS = (MONITORING_TOPIC, ALERTS_TOPIC, LOGS_TOPIC)


class NotebenchMonitoringService(LoggingConfigurable):
    """System and job monitoring of one server."""

    interval = Float(1.0, help="Seconds between samples of the machine and the jobs.").tag(
        config=True)
    pss_interval = Float(
        30.0, help="Seconds between PSS readings of a job's processes (reading PSS walks the "
        "process's memory map: never every sample).").tag(config=True)
    history_ring_seconds = Float(900.0, help="Seconds of full-resolution history kept in "
                                 "memory.").tag(config=True)
    history_bucket_seconds = Float(10.0, help="Width of the persisted history's buckets "
                                   "(min/mean/max), seconds.").tag(config=True)
    history_rollup_seconds = Float(60.0, help="Width of the wider persisted buckets (each "
                                   "bucket also merged into one), read by long-range "
                                   "queries.").tag(config=True)
    history_keep_hours = Float(24.0, help="Hours of persisted history kept.").tag(config=True)

    rules = List(Dict(), help="Alert rules (mappings in the rules-file schema); a rule named "
                 "like a built-in one replaces it.").tag(config=True)
    rules_file = Unicode("", help="A YAML (.yaml/.yml) or JSON (.json) file of alert rules, "
                         "re-read when it changes.").tag(config=True)
    disabled_rules = List(Unicode(), help="Names of rules (built-in or not) to turn off.").tag(
        config=True)
    memory_alert_percent = Float(90.0, help="Built-in rule memory_high: percent of usable "
                                 "memory in use.").tag(config=True)
    memory_alert_for = Float(30.0, help="Built-in rule memory_high: seconds it must last.").tag(
        config=True)
    disk_free_alert_percent = Float(5.0, help="Built-in rule disk_free_low: percent free of "
                                    "a root's file system.").tag(config=True)
    gpu_temperature_alert_celsius = Float(85.0, help="Built-in rule gpu_temperature_high: "
                                          "degrees Celsius.").tag(config=True)
    gpu_temperature_alert_for = Float(60.0, help="Built-in rule gpu_temperature_high: seconds "
                                      "it must last.").tag(config=True)
    job_stall_minutes = Float(
        -1.0, help="Built-in rule job_stalled: active minutes (paused time excluded) without "
        "a metric; 0 turns it off; negative: the job service's stall_minutes, else 10."
    ).tag(config=True)
    job_failed_alert_seconds = Float(300.0, help="Built-in rule job_failed: seconds the alert "
                                     "fires after a job failed.").tag(config=True)
    loss_metrics = List(Unicode(), ["loss", "*_loss", "loss_*"],
                        help="Metric names (shell patterns) the job_loss_nonfinite rule "
                        "watches.").tag(config=True)
    alert_keep_days = Float(30.0, help="Days resolved alerts are kept in the store.").tag(
        config=True)

    webhook_url = Unicode("", help="POST alert notifications (firing and resolved) to this "
                          "URL as JSON (Alertmanager's webhook format).").tag(config=True)
    webhook_headers = Dict(Unicode(), help="Extra headers of webhook requests (e.g. "
                           "Authorization).").tag(config=True)
    webhook_timeout = Float(5.0, help="Seconds a webhook request may take.").tag(config=True)
    webhook_retries = Int(5, help="Retries of a failed webhook notification.").tag(config=True)
    webhook_backoff = Float(1.0, help="Seconds before the first retry (doubled each time).").tag(
        config=True)
    webhook_max_backoff = Float(60.0, help="Longest wait between retries, seconds.").tag(
        config=True)

    metrics_public = Bool(False, help="Serve notebench/metrics (Prometheus) without "
                          "authentication, like jupyter_server's authenticate_prometheus="
                          "False.").tag(config=True)
    public_liveness = Bool(False, help="Also serve an unauthenticated liveness probe at "
                           "{base_url}notebench/livez (GET/HEAD; 200 {\"status\": \"ok\"} or "
                           "503 {\"status\": \"fail\"}, nothing more; not user activity). "
                           "Readiness stays authenticated.").tag(config=True)
    log_max_age_days = Float(30.0, help="Days log records are kept (0: no age limit); the "
                             "count limit is NotebenchApp.log_keep_records.").tag(config=True)
    log_prune_interval = Float(600.0, help="Seconds between retention passes over logs and "
                               "alert records.").tag(config=True)
    health_store_timeout = Float(2.0, help="Seconds the health check waits for a store "
                                 "write.").tag(config=True)
    health_min_disk_free_percent = Float(2.0, help="Health fails below this percent free on "
                                         "the workspace's file system.").tag(config=True)
    request_stats_window = Int(2048, help="Latest requests per route kept for latency "
                               "percentiles.").tag(config=True)

    services = Instance("notebench.server.services.Services", allow_none=True)

    def __init__(self, *, services: Services, clock: Clock = SYSTEM_CLOCK,
                 **kwargs: Any) -> None:
        super().__init__(services=services, **kwargs)
        self.store = services.store
        self.bus = services.bus
        self.logs = services.logs
        self.clock: Clock = clock  # the sampler's schedule (read when the sampler starts)
        self.started = False
        self.latest_sample: dict[str, Any] | None = None
        self.latest_values: dict[SeriesKey, float] = {}
        self.job_values: dict[SeriesKey, float] = {}
        self._sample_event: Event | None = None
        self.history = History(self.store, interval=self.interval,
                               ring_seconds=self.history_ring_seconds,
                               bucket_seconds=self.history_bucket_seconds,
                               rollup_seconds=self.history_rollup_seconds,
                               keep_hours=self.history_keep_hours)
        self.requests = RequestStats(self.request_stats_window)
        self.sampler: Sampler | None = None
        self.webhook: WebhookNotifier | None = None
        if self.webhook_url:
            self.webhook = WebhookNotifier(
                self.webhook_url, timeout=self.webhook_timeout, retries=self.webhook_retries,
                backoff=self.webhook_backoff, max_backoff=self.webhook_max_backoff,
                headers=dict(self.webhook_headers))
        self.exporter: Exporter | None = None
        self.health = HealthChecker(self)
        self.jobwatch = JobWatch(self.bus, services.jobs, loss_patterns=list(self.loss_metrics),
                                 failed_seconds=self.job_failed_alert_seconds)
        self.metric_sources: list[MetricSource] = []
        self.alert_desk = AlertDesk(store=self.store, bus=self.bus,
                                    settings=self._rule_settings(),
                                    metric_sources=self.metric_sources, jobs=services.jobs,
                                    webhook=self.webhook)
        self.housekeeping = Housekeeping(
            store=self.store, alerts=self.alert_desk, count_jobs=services.jobs is not None,
            retention=Retention(log_max_age_days=self.log_max_age_days,
                                log_keep_records=int(services.config.log_keep_records or 0),
                                alert_keep_days=self.alert_keep_days,
                                prune_interval=self.log_prune_interval))
        self.report = StatsReport(bus=self.bus, requests=self.requests, history=self.history,
                                  alerts=self.alert_desk, housekeeping=self.housekeeping,
                                  webhook=self.webhook, interval=self.interval)
        self._loop: asyncio.AbstractEventLoop | None = None
        if services.jobs is not None:  # jobs fill their ``usage`` field from the samples
            services.jobs.add_usage_source(self.job_usage)

    def _rule_settings(self) -> RuleSettings:
        return RuleSettings(
            rules=tuple(self.rules), rules_file=self.rules_file,
            disabled_rules=tuple(self.disabled_rules),
            memory_percent=self.memory_alert_percent, memory_for=self.memory_alert_for,
            disk_free_percent=self.disk_free_alert_percent,
            gpu_temperature=self.gpu_temperature_alert_celsius,
            gpu_temperature_for=self.gpu_temperature_alert_for,
            job_stall_minutes=self.job_stall_minutes, max_window=self.history_ring_seconds)

    @property
    def engine(self) -> AlertEngine:
        return self.alert_desk.engine

    @property
    def jobs_by_state(self) -> dict[str, int]:
        return self.housekeeping.jobs_by_state

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.exporter = Exporter(self)
        web_app = getattr(getattr(self.services.config, "serverapp", None), "web_app", None)
        if web_app is not None:
            self.requests.install(web_app)
        await self.history.load()
        await self.alert_desk.start()
        await self.jobwatch.start()
        await self.housekeeping.refresh_jobs_by_state()
        if self.webhook is not None:
            self.webhook.start()
        roots = await asyncio.to_thread(sample_roots, self.services.workspace.path,
                                        self.services.assets)
        self.sampler = Sampler(interval=self.interval, on_sample=self._from_thread,
                               roots=roots, job_pids=self._job_pids,
                               pss_interval=self.pss_interval, clock=self.clock)
        self.started = True
        await asyncio.to_thread(self.sampler.start)
        self.housekeeping.start()

    async def stop(self) -> None:
        self.started = False
        await self.housekeeping.stop()
        if self.sampler is not None:
            await asyncio.to_thread(self.sampler.stop)
        self.history.flush_partial()
        self.jobwatch.stop()
        self.requests.uninstall()
        if self.exporter is not None:
            self.exporter.close()
        if self.webhook is not None:
            await self.webhook.stop()

    def _job_pids(self) -> dict[str, list[int]]:
        """Sampler thread: every live process of every active job, from the executor."""
        jobs = self.services.jobs
        if jobs is None:
            return {}
        return {job_id: list(jobs.pids(job_id)) for job_id in list(jobs.active_job_ids())}

    # -- samples ------------------------------------------------------------------------------

    def _from_thread(self, sample: dict[str, Any]) -> None:
        values = flatten(sample)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed at shutdown
                loop.call_soon_threadsafe(self._on_sample, sample, values)

    def _on_sample(self, sample: dict[str, Any], values: dict[SeriesKey, float]) -> None:
        if not self.started:
            return
        ts = sample["ts"]
        for source in self.metric_sources:
            values.update(source.values())
        self.latest_sample = sample
        self.latest_values = values
        self._sample_event = None
        job_values, context = self.jobwatch.series(ts)
        self.job_values = job_values
        current = {**values, **job_values}
        self.history.add(ts, current)
        self.bus.publish(MONITORING_TOPIC, "sample", sample, replay=False)
        self.alert_desk.evaluate(
            ts, current, window=lambda key, seconds: self.history.window(key, seconds, ts),
            context=context)

    def sample_event(self) -> Event | None:
        """The latest sample as an event, encoded once (new stream clients get it first)."""
        sample = self.latest_sample
        if sample is None:
            return None
        if self._sample_event is None:
            payload = encode_payload(None, MONITORING_TOPIC, "sample", sample["ts"], sample)
            self._sample_event = Event(MONITORING_TOPIC, "sample", sample, sample["ts"], None,
                                       sse_frame(None, "sample", payload))
        return self._sample_event

    def current_values(self) -> dict[SeriesKey, float]:
        return {**self.latest_values, **self.job_values}

    def job_usage(self, job_id: str) -> dict[str, Any] | None:
        """A job's resource use in the latest sample (the jobs' ``usage`` field)."""
        sample = self.latest_sample
        if sample is None:
            return None
        usage = (sample.get("jobs") or {}).get(job_id)
        if usage is None:
            return None
        return {**usage, "ts": sample["ts"]}

    def add_metric_source(self, source: MetricSource) -> None:
        """Merge ``source``'s series into every sample, before the history and the alert
        engine see it; rules on its metrics are valid. Add it before the service starts
        (the rules are checked when they load)."""
        self.metric_sources.append(source)

    def sampler_max_age(self) -> float:
        return max(3 * self.interval, self.interval + 2.0)

    # -- alerts (the alert desk) --------------------------------------------------------------

    async def reload_rules(self) -> None:
        """Built-in rules, then ``rules`` from the configuration, then the rules file."""
        await self.alert_desk.reload_rules()

    def rules_listing(self) -> dict[str, Any]:
        return self.alert_desk.rules_listing()

    async def list_alerts(self, *, states: list[str] | None, limit: int,
                          since: float | None) -> dict[str, Any]:
        return await self.alert_desk.list_alerts(states=states, limit=limit, since=since)

    async def acknowledge(self, alert_id: str, user: str | None) -> dict[str, Any]:
        return await self.alert_desk.acknowledge(alert_id, user)

    async def silence(self, alert_id: str, duration: Any, comment: Any,
                      user: str | None) -> dict[str, Any]:
        return await self.alert_desk.silence(alert_id, duration, comment, user)

    # -- queries ------------------------------------------------------------------------------

    async def metrics(self, **query: Any) -> dict[str, Any]:
        return await self.history.query(**query)

    async def query_logs(self, query: LogQuery) -> dict[str, Any]:
        records_ = await run_query(self.store, query)
        return {"records": records_, "query": describe(query),
                "next_after_id": records_[-1]["id"] if records_ else query.after_id}

    def sse_by_topic(self) -> dict[str, int]:
        return sse_by_topic(self.bus)

    def sse_streams(self) -> int:
        return sse_streams(self.bus)

    def stats(self) -> dict[str, Any]:
        return self.report.document(self.sampler)

    async def prune(self) -> dict[str, int]:
        """Retention: logs by age and count, resolved alerts by age (one transaction)."""
        return await self.housekeeping.prune()
