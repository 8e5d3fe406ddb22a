"""Routes of the monitoring capability (``monitoring/...``), the Prometheus exposition and
the public liveness probe."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from jupyter_server.auth.decorator import allow_unauthenticated

from ..bounds import MAX_TIME
from ..errors import bad_request
from ..events.bus import Event
from ..events.sse import EventStreamHandler
from ..handlers import NotebenchHandler
from ..logs.query import query_from_args
from .history import MAX_POINTS_LIMIT
from .prometheus import CONTENT_TYPE_LATEST
from .service import MONITORING_TOPIC, STREAM_TOPICS

if TYPE_CHECKING:
    from ..services import Services
    from .service import NotebenchMonitoringService

ALERT_ID = r"([0-9a-f]{16})"
ALERT_STATES = ("pending", "firing", "resolved")
JOBS_RESOURCE = "notebench:jobs"


def service_of(services: Services) -> NotebenchMonitoringService:
    """The monitoring service itself (``Services`` types it by its seam)."""
    return cast("NotebenchMonitoringService", services.monitoring)


class MonitoringHandler(NotebenchHandler):
    auth_area = "monitoring"

    @property
    def monitoring(self) -> NotebenchMonitoringService:
        return service_of(self.services)

    def user_name(self) -> str | None:
        user = self.current_user
        return getattr(user, "username", None) or getattr(user, "name", None)


class StreamHandler(EventStreamHandler):
    """``GET monitoring/stream?topics=``: samples, alerts and log records (SSE).

    Samples are ephemeral (no ``id:``); alerts and logs are replayable with
    ``Last-Event-ID``. A new connection first gets the current sample. Without
    ``?topics=`` it streams those of them the user may read (log records carry jobs'
    output: the ``logs`` topic needs ``read`` on ``notebench:jobs`` too).
    """

    auth_area = "monitoring"
    _readable: tuple[str, ...] = STREAM_TOPICS

    async def get(self, *args: str) -> None:
        readable = [topic for topic in STREAM_TOPICS
                    if await self.unreadable_area(topic) is None]
        self._readable = tuple(readable) or STREAM_TOPICS  # none: the refusal names one
        await super().get(*args)

    def stream_topics(self, *args: str) -> list[str]:
        raw = self.get_query_argument("topics", "")
        topics = [t.strip() for t in raw.split(",") if t.strip()] or list(self._readable)
        unknown = [t for t in topics if t not in STREAM_TOPICS]
        if unknown:
            raise bad_request(f"this stream carries {', '.join(STREAM_TOPICS)}, not "
                              f"{unknown[0]}", "unknown_topic")
        return topics

    async def initial_events(self, topics: frozenset[str]) -> list[Event]:
        if MONITORING_TOPIC not in topics:
            return []
        event = service_of(self.services).sample_event()
        return [event] if event is not None else []


class MetricsHandler(MonitoringHandler):
    """``GET monitoring/metrics?names=&since=&until=&step=&max_points=``: history for charts
    (at most ``max_points`` points a series, whatever the step)."""

    async def get(self) -> None:
        raw_names = self.get_query_argument("names", "")
        names = [n.strip() for n in raw_names.split(",") if n.strip()] or None
        since = self.number_arg("since", low=-MAX_TIME, high=MAX_TIME)
        until = self.number_arg("until", low=-MAX_TIME, high=MAX_TIME)
        if since is not None and since < 0:
            since = max(0.0, self._now() + since)  # relative: seconds before now
        if until is not None and until < 0:
            until = max(0.0, self._now() + until)
        step = self.number_arg("step", low=0.001, high=MAX_TIME)
        for name, value in (("since", since), ("until", until), ("step", step)):
            if value is not None and not math.isfinite(value):
                raise bad_request(f"{name} must be a finite number", "invalid_parameter")
        max_points = self.number_arg("max_points", int, low=1, high=MAX_POINTS_LIMIT)
        self.write_json(await self.monitoring.metrics(names=names, since=since, until=until,
                                                      step=step, max_points=max_points))

    @staticmethod
    def _now() -> float:
        import time

        return time.time()


class LogsHandler(MonitoringHandler):
    """``GET monitoring/logs?level=&source=&job=&since=&until=&q=&after_id=&limit=&tail=``.

    Jobs' records (their output and lifecycle) are jobs' data: ``?job=`` needs ``read`` on
    ``notebench:jobs`` too, and the unfiltered listing leaves them out for a reader
    without it (the echoed query then says ``without_jobs``).
    """

    async def get(self) -> None:
        query = query_from_args(lambda name: self.get_query_argument(name, None))
        if query.job_id is not None:
            await self.require_permission("read", JOBS_RESOURCE)
        elif not await self.is_allowed("read", JOBS_RESOURCE):
            query = replace(query, without_jobs=True)
        self.write_json(await self.monitoring.query_logs(query))


class AlertsHandler(MonitoringHandler):
    """``GET monitoring/alerts?state=&limit=&since=``: active alerts and recent ones."""

    async def get(self) -> None:
        raw = self.get_query_argument("state", "")
        states = [s.strip() for s in raw.split(",") if s.strip()] or None
        for state in states or []:
            if state not in ALERT_STATES:
                raise bad_request(f"state must be one of {', '.join(ALERT_STATES)}",
                                  "invalid_parameter")
        limit = self.number_arg("limit", int, low=1, high=1000) or 100
        since = self.number_arg("since", low=-MAX_TIME, high=MAX_TIME)
        self.write_json(await self.monitoring.list_alerts(states=states, limit=limit,
                                                          since=since))


class AckHandler(MonitoringHandler):
    """``POST monitoring/alerts/{id}/ack``: acknowledge a pending or firing alert."""

    async def post(self, alert_id: str) -> None:
        self.require_writable()
        self.write_json(await self.monitoring.acknowledge(alert_id, self.user_name()))


class SilenceHandler(MonitoringHandler):
    """``POST monitoring/alerts/{id}/silence`` ``{"duration": "1h", "comment": ...}``.

    A silenced alert is still evaluated, stored and streamed, but not sent to the
    webhook; a duration of 0 lifts the silence.
    """

    async def post(self, alert_id: str) -> None:
        self.require_writable()
        body = self.json_body()
        if "duration" not in body:
            raise bad_request("give a duration: seconds or 30m, 2h...", "invalid_duration")
        self.write_json(await self.monitoring.silence(alert_id, body["duration"],
                                                      body.get("comment"), self.user_name()))


class RulesHandler(MonitoringHandler):
    """``GET monitoring/alerts/rules``: the rules in force and problems of their sources."""

    async def get(self) -> None:
        self.write_json(self.monitoring.rules_listing())


class HealthHandler(MonitoringHandler):
    """``GET monitoring/health?probe=live|ready``: 200, or 503 naming the failed components."""

    _track_activity = False  # probes are not user activity

    async def get(self) -> None:
        probe = self.get_query_argument("probe", "ready")
        if probe not in ("live", "ready"):
            raise bad_request("probe must be live or ready", "invalid_parameter")
        status, body = await self.monitoring.health.check(live_only=probe == "live")
        self.set_header("Cache-Control", "no-store")
        self.write_json(body, status=status)


class StatsHandler(MonitoringHandler):
    """``GET monitoring/stats``: requests per route, streams, events, jobs, sampler cost."""

    _track_activity = False

    async def get(self) -> None:
        self.write_json(self.monitoring.stats())


class PrometheusHandler(MonitoringHandler):
    """``GET {base_url}notebench/metrics``: Prometheus text exposition.

    Authenticated (``read`` on ``notebench:monitoring``) unless
    ``c.NotebenchMonitoringService.metrics_public`` is true.
    """

    async def prepare(self) -> None:
        if self.services.monitoring is not None and self.monitoring.metrics_public:
            await super(NotebenchHandler, self).prepare()
            return
        await super().prepare()

    _track_activity = False  # a scraper is not a user: idle culling must still work

    @allow_unauthenticated
    async def get(self) -> None:
        exporter = self.monitoring.exporter
        body = exporter.render() if exporter is not None else b""
        self.finish(body, set_content_type=CONTENT_TYPE_LATEST)


class LivenessHandler(MonitoringHandler):
    """``GET|HEAD {base_url}notebench/livez``: the public liveness probe (routed only with
    ``c.NotebenchMonitoringService.public_liveness``).

    Unauthenticated, so it tells nothing but the live check's outcome: 200
    ``{"status": "ok"}`` or 503 ``{"status": "fail"}`` (no version, component or path).
    """

    SUPPORTED_METHODS = ("GET", "HEAD")
    _track_activity = False  # a probe is not a user: JupyterHub's idle culler must not see it

    async def prepare(self) -> None:
        await super(NotebenchHandler, self).prepare()  # Jupyter's checks, no authentication

    @allow_unauthenticated
    async def get(self) -> None:
        try:
            status, _ = await self.monitoring.health.check(live_only=True)
        except Exception:
            self.log.exception("notebench: the liveness check failed")
            status = 503
        self.set_header("Cache-Control", "no-store")
        self.write_json({"status": "ok" if status == 200 else "fail"},
                        status=200 if status == 200 else 503)

    head = get


def monitoring_routes() -> list[tuple[str, type]]:
    return [
        (r"monitoring/stream", StreamHandler),
        (r"monitoring/metrics", MetricsHandler),
        (r"monitoring/logs", LogsHandler),
        (r"monitoring/alerts", AlertsHandler),
        (r"monitoring/alerts/rules", RulesHandler),
        (rf"monitoring/alerts/{ALERT_ID}/ack", AckHandler),
        (rf"monitoring/alerts/{ALERT_ID}/silence", SilenceHandler),
        (r"monitoring/health", HealthHandler),
        (r"monitoring/stats", StatsHandler),
    ]
