"""Fixtures: a real jupyter_server with notebench, a JSON client that checks the API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from notebench.server.clock import ManualClock
from tests.openapi_check import validate_response

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def notebench_config() -> dict[str, Any]:
    """NotebenchApp settings of the test server (tests may override this fixture)."""
    return {"benchmark_quick": True, "benchmark_disk_mb": 16,
            "sse_heartbeat_interval": 1.0}


@pytest.fixture
def jp_server_config(notebench_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"notebench.server": True,
                                              "tests.server_hooks": True}},
        "NotebenchApp": notebench_config,
    }


@pytest.fixture
def jp_serverapp(jp_serverapp: Any, jp_asyncio_loop: Any) -> Any:
    """The test server, with extension start hooks run as a real server runs them."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    return jp_serverapp


@pytest.fixture
def services(jp_serverapp: Any) -> Any:
    """The running extension's services (for assertions on its state)."""
    return jp_serverapp.web_app.settings["notebench_services"]


@pytest.fixture
def job_clock(services: Any) -> ManualClock:
    """A manual clock for the active clocks (timeouts, stalls, paused time) of the jobs
    started from now on: ``job_clock.advance(7)``, then ``await job_ticks(services.jobs)``."""
    clock = ManualClock()
    services.jobs.clock = clock
    return clock


class ApiResponse:
    def __init__(self, status: int, body: Any, headers: Any) -> None:
        self.status = status
        self.body = body
        self.headers = headers


@pytest.fixture
def api(jp_fetch: Any, jp_base_url: str) -> Any:
    """``await api("GET", "hardware")``: call the API, check the response against OpenAPI."""

    async def call(method: str, path: str, body: Any = None, *, params: dict | None = None,
                   headers: dict | None = None, validate: bool = True) -> ApiResponse:
        kwargs: dict[str, Any] = {"method": method, "raise_error": False}
        if body is not None or method in ("POST", "PATCH", "PUT"):
            kwargs["body"] = body if isinstance(body, (bytes, str)) else json.dumps(body or {})
        response = await jp_fetch("notebench", "api", *path.split("/"), params=params or {},
                                  headers=headers or {}, **kwargs)
        raw = response.body
        content_type = response.headers.get("Content-Type", "")
        decoded = json.loads(raw) if raw and "json" in content_type else raw
        if validate:
            validate_response(method, response.effective_url.split("://", 1)[1].split("/", 1)[1]
                              if "://" in response.effective_url else response.effective_url,
                              response.code, decoded)
        return ApiResponse(response.code, decoded, response.headers)

    return call
