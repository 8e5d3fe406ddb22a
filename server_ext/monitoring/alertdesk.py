"""``AlertDesk``: the alert rules in force and what is done with alerts.

It loads the rules (built-in, then configured, then the rules file) and reloads them when
the file changes; evaluates them on each sample; stores, publishes (on the ``alerts``
topic), logs and sends to the webhook each transition; lists, acknowledges and silences
alerts. Loop only.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, bad_request, not_found
from . import ALERTS_TOPIC
from .alerts import (
    AlertEngine,
    Rule,
    Transition,
    builtin_rules,
    load_rules_file,
    parse_rules,
    records,
)
from .alerts.engine import FIRING, INACTIVE, RESOLVED, Alert, WindowFn
from .alerts.rules import RuleError, parse_duration
from .series import CATALOG, SeriesKey

if TYPE_CHECKING:
    from ..events.bus import EventBus
    from ..seams import JobsView
    from ..store import Store
    from .sources import MetricSource
    from .webhook import WebhookNotifier

log = logging.getLogger("notebench.monitoring")

MAX_SILENCE_SECONDS = 366 * 86400


@dataclass(frozen=True)
class RuleSettings:
    """Where the rules come from: the alert options of ``NotebenchMonitoringService``."""

    rules: tuple[Mapping[str, Any], ...] = ()
    rules_file: str = ""
    disabled_rules: tuple[str, ...] = ()
    memory_percent: float = 90.0
    memory_for: float = 30.0
    disk_free_percent: float = 5.0
    gpu_temperature: float = 85.0
    gpu_temperature_for: float = 60.0
    #: 0 turns job_stalled off; negative: the job service's ``stall_minutes``, else 10
    job_stall_minutes: float = -1.0
    #: the longest window a rule may read (the history ring)
    max_window: float = 900.0


class AlertDesk:
    """The rules, the engine evaluating them, silences, and the alerts' operations."""

    def __init__(self, *, store: Store, bus: EventBus, settings: RuleSettings,
                 metric_sources: Sequence[MetricSource], jobs: JobsView | None,
                 webhook: WebhookNotifier | None) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.metric_sources = metric_sources  # their metrics are valid in rules
        self.jobs = jobs
        self.webhook = webhook
        self.engine = AlertEngine()
        self.silences: dict[str, dict[str, Any]] = {}
        self.rule_problems: list[str] = []
        self.transitions = 0
        self._rules_mtime: float | None = None

    async def start(self) -> None:
        """Restore the alerts active when the server stopped and the silences; load the
        rules."""
        active, next_episode = await self.store.read(records.load_active)
        self.engine.next_episode = next_episode
        self.engine.restore(active)
        self.silences = await self.store.read(lambda c: records.load_silences(c, time.time()))
        await self.reload_rules()

    # -- rules --------------------------------------------------------------------------------

    @property
    def rules_path(self) -> Path | None:
        return Path(self.settings.rules_file).expanduser() if self.settings.rules_file else None

    async def reload_rules(self) -> None:
        """Built-in rules, then ``rules`` from the configuration, then the rules file."""
        settings = self.settings
        problems: list[str] = []
        max_window = settings.max_window
        by_name: dict[str, Rule] = {r.name: r for r in builtin_rules(
            memory_percent=settings.memory_percent, memory_for=settings.memory_for,
            disk_free_percent=settings.disk_free_percent,
            gpu_temperature=settings.gpu_temperature,
            gpu_temperature_for=settings.gpu_temperature_for,
            job_stall_seconds=self._stall_seconds())}
        configured, found = parse_rules([dict(r) for r in settings.rules], source="config",
                                        max_window=max_window)
        problems += found
        by_name.update({r.name: r for r in configured})
        path = self.rules_path
        if path is not None:
            self._rules_mtime = await asyncio.to_thread(_mtime, path)
            from_file, found = await asyncio.to_thread(load_rules_file, path,
                                                       max_window=max_window)
            problems += found
            by_name.update({r.name: r for r in from_file})
        for name in settings.disabled_rules:
            rule = by_name.get(name)
            if rule is not None:
                by_name[name] = dataclasses.replace(rule, enabled=False)
        known = set(CATALOG).union(*(source.metrics() for source in self.metric_sources))
        for rule in by_name.values():
            if rule.metric not in known:
                problems.append(f"rule {rule.name!r}: {rule.metric!r} is not a metric of the "
                                "sampler; the rule never fires")
        for problem in problems:
            log.warning("alert rules: %s", problem)
        self.rule_problems = problems
        self.engine.set_rules(by_name.values())

    async def reload_if_changed(self) -> None:
        """Reload the rules when the rules file's modification time moved."""
        path = self.rules_path
        if path is None:
            return
        mtime = await asyncio.to_thread(_mtime, path)
        if mtime != self._rules_mtime:
            log.info("alert rules file changed: reloading %s", self.settings.rules_file)
            await self.reload_rules()

    def _stall_seconds(self) -> float:
        if self.settings.job_stall_minutes >= 0:
            return self.settings.job_stall_minutes * 60.0
        minutes = self.jobs.stall_minutes if self.jobs is not None else 0.0
        return (minutes or 10.0) * 60.0

    def rules_listing(self) -> dict[str, Any]:
        active: dict[str, int] = {}
        for alert in self.engine.active.values():
            active[alert.rule] = active.get(alert.rule, 0) + 1
        return {"rules": [{**r.describe(), "active": active.get(r.name, 0)}
                          for r in self.engine.rules],
                "problems": list(self.rule_problems),
                "rules_file": self.settings.rules_file or None}

    # -- evaluation and transitions -----------------------------------------------------------

    def evaluate(self, ts: float, values: Mapping[SeriesKey, float], *, window: WindowFn,
                 context: Mapping[SeriesKey, Mapping[str, str]]) -> None:
        """Evaluate the rules on one sample's values; act on every transition."""
        for change in self.engine.evaluate(ts, values, window=window, context=context):
            self._on_transition(change)

    def silenced_until(self, alert_id: str, now: float) -> float | None:
        """When the alert's silence ends (None: not silenced); an expired one is dropped."""
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
        silenced = self.silenced_until(alert.id, time.time())
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

    # -- operations ---------------------------------------------------------------------------

    async def list_alerts(self, *, states: list[str] | None, limit: int,
                          since: float | None) -> dict[str, Any]:
        now = time.time()
        active = [a.public(self.silenced_until(a.id, now)) for a in
                  sorted(self.engine.active.values(), key=lambda a: a.episode)]
        if states:
            active = [a for a in active if a["state"] in states]
        wanted = [s for s in (states or [RESOLVED]) if s == RESOLVED]
        recent: list[dict[str, Any]] = []
        if wanted:
            rows = await self.store.read(lambda conn: records.recent(
                conn, limit=limit, since=since, states=wanted))
            recent = [a.public(self.silenced_until(a.id, now)) for a in rows]
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
        data = {**alert.public(self.silenced_until(alert_id, now)), "previous": alert.state}
        self.bus.publish(ALERTS_TOPIC, "alert", data)
        log.info("alert %s acknowledged by %s", alert.rule, user or "someone")
        return data

    async def silence(self, alert_id: str, duration: Any, comment: Any,
                      user: str | None) -> dict[str, Any]:
        try:
            seconds = parse_duration(duration, "duration")
        except RuleError as exc:
            raise bad_request(str(exc), "invalid_duration") from None
        if seconds > MAX_SILENCE_SECONDS:
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
            result["alert"] = alert.public(self.silenced_until(alert_id, now))
        log.info("alert %s silenced until %s by %s", alert_id, silence["until"],
                 user or "someone")
        return result

    async def _known_or_404(self, alert_id: str) -> Alert:
        row = await self.store.read(lambda conn: records.last_of(conn, alert_id))
        if row is None:
            raise not_found(f"no alert {alert_id}", "unknown_alert")
        return row


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
