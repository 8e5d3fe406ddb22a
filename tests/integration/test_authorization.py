"""Authorization with asynchronous authorizers, and streams authorized topic by topic."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from tests.authorizers import AsyncAreaReader, AsyncNoExecuteAuthorizer, AsyncReadOnlyAuthorizer
from tests.integration.test_auth import methods_of, raw_fetch, registered_routes
from tests.sse_client import open_sse

# values tried, in order, for each group of a route pattern (the first that matches fills it)
SAMPLES = ("0123456789abcdef", "0123456789abcdef0123456789abcdef", "j-0123456789ab",
           "s-0123456789ab", "x1")
JOB_ID = "j-0123456789ab"


def matching_path(pattern: str) -> str:
    """A request path the route pattern matches (each group filled with a fitting sample)."""

    def fill(group: re.Match[str]) -> str:
        inner = group.group(1)
        return next(s for s in SAMPLES if re.fullmatch(inner, s))

    path = re.sub(r"\(([^)]*)\)", fill, pattern.rstrip("$")).replace("\\", "")
    assert re.fullmatch(pattern, path), (pattern, path)
    return path


def server_config(authorizer: type, **authorizer_config: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "ServerApp": {"jpserver_extensions": {"notebench.server": True,
                                              "tests.server_hooks": True},
                      "authorizer_class": authorizer},
        "NotebenchApp": {"benchmark_quick": True},
    }
    if authorizer_config:
        config[authorizer.__name__] = authorizer_config
    return config


def committed(conn: Any) -> None:
    """A no-op write: once it commits, every record appended before it has committed."""


def error_of(response: Any) -> dict[str, Any]:
    return json.loads(response.body)["error"]


# -- asynchronous authorizers ---------------------------------------------------------------


@pytest.mark.parametrize("jp_server_config", [server_config(AsyncReadOnlyAuthorizer)])
async def test_an_async_read_only_authorizer_refuses_every_write(
        jp_serverapp, jp_http_port, jp_auth_header, http_server_client):
    checked = 0
    for pattern, handler in registered_routes(jp_serverapp):
        for method in methods_of(handler):
            if method == "get":
                continue
            response = await raw_fetch(jp_http_port, matching_path(pattern), method.upper(),
                                       jp_auth_header)
            assert response.code == 403, f"{method.upper()} {pattern} -> {response.code}"
            assert error_of(response)["code"] == "forbidden"
            checked += 1
    assert checked >= 25
    # reads are still answered
    info = await raw_fetch(jp_http_port, matching_path(
        next(p for p, _ in registered_routes(jp_serverapp) if p.endswith("/info$"))),
        "GET", jp_auth_header)
    assert info.code == 200


@pytest.mark.parametrize("jp_server_config", [server_config(AsyncNoExecuteAuthorizer)])
async def test_an_async_authorizer_without_execute_refuses_every_way_to_run_code(
        api, jp_serverapp, jp_http_port, jp_auth_header, http_server_client):
    running = [(pattern, method) for pattern, handler in registered_routes(jp_serverapp)
               for method in sorted(getattr(handler, "execute_methods", ()))]
    assert {p.rsplit("/api/", 1)[1] for p, _ in running} >= {
        "hardware/benchmark$", "lifecycle/jobs$", "lifecycle/sweeps$"}
    for pattern, method in running:
        response = await raw_fetch(jp_http_port, matching_path(pattern), method,
                                   jp_auth_header)
        assert response.code == 403, f"{method} {pattern} -> {response.code}"
        assert "execute" in error_of(response)["message"]
    # restarting a job runs its notebook again; the refusal comes before the job is looked up
    restart = await api("POST", f"lifecycle/jobs/{JOB_ID}/control", {"action": "restart"})
    assert restart.status == 403
    assert "execute" in restart.body["error"]["message"]
    pause = await api("POST", f"lifecycle/jobs/{JOB_ID}/control", {"action": "pause"})
    assert pause.status == 404
    # the same user may write where nothing runs
    published = await api("POST", "_test/publish", {"topic": "logs"}, validate=False)
    assert published.status == 200


# -- streams: each topic needs read on its area ----------------------------------------------


@pytest.fixture
def open_stream(jp_http_port, jp_base_url, jp_auth_header, http_server_client):
    """``await open_stream("stream?topics=hardware")``: an open SSE connection (a refusal
    too: its status, then its body from ``refusal``)."""
    opened = []

    async def connect(path: str) -> Any:
        conn = await open_sse(jp_http_port, f"{jp_base_url}notebench/api/{path}",
                              headers=dict(jp_auth_header))
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


async def refusal(open_stream: Any, path: str) -> dict[str, Any]:
    """The JSON error of a stream request that must be refused with 403."""
    conn = await open_stream(path)
    assert conn.status == 403, f"{path} -> {conn.status}"
    body = await conn.reader.readexactly(int(conn.headers["content-length"]))
    error = json.loads(body)["error"]
    assert error["code"] == "forbidden"
    return error


@pytest.mark.parametrize("jp_server_config",
                         [server_config(AsyncAreaReader, areas=["core"])])
async def test_a_core_reader_streams_no_area_it_cannot_read(api, open_stream):
    for topic, area in (("jobs", "jobs"), (f"job:{JOB_ID}", "jobs"), ("logs", "monitoring"),
                        ("alerts", "monitoring"), ("monitoring", "monitoring"),
                        ("hardware", "hardware"), ("assets", "assets")):
        error = await refusal(open_stream, f"stream?topics={topic}")
        assert topic in error["message"]
        assert f"notebench:{area}" in error["message"]
    # the JSON refusal as the API documents it
    refused = await api("GET", "stream", params={"topics": "jobs"})
    assert refused.status == 403
    assert (await api("GET", "info")).status == 200


@pytest.mark.parametrize("jp_server_config",
                         [server_config(AsyncAreaReader, areas=["core", "hardware", "assets"])])
async def test_topics_of_readable_areas_still_stream(open_stream):
    conn = await open_stream("stream?topics=hardware,assets")
    assert conn.status == 200
    assert conn.headers["content-type"].startswith("text/event-stream")
    # one readable topic does not open the others
    error = await refusal(open_stream, "stream?topics=hardware,jobs")
    assert "notebench:jobs" in error["message"]


@pytest.mark.parametrize("jp_server_config",
                         [server_config(AsyncAreaReader, areas=["core", "monitoring"])])
async def test_job_output_needs_read_on_jobs_in_streams_and_listings(api, open_stream,
                                                                    services):
    services.logs.append(logging.INFO, "papermill", "secret output line", job_id=JOB_ID)
    services.logs.append(logging.INFO, "notebench.test", "server record")
    await services.store.write(committed)

    # the log topic carries job output: jobs' area too, on either stream route
    for path in ("stream?topics=logs", "monitoring/stream?topics=logs"):
        error = await refusal(open_stream, path)
        assert "notebench:jobs" in error["message"]
    conn = await open_stream("stream?topics=alerts,monitoring")
    assert conn.status == 200
    # the monitoring stream's default: what the reader may read
    before = set(services.bus.subscribers())
    conn = await open_stream("monitoring/stream")
    assert conn.status == 200
    (opened,) = set(services.bus.subscribers()) - before
    assert opened.topics == {"monitoring", "alerts"}

    # one job's records: refused; the whole listing: without any job's records
    by_job = await api("GET", "monitoring/logs", params={"job": JOB_ID})
    assert by_job.status == 403
    assert "notebench:jobs" in by_job.body["error"]["message"]
    listing = await api("GET", "monitoring/logs", params={"limit": "10000"})
    assert listing.status == 200
    messages = [r["message"] for r in listing.body["records"]]
    assert "server record" in messages
    assert "secret output line" not in messages
    assert all(r["job_id"] is None for r in listing.body["records"])
    assert listing.body["query"]["without_jobs"] is True


@pytest.mark.parametrize("jp_server_config",
                         [server_config(AsyncAreaReader, areas=["core", "monitoring", "jobs"])])
async def test_a_reader_of_jobs_gets_job_output(api, services, open_stream):
    services.logs.append(logging.INFO, "papermill", "visible output line", job_id=JOB_ID)
    await services.store.write(committed)
    by_job = await api("GET", "monitoring/logs", params={"job": JOB_ID})
    assert by_job.status == 200
    assert [r["message"] for r in by_job.body["records"]] == ["visible output line"]
    listing = await api("GET", "monitoring/logs")
    assert "visible output line" in [r["message"] for r in listing.body["records"]]
    assert "without_jobs" not in listing.body["query"]
    conn = await open_stream("stream?topics=logs,jobs,job:" + JOB_ID)
    assert conn.status == 200
    before = set(services.bus.subscribers())
    conn = await open_stream("monitoring/stream")
    assert conn.status == 200
    (opened,) = set(services.bus.subscribers()) - before
    assert opened.topics == {"monitoring", "alerts", "logs"}
