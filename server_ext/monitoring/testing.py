"""A controllable source of metric values for tests (served only with ``test_hooks``).

Values set here are merged into every sample's series before the history and the alert
engine see them, so alert tests drive rules without loading the machine.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import bad_request
from ..handlers import NotebenchHandler
from .series import SeriesKey, labels_of


class TestSource:
    """Injected series values (thread-safe)."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._values: dict[SeriesKey, float] = {}
        self._lock = threading.Lock()

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

    auth_area = "testing"

    async def get(self) -> None:
        source = self.services.monitoring.test_source
        self.write_json({"values": [{"name": k[0], "labels": dict(k[1]), "value": v}
                                    for k, v in source.values().items()]})

    async def post(self) -> None:
        body = self.json_body()
        source = self.services.monitoring.test_source
        if body.get("clear"):
            source.clear()
        else:
            name = body.get("name")
            value = body.get("value")
            if not isinstance(name, str) or not name:
                raise bad_request("name a metric")
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise bad_request("value must be a number or null")
            labels = body.get("labels") or {}
            if not isinstance(labels, dict):
                raise bad_request("labels must be an object")
            source.set(name, value, labels)
        await self.get()


def test_routes() -> list[tuple[str, type]]:
    return [(r"_test/monitoring/values", TestSourceHook)]
