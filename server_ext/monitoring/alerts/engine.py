"""The alert engine: rules over series values, Prometheus states, one alert per identity.

``evaluate`` runs after every sample (on the event loop; it only compares numbers). An
alert's identity is its rule's name plus its labels (the series' labels and the rule's
own); its ``id`` is a fingerprint of that identity, stable across restarts. States:

- a condition that starts to hold makes a ``pending`` alert (``firing`` at once when the
  rule's ``for`` is 0);
- a pending alert whose condition held for ``for`` seconds becomes ``firing``; one whose
  condition stops first is dropped (``inactive``: it never was an alert);
- a firing alert whose condition stopped (or whose series is gone) for
  ``keep_firing_for`` seconds becomes ``resolved``.

Each change is returned as a ``Transition``; the service stores, streams and notifies.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..series import Labels, SeriesKey
from .rules import Rule

PENDING = "pending"
FIRING = "firing"
RESOLVED = "resolved"
INACTIVE = "inactive"


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """The id of an alert: 16 hex digits of a hash of its rule name and labels."""
    text = rule + "\0" + orjson.dumps(dict(sorted(labels.items()))).decode()
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class Alert:
    """One alert (one episode of an identity)."""

    id: str
    episode: int
    rule: str
    labels: dict[str, str]
    severity: str
    state: str
    message: str
    value: float | None
    threshold: float
    pending_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    last_true_at: float | None = None
    updated: float = 0.0
    acked_at: float | None = None
    acked_by: str | None = None
    keep_firing_for: float = 0.0
    for_: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def public(self, silenced_until: float | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "episode": self.episode, "rule": self.rule, "labels": self.labels,
            "severity": self.severity, "state": self.state, "message": self.message,
            "value": self.value, "threshold": self.threshold, "pending_at": self.pending_at,
            "fired_at": self.fired_at, "resolved_at": self.resolved_at,
            "last_true_at": self.last_true_at, "updated": self.updated,
            "acknowledged": None if self.acked_at is None else {"at": self.acked_at,
                                                                 "by": self.acked_by},
            "silenced_until": silenced_until,
        }


@dataclass
class Transition:
    """An alert that changed state (``previous`` None: it is new)."""

    alert: Alert
    previous: str | None


WindowFn = Callable[[SeriesKey, float], list[float]]


class AlertEngine:
    """Evaluates rules; keeps the pending and firing alerts."""

    def __init__(self, rules: Iterable[Rule] = (), *, next_episode: int = 1) -> None:
        self.rules: list[Rule] = list(rules)
        self.active: dict[str, Alert] = {}
        self.next_episode = next_episode
        self.evaluations = 0

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Replace the rules; alerts of rules that are gone resolve at the next evaluation."""
        self.rules = list(rules)

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Alerts that were active when the previous server stopped."""
        for alert in alerts:
            self.active[alert.id] = alert
            self.next_episode = max(self.next_episode, alert.episode + 1)

    def evaluate(self, now: float, values: Mapping[SeriesKey, float], *,
                 window: WindowFn | None = None,
                 context: Mapping[SeriesKey, Mapping[str, str]] | None = None
                 ) -> list[Transition]:
        """Compare every rule with the current values; the alerts that changed."""
        self.evaluations += 1
        by_name: dict[str, list[tuple[SeriesKey, float]]] = {}
        for key, value in values.items():
            by_name.setdefault(key[0], []).append((key, value))
        changes: list[Transition] = []
        holding: set[str] = set()
        for rule in self.rules:
            if not rule.enabled:
                continue
            for key, current in by_name.get(rule.metric, ()):
                if rule.match and not _matches(key[1], rule.match):
                    continue
                value: float | None = current
                if rule.aggregation is not None:
                    value = rule.aggregate(window(key, rule.window) if window else [current])
                if value is None or not rule.holds(value):
                    continue
                labels = {**dict(key[1]), **rule.labels}
                alert_id = fingerprint(rule.name, labels)
                holding.add(alert_id)
                extra = dict(context.get(key, {})) if context else {}
                message = rule.render(value, {**labels, **extra})
                changed = self._holds(now, rule, alert_id, labels, value, message)
                if changed is not None:
                    changes.append(changed)
        for alert_id, alert in list(self.active.items()):
            if alert_id in holding:
                continue
            if alert.state == PENDING:
                del self.active[alert_id]
                previous, alert.state, alert.updated = alert.state, INACTIVE, now
                changes.append(Transition(alert, previous))
            elif alert.state == FIRING:
                since = alert.last_true_at if alert.last_true_at is not None else now
                if now - since >= alert.keep_firing_for:
                    del self.active[alert_id]
                    alert.state, alert.resolved_at, alert.updated = RESOLVED, now, now
                    changes.append(Transition(alert, FIRING))
        return changes

    def _holds(self, now: float, rule: Rule, alert_id: str, labels: dict[str, str],
               value: float, message: str) -> Transition | None:
        alert = self.active.get(alert_id)
        if alert is None:
            state = FIRING if rule.for_ <= 0 else PENDING
            alert = Alert(alert_id, self.next_episode, rule.name, labels, rule.severity, state,
                          message, value, rule.threshold, now,
                          fired_at=now if state == FIRING else None, last_true_at=now,
                          updated=now, keep_firing_for=rule.keep_firing_for, for_=rule.for_)
            self.next_episode += 1
            self.active[alert_id] = alert
            return Transition(alert, None)
        alert.value = value
        alert.message = message
        alert.last_true_at = now
        alert.keep_firing_for = rule.keep_firing_for
        alert.severity = rule.severity
        alert.threshold = rule.threshold
        if alert.state == PENDING and now - alert.pending_at >= rule.for_:
            alert.state, alert.fired_at, alert.updated = FIRING, now, now
            return Transition(alert, PENDING)
        return None

    def acknowledge(self, alert_id: str, by: str | None, now: float) -> Alert | None:
        alert = self.active.get(alert_id)
        if alert is None:
            return None
        alert.acked_at, alert.acked_by, alert.updated = now, by, now
        return alert

    def snapshot(self) -> list[Alert]:
        return [copy.copy(a) for a in self.active.values()]


def _matches(labels: Labels, wanted: Mapping[str, str]) -> bool:
    have = dict(labels)
    return all(have.get(k) == v for k, v in wanted.items())
