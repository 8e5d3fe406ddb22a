"""A controllable metric source: tests set series values over HTTP to drive alert rules.

It reaches the monitoring service through ``add_metric_source``, as any source does: its
values join every sample before the history and the alert engine see them, and rules on
the metrics it declares pass the service's validation.
"""

from __future__ import annotations

import threading
from typing import Any

from notebench.server.errors import bad_request
from notebench.server.handlers import NotebenchHandler
from notebench.server.monitoring.series import SeriesKey, labels_of

#: the metrics tests may set (rules in the tests watch these names)
TEST_METRICS = frozenset({"test_value", "test_keep", "test_avg", "hook_value", "stream_value"})


class TestSource:
    """Injected series values (thread-safe), of the metrics in ``TEST_METRICS``."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._values: dict[SeriesKey, float] = {}
        self._lock = threading.Lock()

    def metrics(self) -> frozenset[str]:
        return TEST_METRICS

    def set(self, name: str, value: float | None, labels: dict[str, Any] | None = None) -> None:
        key = (name, labels_of(labels))
        with self._lock:
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = float(value)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def values(self) -> dict[SeriesKey, float]:
        with self._lock:
            return dict(self._values)


class TestSourceHook(NotebenchHandler):
    """``POST _test/monitoring/values``: ``{"name", "value" (null removes), "labels"}`` or
    ``{"clear": true}``; ``GET`` lists the injected values."""

    __test__ = False
    auth_area = "testing"

    def initialize(self, source: TestSource) -> None:
        self.source = source

    async def get(self) -> None:
        self.write_json({"values": [{"name": k[0], "labels": dict(k[1]), "value": v}
                                    for k, v in self.source.values().items()]})

    async def post(self) -> None:
        body = self.json_body()
        if body.get("clear"):
            self.source.clear()
        else:
            name = body.get("name")
            value = body.get("value")
            if not isinstance(name, str) or not name:
                raise bad_request("name a metric")
            if name not in TEST_METRICS:
                raise bad_request(f"{name!r} is not a metric of the test source: "
                                  f"{sorted(TEST_METRICS)}")
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise bad_request("value must be a number or null")
            labels = body.get("labels") or {}
            if not isinstance(labels, dict):
                raise bad_request("labels must be an object")
            self.source.set(name, value, labels)
        await self.get()
