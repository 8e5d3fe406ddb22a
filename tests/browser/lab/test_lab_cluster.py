"""The Lab extension on a Dask cluster: the System panel's Cluster section and where a
remote job runs, in Debian's Chromium against a real ``jupyter lab`` whose jobs run on a
real scheduler with two worker processes (``CPU=2``; ``GPU=1`` with a fake device, as the
cluster tests start them).

The job holds until the test creates its release file, so each step is awaited on page
state rather than raced against a timer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import screenshot
from tests.browser.lab.conftest import (
    TERMINAL,
    job_state,
    open_lab,
    our_errors,
    show_training,
    wait_until,
    write_job_notebook,
)
from tests.browser.lab.labserver import LabServer, installed_labextension
from tests.dask_cluster import (
    CPU_WORKER,
    FAKE_GPU,
    GPU_WORKER,
    DaskCluster,
    start_test_cluster,
)

pytestmark = pytest.mark.timeout(600)

# reports a step every 0.2 s until the file `release` exists
HOLD_SOURCE = """\
import os
import time
import notebench

step = 0
while not os.path.exists(release):
    notebench.report(step=step, loss=1.0 / (step + 1))
    step += 1
    time.sleep(0.2)
"""

SECTION = "#notebench-system .nb-cluster"
WORKER_ROW = SECTION + ' .nb-cluster-worker[data-address="{}"]'
NONE = "\N{EN DASH}"  # an empty cell


@pytest.fixture(scope="module")
def cluster_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A Lab server whose jobs run on a scheduler with a CPU and a GPU worker."""
    installed_labextension()
    cluster: DaskCluster = start_test_cluster(tmp_path_factory.mktemp("dask"))
    try:
        base = tmp_path_factory.mktemp("cluster-lab")
        root = base / "root"
        root.mkdir()
        write_job_notebook(root / "nbs" / "hold.ipynb", 'release: str = ""', HOLD_SOURCE)
        server = LabServer(root, config_dir=base / "config", extra=[
            "--NotebenchJobService.executor_class="
            "notebench.server.jobs.dask_executor.DaskExecutor",
            f"--NotebenchDaskCluster.scheduler_address={cluster.address}",
            "--NotebenchDaskCluster.heartbeat_seconds=0.5",
            "--NotebenchDaskCluster.grace_seconds=30",
            "--NotebenchDaskCluster.lost_after_seconds=10",
            "--NotebenchJobService.tick_seconds=0.2",
            "--NotebenchJobService.stop_grace_seconds=10",
            "--NotebenchJobService.kill_grace_seconds=3",
        ]).start()
        try:
            yield server
        finally:
            status, answer = server.request("GET", "lifecycle/jobs?limit=100")
            if status == 200:
                for job in answer["jobs"]:
                    if job["state"] in ("running", "paused", "queued"):
                        server.request("POST", f"lifecycle/jobs/{job['id']}/control",
                                       {"action": "cancel" if job["state"] == "queued"
                                        else "stop"})
            server.stop()
    finally:
        cluster.stop()


def workers_by_name(lab: LabServer) -> dict[str, dict[str, Any]]:
    status, cluster = lab.request("GET", "lifecycle/cluster")
    assert status == 200, cluster
    return {str(w["name"]): w for w in cluster["workers"]}


def cell(page: Any, address: str, name: str) -> str:
    return page.inner_text(f"{WORKER_ROW.format(address)} .nb-cluster-{name}")


def cells(page: Any, address: str) -> list[str]:
    return [c.strip() for c in page.locator(f"{WORKER_ROW.format(address)} td").all_inner_texts()]


def submit_hold(lab: LabServer, release: Path) -> dict[str, Any]:
    """A job that needs the GPU worker and runs until ``release`` exists."""
    status, job = lab.request("POST", "lifecycle/jobs", {
        "notebook": "nbs/hold.ipynb", "parameters": {"release": str(release)},
        "resources": {"gpus": 1}})
    assert status == 201, job
    return job


def test_cluster_section_and_job_view_follow_remote_jobs(
        page, console, cluster_lab: LabServer, tmp_path: Path) -> None:
    lab = cluster_lab
    workers = workers_by_name(lab)
    gpu, cpu = workers[GPU_WORKER]["address"], workers[CPU_WORKER]["address"]
    open_lab(page, lab)
    page.evaluate("window.jupyterapp.commands.execute('notebench:open-system')")
    page.wait_for_selector(SECTION, state="visible", timeout=30_000)
    # both workers, by name, with their resources and their use (one thread, no task)
    assert "dask" in page.inner_text(f"{SECTION} .nb-cluster-executor")
    assert page.locator(f"{SECTION} .nb-cluster-worker").count() == 2
    assert cells(page, gpu)[0].startswith(GPU_WORKER)
    assert cells(page, cpu)[0].startswith(CPU_WORKER)
    assert cell(page, gpu, "resources") == "GPU 1"
    assert cell(page, cpu, "resources") == "CPU 2"
    for address in (gpu, cpu):
        _, threads, memory, _, jobs, tasks = cells(page, address)
        assert (threads, jobs, tasks) == ("1", NONE, "0"), cells(page, address)
        assert memory and memory != NONE

    # the first GPU job takes the one GPU; the cluster section shows it there
    first = submit_hold(lab, tmp_path / "first")
    running = page.locator(f"{WORKER_ROW.format(gpu)} .nb-cluster-jobs span")
    running.wait_for(timeout=60_000)
    assert running.get_attribute("title") == first["id"]
    assert running.inner_text() == (first["name"] or first["id"])
    assert cells(page, gpu)[5] == "1"
    assert cells(page, cpu)[4:] == [NONE, "0"]
    screenshot(page, "lab-system-cluster")

    # a second one waits for it; its view, opened before it has a worker, says where it
    # runs once it got one
    second = submit_hold(lab, tmp_path / "second")
    page.evaluate("id => window.jupyterapp.commands.execute('notebench:open-job', {id})",
                  second["id"])
    view = f"#notebench-job-{second['id']}"
    page.wait_for_selector(f"{view} .nb-job-state", timeout=30_000)
    runs_on = page.locator(f"{view} .nb-runs-on")
    assert runs_on.count() == 0
    assert job_state(lab, second["id"])["state"] == "queued"
    (tmp_path / "first").touch()
    wait_until(lambda: job_state(lab, first["id"])["state"] in TERMINAL, 120, "first ends")
    assert job_state(lab, first["id"])["state"] == "succeeded"
    runs_on.wait_for(timeout=120_000)
    record = job_state(lab, second["id"])
    assert record["state"] == "running", record
    runner = record["processes"]["runner"]
    assert runner["worker"] == gpu, runner
    assert runner["gpu_uuids"] == [FAKE_GPU], runner
    assert runs_on.inner_text() == f"runs on {runner['host']} · GPUs: {FAKE_GPU}"
    assert runs_on.get_attribute("title") == gpu
    # and so does its row in the Training panel
    show_training(page)
    row_runs_on = page.locator(f'.nb-job[data-job-id="{second["id"]}"] .nb-runs-on')
    row_runs_on.wait_for(timeout=30_000)
    assert row_runs_on.inner_text() == runs_on.inner_text()

    # back in the System panel: the second job on the GPU worker; when it ends, free again
    page.evaluate("window.jupyterapp.shell.activateById('notebench-system-panel')")
    wait_until(lambda: running.get_attribute("title") == second["id"], 30,
               "the second job on the GPU worker")
    (tmp_path / "second").touch()
    wait_until(lambda: job_state(lab, second["id"])["state"] in TERMINAL, 120, "second ends")
    assert job_state(lab, second["id"])["state"] == "succeeded"
    wait_until(lambda: cells(page, gpu)[4:] == [NONE, "0"], 30, "GPU worker free again")
    assert page.inner_text(f"{SECTION} .nb-cluster-queued").endswith("0")
    assert not our_errors(console)
