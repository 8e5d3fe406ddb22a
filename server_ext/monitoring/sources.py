"""Metric sources: series another component adds to every sample besides the sampler's."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from .series import SeriesKey


class MetricSource(Protocol):
    """What ``add_metric_source`` accepts."""

    def metrics(self) -> Collection[str]:
        """The metric names it provides: alert rules on them are valid."""
        ...

    def values(self) -> Mapping[SeriesKey, float]:
        """Its current series values; read on the event loop once per sample (no blocking)."""
        ...
