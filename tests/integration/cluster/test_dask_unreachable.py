"""A Dask executor whose scheduler cannot be reached: a clear error, never a hang."""

from __future__ import annotations

import socket
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(180)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dask_config() -> dict[str, Any]:
    return {"scheduler_address": f"tcp://127.0.0.1:{_unused_port()}", "connect_timeout": 2.0}


@pytest.fixture
def dask_cluster() -> None:
    """No cluster: nothing listens at the configured address."""
    return None


async def test_info_health_and_the_job_say_why(api, jobs_api, write_notebook):
    info = await api("GET", "info")
    assert any("Dask scheduler" in p for p in info.body["problems"]), info.body
    health = await api("GET", "monitoring/health", validate=False)
    jobs = health.body["components"]["jobs"]
    assert jobs["ok"] is False and "Dask scheduler" in jobs["detail"], jobs
    path = write_notebook("never", ["print(1)"], "x: int = 1")
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"], timeout=60)
    assert done["state"] == "failed"
    assert "Dask scheduler" in (done["reason"] or ""), done["reason"]
