"""``NotebenchMonitoringService``: the sampler, history, alerts, logs, health, stats and exposition.

Configured as ``c.NotebenchMonitoringService.<option>`` (a child configurable of the extension).
The sampler thread hands each sample to the event loop, where it becomes the cached
sample every client receives, a point of the history, an ephemeral ``sample`` event on
the ``monitoring`` topic and an evaluation of the alert rules. Alert changes are stored,
published (replayable) on the ``alerts`` topic, logged, and sent to the webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Bool, Dict, Float, Instance, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ApiError, bad_request, not_found
from ..events.bus import Event, encode_payload, sse_frame
from ..events.sse import StreamSubscriber
from ..logs import LOGS_TOPIC
from ..logs.query import LogQuery, describe, run_query
from .alerts import (
    AlertEngine,
    Rule,
    Transition,
    builtin_rules,
    load_rules_file,
    parse_rules,
    records,
)
from .alerts.engine import FIRING, INACTIVE, RESOLVED, Alert
from .alerts.rules import RuleError, parse_duration
from .health import HealthChecker
from .history import History
from .jobwatch import JobWatch
from .prometheus import Exporter
from .sampler import Sampler
from .series import CATALOG, SeriesKey, flatten
from .sources import MetricSource
from .stats import RequestStats
from .webhook import WebhookNotifier

if TYPE_CHECKING:
    from ..services import Services

log = logging.getLogger("notebench.monitoring")

MONITORING_TOPIC = "monitoring"
ALERTS_TOPIC = "alerts"
STREAM_TOPICS = (MONITORING_TOPIC, ALERTS_TOPIC, LOGS_TOPIC)
HOUSEKEEPING_SECONDS = 5.0


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
        self.engine = AlertEngine()
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
        self.silences: dict[str, dict[str, Any]] = {}
        self.rule_problems: list[str] = []
        self.rule_sources: dict[str, Any] = {}
        self.jobs_by_state: dict[str, int] = {}
        self._rules_mtime: float | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_prune = 0.0
        self.transitions = 0
        if services.jobs is not None:  # jobs fill their ``usage`` field from the samples
            services.jobs.add_usage_source(self.job_usage)

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.exporter = Exporter(self)
        web_app = getattr(getattr(self.services.config, "serverapp", None), "web_app", None)
        if web_app is not None:
            self.requests.install(web_app)
        await self.history.load()
        active, next_episode = await self.store.read(records.load_active)
        self.engine.next_episode = next_episode
        self.engine.restore(active)
        self.silences = await self.store.read(lambda c: records.load_silences(c, time.time()))
        await self.reload_rules()
        await self.jobwatch.start()
        await self._refresh_jobs_by_state()
        if self.webhook is not None:
            self.webhook.start()
        roots = await asyncio.to_thread(self._roots)
        self.sampler = Sampler(interval=self.interval, on_sample=self._from_thread,
                               roots=roots, job_pids=self._job_pids,
                               pss_interval=self.pss_interval, clock=self.clock)
        self.started = True
        await asyncio.to_thread(self.sampler.start)
        self._housekeeping = asyncio.ensure_future(self._housekeeping_loop())

    async def stop(self) -> None:
        self.started = False
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._housekeeping
            self._housekeeping = None
        if self.sampler is not None:
            await asyncio.to_thread(self.sampler.stop)
        self.history.flush_partial()
        self.jobwatch.stop()
        self.requests.uninstall()
        if self.exporter is not None:
            self.exporter.close()
        if self.webhook is not None:
            await self.webhook.stop()

    def _roots(self) -> list[tuple[str, Path]]:
        """The workspace, and each asset root on another file system (one figure, and one
        disk_free_low alert, per file system)."""
        roots = [("workspace", self.services.workspace.path)]
        devices = {_device(self.services.workspace.path)}
        assets = self.services.assets
        for name, category in (assets.categories if assets is not None else {}).items():
            device = _device(Path(category.path))
            if device not in devices:
                devices.add(device)
                roots.append((str(name), Path(category.path)))
        return roots

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
        changes = self.engine.evaluate(
            ts, current, window=lambda key, seconds: self.history.window(key, seconds, ts),
            context=context)
        for change in changes:
            self._on_transition(change)

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

    # -- alerts -------------------------------------------------------------------------------

    def _silenced_until(self, alert_id: str, now: float) -> float | None:
        silence = self.silences.get(alert_id)
        if silence is None:
            return None
        if silence["until"] <= now:
            del self.silences[alert_id]
            return None
        return silence["until"]

    def _on_transition(self, change: Transition) -> None:
        self.transitions += 1
        alert = change.alert
        now = time.time()
        silenced = self._silenced_until(alert.id, now)
        data = {**alert.public(silenced), "previous": change.previous}
        snapshot = copy.copy(alert)
        if alert.state == INACTIVE:
            self.store.write_nowait(lambda conn: records.delete(conn, snapshot.episode))
        else:
            self.store.write_nowait(lambda conn: records.save(conn, snapshot))
        self.bus.publish(ALERTS_TOPIC, "alert", data)
        if alert.state == FIRING:
            log.warning("alert %s firing [%s]: %s", alert.rule, alert.severity, alert.message)
        elif alert.state == RESOLVED:
            log.info("alert %s resolved: %s", alert.rule, alert.message)
        if (self.webhook is not None and alert.state in (FIRING, RESOLVED)
                and silenced is None):
            self.webhook.notify(data)

    async def reload_rules(self) -> None:
        """Built-in rules, then ``rules`` from the configuration, then the rules file."""
        problems: list[str] = []
        max_window = self.history_ring_seconds
        by_name: dict[str, Rule] = {r.name: r for r in builtin_rules(
            memory_percent=self.memory_alert_percent, memory_for=self.memory_alert_for,
            disk_free_percent=self.disk_free_alert_percent,
            gpu_temperature=self.gpu_temperature_alert_celsius,
            gpu_temperature_for=self.gpu_temperature_alert_for,
            job_stall_seconds=self._stall_seconds())}
        configured, found = parse_rules(list(self.rules), source="config",
                                        max_window=max_window)
        problems += found
        by_name.update({r.name: r for r in configured})
        if self.rules_file:
            path = Path(self.rules_file).expanduser()
            self._rules_mtime = await asyncio.to_thread(_mtime, path)
            from_file, found = await asyncio.to_thread(load_rules_file, path,
                                                       max_window=max_window)
            problems += found
            by_name.update({r.name: r for r in from_file})
        for name in self.disabled_rules:
            rule = by_name.get(name)
            if rule is not None:
                by_name[name] = _replace(rule, enabled=False)
        known = set(CATALOG).union(*(source.metrics() for source in self.metric_sources))
        for rule in by_name.values():
            if rule.metric not in known:
                problems.append(f"rule {rule.name!r}: {rule.metric!r} is not a metric of the "
                                "sampler; the rule never fires")
        for problem in problems:
            log.warning("alert rules: %s", problem)
        self.rule_problems = problems
        self.engine.set_rules(by_name.values())

    def _stall_seconds(self) -> float:
        if self.job_stall_minutes >= 0:
            return self.job_stall_minutes * 60.0
        jobs = self.services.jobs
        minutes = jobs.stall_minutes if jobs is not None else 0.0
        return (minutes or 10.0) * 60.0

    def rules_listing(self) -> dict[str, Any]:
        active: dict[str, int] = {}
        for alert in self.engine.active.values():
            active[alert.rule] = active.get(alert.rule, 0) + 1
        return {"rules": [{**r.describe(), "active": active.get(r.name, 0)}
                          for r in self.engine.rules],
                "problems": list(self.rule_problems), "rules_file": self.rules_file or None}

    async def list_alerts(self, *, states: list[str] | None, limit: int,
                          since: float | None) -> dict[str, Any]:
        now = time.time()
        active = [a.public(self._silenced_until(a.id, now)) for a in
                  sorted(self.engine.active.values(), key=lambda a: a.episode)]
        if states:
            active = [a for a in active if a["state"] in states]
        wanted = [s for s in (states or [RESOLVED]) if s == RESOLVED]
        recent: list[dict[str, Any]] = []
        if wanted:
            rows = await self.store.read(lambda conn: records.recent(
                conn, limit=limit, since=since, states=wanted))
            recent = [a.public(self._silenced_until(a.id, now)) for a in rows]
        silences = [dict(s) for s in self.silences.values() if s["until"] > now]
        return {"active": active, "recent": recent, "silences": silences,
                "time": now}

    async def acknowledge(self, alert_id: str, user: str | None) -> dict[str, Any]:
        now = time.time()
        alert = self.engine.acknowledge(alert_id, user, now)
        if alert is None:
            await self._known_or_404(alert_id)
            raise ApiError(409, "not_active", f"alert {alert_id} is not pending or firing")
        snapshot = copy.copy(alert)
        self.store.write_nowait(lambda conn: records.save(conn, snapshot))
        data = {**alert.public(self._silenced_until(alert_id, now)), "previous": alert.state}
        self.bus.publish(ALERTS_TOPIC, "alert", data)
        log.info("alert %s acknowledged by %s", alert.rule, user or "someone")
        return data

    async def silence(self, alert_id: str, duration: Any, comment: Any,
                      user: str | None) -> dict[str, Any]:
        try:
            seconds = parse_duration(duration, "duration")
        except RuleError as exc:
            raise bad_request(str(exc), "invalid_duration") from None
        if seconds > 366 * 86400:
            raise bad_request("duration may be at most a year", "invalid_duration")
        if comment is not None and not isinstance(comment, str):
            raise bad_request("comment must be a string", "invalid_request")
        alert = self.engine.active.get(alert_id)
        if alert is None:
            await self._known_or_404(alert_id)
        now = time.time()
        if seconds <= 0:
            self.silences.pop(alert_id, None)
            self.store.write_nowait(lambda conn: records.delete_silence(conn, alert_id))
            silence = {"id": alert_id, "until": None, "created": now, "by": user,
                       "comment": comment or ""}
        else:
            silence = {"id": alert_id, "until": now + seconds, "created": now, "by": user,
                       "comment": comment or ""}
            self.silences[alert_id] = silence
            saved = dict(silence)
            self.store.write_nowait(lambda conn: records.save_silence(conn, saved))
        self.bus.publish(ALERTS_TOPIC, "silence", silence)
        result = {**silence, "alert": None}
        if alert is not None:
            result["alert"] = alert.public(self._silenced_until(alert_id, now))
        log.info("alert %s silenced until %s by %s", alert_id, silence["until"],
                 user or "someone")
        return result

    async def _known_or_404(self, alert_id: str) -> Alert:
        row = await self.store.read(lambda conn: records.last_of(conn, alert_id))
        if row is None:
            raise not_found(f"no alert {alert_id}", "unknown_alert")
        return row

    # -- queries ------------------------------------------------------------------------------

    async def metrics(self, **query: Any) -> dict[str, Any]:
        return await self.history.query(**query)

    async def query_logs(self, query: LogQuery) -> dict[str, Any]:
        records_ = await run_query(self.store, query)
        return {"records": records_, "query": describe(query),
                "next_after_id": records_[-1]["id"] if records_ else query.after_id}

    def sse_by_topic(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sub in self.bus.subscribers():
            if not isinstance(sub, StreamSubscriber):
                continue
            for topic in sub.topics:
                counts[topic] = counts.get(topic, 0) + 1
        return counts

    def stats(self) -> dict[str, Any]:
        bus = self.bus
        sampler = self.sampler
        sampler_stats: dict[str, Any] = {"running": bool(sampler and sampler.alive),
                                         "interval": self.interval}
        if sampler is not None:
            samples = sampler.samples
            sampler_stats.update({
                "samples": samples, "skipped_ticks": sampler.skipped, "errors": sampler.errors,
                "last_error": sampler.last_error,
                "cpu_ms_per_sample": {
                    "last": round(sampler.last_cost.get("cpu_seconds", 0.0) * 1000, 3),
                    "mean": round(sampler.total_cpu_seconds / samples * 1000, 3)
                    if samples else None,
                    "max": round(sampler.max_cpu_seconds * 1000, 3)},
                "wall_ms_last": round(sampler.last_cost.get("wall_seconds", 0.0) * 1000, 3),
            })
        clients = self.sse_by_topic()
        webhook = self.webhook.figures() if self.webhook is not None else {"url_set": False}
        return {
            "time": time.time(),
            "requests": {"total": self.requests.total, "routes": self.requests.summary()},
            "sse": {"clients": sum(1 for s in bus.subscribers()
                                   if isinstance(s, StreamSubscriber)),
                    "by_topic": clients},
            "events": {"published": bus.published, "delivered_frames": bus.delivered_frames,
                       "dropped_clients": bus.dropped_clients, "last_id": bus.last_id},
            "jobs": {"by_state": dict(self.jobs_by_state)},
            "sampler": sampler_stats,
            "alerts": {"active": len(self.engine.active), "transitions": self.transitions,
                       "evaluations": self.engine.evaluations},
            "history": {"series": len(self.history.ring),
                        "ring_points": sum(len(p) for p in self.history.ring.values()),
                        "persisted_rows_written": self.history.rows_written},
            "webhook": webhook,
        }

    # -- housekeeping -------------------------------------------------------------------------

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                await self._refresh_jobs_by_state()
                if self.rules_file:
                    mtime = await asyncio.to_thread(_mtime, Path(self.rules_file).expanduser())
                    if mtime != self._rules_mtime:
                        log.info("alert rules file changed: reloading %s", self.rules_file)
                        await self.reload_rules()
                if time.time() - self._last_prune >= self.log_prune_interval:
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("monitoring housekeeping failed")

    async def _refresh_jobs_by_state(self) -> None:
        if self.services.jobs is None:
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
        max_age = self.log_max_age_days * 86400.0
        keep = int(getattr(self.services.config, "log_keep_records", 0) or 0)
        alert_cutoff = now - self.alert_keep_days * 86400.0

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


def _device(path: Path) -> int | None:
    """The file system (st_dev) holding ``path`` or its nearest existing parent."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return path.stat().st_dev
    except OSError:
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _replace(rule: Rule, **changes: Any) -> Rule:
    import dataclasses

    return dataclasses.replace(rule, **changes)
