"""Tiny training notebooks (no torch) and a server for the dashboard tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat

from tests.server_process import ServerProcess
from tests.waiting import wait_until  # noqa: F401 (the panels tests wait with it)

TRAIN = """
import time
import notebench
for step in range(steps):
    notebench.report(step=step, total_steps=steps, epoch=step // 2, loss=1.0 / (step + 1),
                     accuracy=step / steps)
    time.sleep(delay)
    if notebench.should_stop():
        break
print("trained", step + 1, "steps")
"""
PARAMETERS = "steps: int = 6\ndelay: float = 0.2\nlr: float = 0.1"
JOB_SETTINGS = ["--NotebenchJobService.tick_seconds=0.2", "--NotebenchJobService.cpu_slots=6",
                "--NotebenchJobService.stop_grace_seconds=5",
                "--NotebenchJobService.kill_grace_seconds=2"]


def write_notebook(path: Path, cells: list[str] | None = None,
                   parameters: str = PARAMETERS) -> Path:
    """A notebook whose first cell is tagged ``parameters``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("A tiny training loop (no torch)."), cell]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells or [TRAIN]]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def start_server(root: Path, *extra: str) -> ServerProcess:
    """A server on ``root`` with the tiny template in its workspace and ``nbs/tiny.ipynb``."""
    root.mkdir(parents=True, exist_ok=True)
    write_notebook(root / "nbs" / "tiny.ipynb")
    write_notebook(root / "notebench" / "notebooks" / "tiny_train.ipynb")
    return ServerProcess(root, extra=[*JOB_SETTINGS, *extra]).start()


@contextlib.contextmanager
def serving(root: Path, *extra: str) -> Iterator[ServerProcess]:
    """``start_server`` for the length of the block; what its jobs left running is stopped
    (jobs outlive their server by design), then the server."""
    server = start_server(root, *extra)
    try:
        yield server
    finally:
        stop_active_jobs(server)
        server.stop()


def submit(server: ServerProcess, **parameters: Any) -> dict[str, Any]:
    status, job = server.request("POST", "lifecycle/jobs", {"notebook": "nbs/tiny.ipynb",
                                                            "parameters": parameters})
    assert status == 201, job
    return job


def job_state(server: ServerProcess, job_id: str) -> str:
    status, job = server.request("GET", f"lifecycle/jobs/{job_id}")
    assert status == 200, job
    return job["state"]


def stop_active_jobs(server: ServerProcess) -> None:
    """Stop what a test left running (jobs outlive their server by design)."""
    status, page = server.request("GET", "lifecycle/jobs?state=queued,running,paused")
    for job in page.get("jobs", []) if status == 200 else []:
        action = "cancel" if job["state"] == "queued" else "stop"
        server.request("POST", f"lifecycle/jobs/{job['id']}/control", {"action": action})
