"""Fixtures of the job tests: a server with a jobs configuration, tiny notebooks, waiting.

Control-flow tests run tiny notebooks that never import torch; the real templates run
only where the templates themselves are under test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from tests.waiting import wait_for as _wait_for

TERMINAL = ("succeeded", "failed", "stopped", "cancelled")


@pytest.fixture(autouse=True)
def _no_job_outlives_its_test(request: pytest.FixtureRequest):
    """Jobs outlive their server by design; a failed test must not leave them running."""
    uses_server = {"services", "jobs_api", "api"} & set(request.fixturenames)
    services = request.getfixturevalue("services") if uses_server else None
    yield
    jobs = services.jobs if services is not None else None
    if jobs is None:
        return
    for job_id in jobs.active_job_ids():
        if job_id.startswith("j-"):
            jobs.executor.kill(job_id)


@pytest.fixture
def jobs_config() -> dict[str, Any]:
    """``c.NotebenchJobService`` of the test server (tests may override this fixture)."""
    return {"cpu_slots": 2, "stop_grace_seconds": 5.0, "kill_grace_seconds": 2.0,
            "tick_seconds": 0.2, "stall_minutes": 0.0}


@pytest.fixture
def jp_server_config(notebench_config: dict[str, Any], jobs_config: dict[str, Any]
                     ) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"notebench.server": True}},
        "NotebenchApp": notebench_config,
        "NotebenchJobService": jobs_config,
    }


def notebook(cells: list[str], parameters: str | None = None, *,
             kernel: str = "python3") -> nbformat.NotebookNode:
    """A notebook of code cells, the first one tagged ``parameters`` when given."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "language": "python",
                                 "display_name": "Python 3"}
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


@pytest.fixture
def write_notebook(jp_root_dir: Path):
    """``write_notebook("name", cells, parameters)`` -> its path relative to the root."""

    def write(name: str, cells: list[str], parameters: str | None = None, **kw: Any) -> str:
        folder = jp_root_dir / "nbs"
        folder.mkdir(exist_ok=True)
        nbformat.write(notebook(cells, parameters, **kw), folder / f"{name}.ipynb")
        return f"nbs/{name}.ipynb"

    return write


async def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1) -> Any:
    """``tests.waiting.wait_for`` with the longer defaults jobs need."""
    return await _wait_for(predicate, timeout, interval)


@pytest.fixture
def jobs_api(api):
    """Small helpers over ``api`` for jobs."""

    class Jobs:
        async def submit(self, notebook: str | None = None, *, expect: int = 201,
                         **body: Any) -> dict[str, Any]:
            if notebook is not None:
                body["notebook"] = notebook
            response = await api("POST", "lifecycle/jobs", body)
            assert response.status == expect, response.body
            return response.body

        async def get(self, job_id: str) -> dict[str, Any]:
            response = await api("GET", f"lifecycle/jobs/{job_id}")
            assert response.status == 200, response.body
            return response.body

        async def control(self, job_id: str, action: str, *, expect: int = 200,
                          **body: Any) -> dict[str, Any]:
            response = await api("POST", f"lifecycle/jobs/{job_id}/control",
                                 {"action": action, **body})
            assert response.status == expect, response.body
            return response.body

        async def wait(self, job_id: str, *states: str, timeout: float = 90.0
                       ) -> dict[str, Any]:
            wanted = states or TERMINAL

            async def reached() -> dict[str, Any] | None:
                job = await self.get(job_id)
                if job["state"] in wanted:
                    return job
                if job["state"] in TERMINAL:
                    raise AssertionError(f"job ended {job['state']} ({job['reason']}), "
                                         f"waiting for {wanted}: {job.get('error')}")
                return None

            return await wait_for(reached, timeout=timeout, interval=0.2)

        async def metrics(self, job_id: str, **params: Any) -> dict[str, Any]:
            response = await api("GET", f"lifecycle/jobs/{job_id}/metrics",
                                 params={k: str(v) for k, v in params.items()})
            assert response.status == 200, response.body
            return response.body

        async def logs(self, job_id: str, **params: Any) -> list[dict[str, Any]]:
            response = await api("GET", f"lifecycle/jobs/{job_id}/logs",
                                 params={k: str(v) for k, v in params.items()})
            assert response.status == 200, response.body
            return response.body["records"]

    return Jobs()


@contextlib.contextmanager
def bus_events(bus: Any, topic: str, kind: str) -> Iterator[list[Any]]:
    """The events of one kind published on ``topic`` while the block runs (the bus
    delivers after its publisher returned: wait for them)."""
    seen: list[Any] = []

    class Listener:
        internal = True
        topics = frozenset({topic})

        def push(self, events: list[Any]) -> None:
            seen.extend(e for e in events if e.type == kind)

        def push_heartbeat(self) -> None:
            pass

    listener = Listener()
    bus.subscribe(listener)
    try:
        yield seen
    finally:
        bus.unsubscribe(listener)


def recorded_pids(job: dict[str, Any]) -> list[int]:
    return [p["pid"] for p in (job.get("processes") or {}).values() if p.get("pid")]


def gone(pid: int) -> bool:
    """Whether a process no longer exists (a zombie waiting for its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
