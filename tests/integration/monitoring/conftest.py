"""Fixtures of the monitoring tests: a server with a fast sampler, the test source of metric
values, streams over real sockets, and a check of documents against the OpenAPI schemas."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests import openapi_check
from tests.sse_client import open_sse
from tests.waiting import wait_for

INTERVAL = 0.25


def check_schema(name: str, value: Any) -> None:
    """Validate ``value`` against ``#/components/schemas/<name>`` of the served document."""
    registry = Registry().with_resource(
        "urn:doc", Resource.from_contents(openapi_check.document(),
                                          default_specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{name}"},
                                     registry=registry)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(value)]
    assert not errors, f"{name}: {errors[:5]}"


@pytest.fixture
def monitoring_config() -> dict[str, Any]:
    """``c.NotebenchMonitoringService`` of the test server (tests override this fixture)."""
    return {"interval": INTERVAL, "pss_interval": 1.0, "history_bucket_seconds": 1.0}


@pytest.fixture
def jobs_config() -> dict[str, Any]:
    return {"cpu_slots": 3, "stop_grace_seconds": 5.0, "kill_grace_seconds": 2.0,
            "tick_seconds": 0.2, "stall_minutes": 0.0}


@pytest.fixture
def jp_server_config(notebench_config: dict[str, Any], monitoring_config: dict[str, Any],
                     jobs_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"notebench.server": True,
                                              "tests.server_hooks": True}},
        "NotebenchApp": notebench_config,
        "NotebenchMonitoringService": monitoring_config,
        "NotebenchJobService": jobs_config,
    }


@pytest.fixture
def monitoring(services: Any) -> Any:
    """The running NotebenchMonitoringService (started, first sample taken)."""
    return services.monitoring




@pytest.fixture
def source(api):
    """``await source("test_value", 10, unit="a")``: set a value of the test source."""

    async def set_value(name: str, value: float | None, **labels: str) -> None:
        response = await api("POST", "_test/monitoring/values",
                             {"name": name, "value": value, "labels": labels}, validate=False)
        assert response.status == 200, response.body

    return set_value


@pytest.fixture
def alerts(api):
    """``await alerts()``: GET monitoring/alerts (validated); ``alerts.find(rule, state)``."""

    class Alerts:
        async def __call__(self, **params: Any) -> dict[str, Any]:
            response = await api("GET", "monitoring/alerts",
                                 params={k: str(v) for k, v in params.items()})
            assert response.status == 200, response.body
            return response.body

        async def find(self, rule: str, state: str | None = None, *,
                       episode: int | None = None) -> dict[str, Any] | None:
            """The newest alert of ``rule`` in ``state`` (of that ``episode``)."""
            body = await self()
            for alert in body["active"][::-1] + body["recent"]:
                if (alert["rule"] == rule and (state is None or alert["state"] == state)
                        and (episode is None or alert["episode"] == episode)):
                    return alert
            return None

        async def wait(self, rule: str, state: str, timeout: float = 20.0, *,
                       episode: int | None = None) -> dict[str, Any]:
            return await wait_for(lambda: self.find(rule, state, episode=episode), timeout)

    return Alerts()


@pytest.fixture
def stream(jp_http_port, jp_base_url, jp_auth_header, http_server_client):
    """``await stream("alerts,logs", last_event_id=..)``: an open monitoring stream."""
    opened = []

    async def open_stream(topics: str = "", *, last_event_id: int | None = None):
        path = f"{jp_base_url}notebench/api/monitoring/stream"
        if topics:
            path += f"?topics={topics}"
        headers = dict(jp_auth_header)
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        conn = await open_sse(jp_http_port, path, headers=headers)
        opened.append(conn)
        return conn

    yield open_stream
    for conn in opened:
        conn.close()


async def read_until(conn: Any, predicate, timeout: float = 20.0) -> list[Any]:
    """Read frames until ``predicate(frames)`` holds; the frames."""
    deadline = time.monotonic() + timeout
    while not predicate(conn.frames):
        if conn.closed or time.monotonic() > deadline:
            raise AssertionError(f"stream: condition not reached; got "
                                 f"{[(f.event, f.id) for f in conn.frames][-10:]}")
        await conn.read_for(0.05)
    return conn.frames
