"""JupyterLab opens the tour notebook, runs it, and every panel renders in the notebook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.chromium import screenshot
from tests.integration.widgets.tiny import start_server, stop_active_jobs, wait_until
from tests.server_process import ServerProcess

PANELS = ("hardwarepanel", "quickstart", "activejobs", "monitoringdashboard", "assetspanel",
          "compareruns", "dashboard")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # the server runs every enabled extension, JupyterLab's included
    proc = start_server(tmp_path_factory.mktemp("tour") / "root",
                        "--LabApp.expose_app_in_browser=True")
    yield proc
    stop_active_jobs(proc)
    proc.stop()


def test_jupyterlab_runs_the_tour_and_the_panels_render(page, lab):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{lab.url}lab/tree/notebench/notebooks/tour.ipynb?token={lab.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell"
                           " && document.querySelector('.jp-Notebook .jp-Cell')",
                           timeout=90_000)
    page.wait_for_function("""() => {
        const panel = window.jupyterapp.shell.currentWidget;
        const kernel = panel && panel.sessionContext && panel.sessionContext.session
            && panel.sessionContext.session.kernel;
        return kernel && kernel.status === 'idle'; }""", timeout=90_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    for panel in PANELS:
        page.wait_for_selector(f".nb-panel-{panel}", state="attached", timeout=90_000)
    page.wait_for_selector(".nb-panel-activejobs .nb-conn-live, .nb-conn-live",
                           state="attached", timeout=30_000)

    # the tour started the tabular template (one epoch)
    def started() -> list:
        _status, listed = lab.request("GET", "lifecycle/jobs?limit=10")
        return [j for j in listed["jobs"] if (j.get("template") or "") == "train_tabular"]

    job = wait_until(started, 30)[0]
    assert job["parameters"].get("epochs") == 1
    page.locator(f".nb-job-{job['id']}").first.wait_for(state="attached", timeout=30_000)
    page.locator(".nb-panel-hardwarepanel").first.scroll_into_view_if_needed()
    screenshot(page, "tour-hardware-quickstart")
    page.locator(".nb-panel-activejobs").first.scroll_into_view_if_needed()
    screenshot(page, "tour-active-jobs")
