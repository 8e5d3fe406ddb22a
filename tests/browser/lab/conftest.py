"""One JupyterLab server for the module, pages logged in, tiny job notebooks, helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.chromium import ConsoleLog
from tests.browser.lab.labserver import LabServer, installed_labextension
from tests.waiting import wait_until as shared_wait_until

TERMINAL = ("succeeded", "failed", "stopped", "cancelled")

# a job that reports metrics for `steps` steps; it never imports torch
STEPS_SOURCE = """\
import time
import notebench

for i in range(steps):
    notebench.report(step=i, total_steps=steps, loss=1.0 / (i + 1), accuracy=i / steps, epoch=i)
    print(f"step {i} of {steps}", flush=True)
    time.sleep(delay)
"""


def write_job_notebook(path: Path, parameters: str, source: str) -> None:
    """A two-cell job notebook: a ``parameters`` cell, then ``source``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def write_steps_notebook(path: Path) -> None:
    write_job_notebook(path, "steps: int = 6\ndelay: float = 0.4", STEPS_SOURCE)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    installed_labextension()
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    write_steps_notebook(root / "nbs" / "steps.ipynb")
    config = base / "config"
    server = LabServer(root, config_dir=config, extra=[
        "--NotebenchJobService.cpu_slots=3", "--NotebenchJobService.tick_seconds=0.2",
        "--NotebenchJobService.stop_grace_seconds=3", "--NotebenchJobService.kill_grace_seconds=2",
    ]).start()
    yield server
    # jobs outlive their server by design: stop what a failed test left running
    status, answer = server.request("GET", "lifecycle/jobs?limit=100")
    if status == 200:
        for job in answer["jobs"]:
            if job["state"] in ("running", "paused", "queued"):
                server.request("POST", f"lifecycle/jobs/{job['id']}/control",
                               {"action": "cancel" if job["state"] == "queued" else "stop"})
    server.stop()


def open_lab(page: Any, lab: LabServer, workspace: str | None = None) -> None:
    """Load Lab and wait until its layout is restored and notebench is up.

    Tabs open at the same time need a ``workspace`` each: Lab moves a second tab of an
    open workspace to a new one by navigating, which would reset the page under a test.
    """
    page.goto(lab.lab_url if workspace is None
              else f"{lab.url}lab/workspaces/{workspace}?token={lab.token}")
    page.wait_for_function("window.jupyterapp !== undefined", timeout=90_000)
    page.evaluate("window.jupyterapp.restored")
    page.wait_for_selector("#notebench-training", state="attached", timeout=30_000)


def show_training(page: Any) -> None:
    page.evaluate("window.jupyterapp.shell.activateById('notebench-training')")
    page.wait_for_selector("#notebench-training", state="visible", timeout=10_000)


def submit(lab: LabServer, **parameters: Any) -> dict[str, Any]:
    status, job = lab.request("POST", "lifecycle/jobs",
                              {"notebook": "nbs/steps.ipynb", "parameters": parameters})
    assert status == 201, job
    return job


def job_state(lab: LabServer, job_id: str) -> dict[str, Any]:
    status, job = lab.request("GET", f"lifecycle/jobs/{job_id}")
    assert status == 200, job
    return job


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    """``tests.waiting.wait_until``, the failure naming ``what`` was awaited."""
    try:
        return shared_wait_until(predicate, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {what}") from None


def our_errors(console: ConsoleLog, *, allow: tuple[str, ...] = ()) -> list[str]:
    """Console errors and uncaught exceptions, less the foreign noise and `allow`ed ones."""
    return [e for e in console.errors() if not any(a in e for a in allow)]
