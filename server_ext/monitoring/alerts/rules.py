"""Alert rules: the model, our rules-file schema (YAML or JSON), and the built-in rules.

A rule is a condition over one metric of the sampler's vocabulary (``series.py``), not
PromQL: every series of ``metric`` whose labels include ``match`` is compared with
``threshold``; with ``aggregation`` (avg, min, max, sum, count, last) over ``window``
seconds the comparison uses that aggregate of the series' recent values. Semantics are
Prometheus's: the condition must hold for ``for`` seconds (pending) before the alert
fires, a firing alert stays firing ``keep_firing_for`` seconds after the condition ends,
and one alert exists per rule and label set (identity = rule name + labels).

A rules file::

    rules:
      - name: gpu_hot
        metric: gpu_temperature_celsius
        comparison: ">"
        threshold: 80
        for: 2m              # seconds, or a duration: 90s, 2m, 1h30m
        aggregation: avg     # optional, with window
        window: 30s
        severity: warning    # info, warning, critical
        labels: {team: ml}
        message: "GPU {gpu} at {value:.0f} °C"

A rule named like a built-in one replaces it; ``enabled: false`` turns a rule off.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "avg": lambda v: sum(v) / len(v),
    "min": min,
    "max": max,
    "sum": sum,
    "count": lambda v: float(len(v)),
    "last": lambda v: v[-1],
}
SEVERITIES = ("info", "warning", "critical")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
FIELDS = ("name", "metric", "comparison", "threshold", "match", "aggregation", "window",
          "for", "keep_firing_for", "severity", "labels", "message", "enabled", "description")


class RuleError(ValueError):
    """A rule or rules file that cannot be used."""


@dataclass(frozen=True)
class Rule:
    """One alerting rule."""

    name: str
    metric: str
    comparison: str
    threshold: float
    match: dict[str, str] = field(default_factory=dict)
    aggregation: str | None = None
    window: float = 0.0
    for_: float = 0.0
    keep_firing_for: float = 0.0
    severity: str = "warning"
    labels: dict[str, str] = field(default_factory=dict)
    message: str = ""
    enabled: bool = True
    description: str = ""
    source: str = "config"

    def holds(self, value: float) -> bool:
        return COMPARISONS[self.comparison](value, self.threshold)

    def aggregate(self, values: list[float]) -> float | None:
        if not values or self.aggregation is None:
            return None
        return AGGREGATIONS[self.aggregation](values)

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out["for"] = out.pop("for_")
        return out

    def render(self, value: float | None, labels: Mapping[str, str]) -> str:
        """The message with ``{value}``, ``{threshold}``, ``{metric}`` and labels filled."""
        template = self.message or (f"{{metric}} {self.comparison} {{threshold:g}} "
                                    "(now {value:g})")
        fields = _Fields({**labels, "value": value if value is not None else math.nan,
                          "threshold": self.threshold, "metric": self.metric,
                          "rule": self.name})
        try:
            return template.format_map(fields)
        except (ValueError, TypeError, IndexError, AttributeError, KeyError):
            return template


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def parse_duration(value: Any, what: str) -> float:
    """Seconds from a number or a Prometheus-style duration ("90s", "2m", "1h30m")."""
    if isinstance(value, bool):
        raise RuleError(f"{what} must be a number of seconds or a duration like 30s, 5m")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise RuleError(f"{what} must not be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return parse_duration(number, what)
        parts = _DURATION.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNITS[u] for n, u in parts)
    raise RuleError(f"{what} must be a number of seconds or a duration like 30s, 5m, 1h")


def parse_rule(raw: Any, *, source: str = "config", known_metrics: set[str] | None = None,
               max_window: float | None = None) -> Rule:
    """A ``Rule`` from its mapping (``RuleError`` naming the problem)."""
    if not isinstance(raw, Mapping):
        raise RuleError("a rule must be a mapping")
    unknown = sorted(set(raw) - set(FIELDS))
    name = raw.get("name")
    label = f"rule {name!r}" if isinstance(name, str) else "a rule"
    if unknown:
        raise RuleError(f"{label}: unknown field(s) {', '.join(unknown)}")
    if not isinstance(name, str) or not NAME.match(name):
        raise RuleError(f"{label}: 'name' must be letters, digits, _ . - (starting with a "
                        "letter or _)")
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric:
        raise RuleError(f"{label}: 'metric' must name a metric")
    if known_metrics is not None and metric not in known_metrics:
        raise RuleError(f"{label}: unknown metric {metric!r}")
    comparison = raw.get("comparison", ">")
    if comparison not in COMPARISONS:
        raise RuleError(f"{label}: 'comparison' must be one of {' '.join(COMPARISONS)}")
    threshold = raw.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not math.isfinite(threshold):
        raise RuleError(f"{label}: 'threshold' must be a finite number")
    aggregation = raw.get("aggregation")
    if aggregation is not None and aggregation not in AGGREGATIONS:
        raise RuleError(f"{label}: 'aggregation' must be one of {', '.join(AGGREGATIONS)}")
    window = parse_duration(raw.get("window", 0), f"{label}: 'window'")
    if aggregation is not None and window <= 0:
        raise RuleError(f"{label}: an aggregation needs a 'window'")
    if aggregation is None and window > 0:
        raise RuleError(f"{label}: a 'window' needs an 'aggregation'")
    if max_window is not None and window > max_window:
        raise RuleError(f"{label}: 'window' may be at most {max_window:g}s (the full-"
                        "resolution history)")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise RuleError(f"{label}: 'severity' must be one of {', '.join(SEVERITIES)}")
    match = raw.get("match") or {}
    labels = raw.get("labels") or {}
    for what, mapping in (("match", match), ("labels", labels)):
        if not isinstance(mapping, Mapping) or not all(
                isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in
                mapping.items()):
            raise RuleError(f"{label}: '{what}' must map label names to values")
    message = raw.get("message", "")
    if not isinstance(message, str):
        raise RuleError(f"{label}: 'message' must be a string")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{label}: 'enabled' must be true or false")
    return Rule(
        name=name, metric=metric, comparison=comparison, threshold=float(threshold),
        match={str(k): str(v) for k, v in match.items()}, aggregation=aggregation,
        window=window, for_=parse_duration(raw.get("for", 0), f"{label}: 'for'"),
        keep_firing_for=parse_duration(raw.get("keep_firing_for", 0),
                                       f"{label}: 'keep_firing_for'"),
        severity=severity, labels={str(k): str(v) for k, v in labels.items()},
        message=message, enabled=enabled, description=str(raw.get("description", "")),
        source=source,
    )


def parse_rules(raws: Any, *, source: str, known_metrics: set[str] | None = None,
                max_window: float | None = None) -> tuple[list[Rule], list[str]]:
    """Rules from a list of mappings; (rules, problems) — a bad rule is left out."""
    if isinstance(raws, Mapping):
        raws = raws.get("rules", [])
    if not isinstance(raws, list):
        return [], [f"{source}: expected a list of rules (or a mapping with 'rules')"]
    rules: list[Rule] = []
    problems: list[str] = []
    seen: set[str] = set()
    for raw in raws:
        try:
            rule = parse_rule(raw, source=source, known_metrics=known_metrics,
                              max_window=max_window)
        except RuleError as exc:
            problems.append(f"{source}: {exc}")
            continue
        if rule.name in seen:
            problems.append(f"{source}: rule {rule.name!r} is defined twice; the last wins")
            rules = [r for r in rules if r.name != rule.name]
        seen.add(rule.name)
        rules.append(rule)
    return rules, problems


def load_rules_file(path: str | Path, *, known_metrics: set[str] | None = None,
                    max_window: float | None = None) -> tuple[list[Rule], list[str]]:
    """Rules of a ``.yaml``/``.yml`` or ``.json`` file (blocking: call it off the loop)."""
    path = Path(path).expanduser()
    source = str(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        return [], [f"{source}: cannot read the rules file: {exc.strerror or exc}"]
    try:
        if path.suffix.lower() == ".json":
            data = orjson.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or []
    except Exception as exc:
        return [], [f"{source}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                    f"{exc}"]
    return parse_rules(data, source=source, known_metrics=known_metrics,
                       max_window=max_window)


def builtin_rules(*, memory_percent: float = 90.0, memory_for: float = 30.0,
                  disk_free_percent: float = 5.0, gpu_temperature: float = 85.0,
                  gpu_temperature_for: float = 60.0, job_stall_seconds: float = 600.0,
                  ) -> list[Rule]:
    """The default rules: machine (memory, disk, GPU temperature) and training."""
    rules = [
        Rule("memory_high", "memory_percent", ">", memory_percent, for_=memory_for,
             severity="warning", source="builtin",
             message="memory {value:.1f}% used (over {threshold:g}%)",
             description="Memory in use (cgroup-aware) above the threshold"),
        Rule("disk_free_low", "storage_free_percent", "<", disk_free_percent,
             severity="critical", source="builtin",
             message="{root}: {value:.1f}% free (under {threshold:g}%)",
             description="Free space of the workspace or an asset root below the threshold"),
        Rule("gpu_temperature_high", "gpu_temperature_celsius", ">", gpu_temperature,
             for_=gpu_temperature_for, severity="warning", source="builtin",
             message="GPU {gpu} at {value:.0f} °C (over {threshold:g} °C)",
             description="GPU temperature above the threshold"),
        Rule("job_failed", "job_failed", ">", 0, severity="critical", source="builtin",
             message="job {job_name} ({job_id}) failed: {reason}",
             description="A training job failed (fires for a while after the failure)"),
        Rule("job_loss_nonfinite", "job_loss_nonfinite", ">", 0, severity="critical",
             source="builtin", message="job {job_name} ({job_id}) reported a non-finite "
             "{metric_name}", description="A job's latest loss is NaN or infinite"),
    ]
    if job_stall_seconds > 0:
        rules.append(Rule(
            "job_stalled", "job_seconds_since_metric", ">", job_stall_seconds,
            severity="warning", source="builtin",
            message="job {job_name} ({job_id}) reported no metric for {value:.0f} active "
            "seconds", description="A running job reported no metric for a while (paused "
            "time does not count)"))
    return rules
