"""The dashboards' bqplot charts in Debian's Chromium, on the Voila monitoring page and in the
tour notebook in JupyterLab: percent axes from 0 to 100 with ticks 0, 25, 50, 75, 100, time
labels inside the figure and apart from each other, legends outside the plot area, and on
this GPU-less machine no GPU chart but a one-line note.

Each run writes ``tests/artifacts/charts-after-*.png`` (checked non-blank) before it checks
the charts. ``NOTEBENCH_CHARTS_PHASE=before`` names them ``charts-before-*`` instead: how the
screenshots of the charts before this look were taken, with this file on the older code
(whose charts then fail the checks).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.chromium import FOREIGN_CONSOLE_NOISE, screenshot
from tests.browser.lab.labserver import quiet_lab_settings
from tests.integration.widgets.tiny import start_server, stop_active_jobs
from tests.server_process import ServerProcess

PHASE = os.environ.get("NOTEBENCH_CHARTS_PHASE", "after")
PAGE_TIMEOUT = 90_000
PERCENT_TICKS = ["0", "25", "50", "75", "100"]
# bqplot relayouts off-screen figures when the window is resized and reports negative sizes
PAGE_NOISE = (*FOREIGN_CONSOLE_NOISE, "A negative value is not valid")

# What the page drew: per figure its title, tick labels with their boxes, its plot area and
# the legend entries (bqplot's own in the svg, or the chart's HTML legend beside it).
MEASURE = """panel => {
    const box = el => { const r = el.getBoundingClientRect();
        return {l: r.left, t: r.top, r: r.right, b: r.bottom}; };
    return Array.from(panel.querySelectorAll('.bqplot.figure')).map(figure => {
        const heading = figure.querySelector('text.mainheading');
        const plot = figure.querySelector('rect.plotarea_background');
        const chart = figure.closest('.nb-chart') || figure;
        const legend = [...figure.querySelectorAll('text.legendtext'),
                        ...chart.querySelectorAll('.nb-legend-item')]
            .filter(el => el.textContent.trim())
            .map(el => ({text: el.textContent.trim(), box: box(el)}));
        return {
            title: heading ? heading.textContent.trim() : '',
            heading: heading ? box(heading) : null,
            plot: plot ? box(plot) : null,
            ticks: Array.from(figure.querySelectorAll('.tick text'))
                .filter(t => t.textContent.trim() && t.getBoundingClientRect().width > 0)
                .map(t => ({text: t.textContent.trim(), box: box(t),
                            svg: box(t.ownerSVGElement)})),
            legend };
    }); }"""


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["l"] < b["r"] and b["l"] < a["r"] and a["t"] < b["b"] and b["t"] < a["b"]


def inside(inner: dict[str, float], outer: dict[str, float], slack: float = 0.5) -> bool:
    return (inner["l"] >= outer["l"] - slack and inner["r"] <= outer["r"] + slack
            and inner["t"] >= outer["t"] - slack and inner["b"] <= outer["b"] + slack)


def check_monitoring_charts(figures: list[dict[str, Any]]) -> None:
    """The look every monitoring panel's charts must have (see the module's docstring)."""
    titles = [f["title"] for f in figures]
    assert not [t for t in titles if t.startswith("GPU")], f"a GPU chart without a GPU: {titles}"
    for figure in figures:
        title = figure["title"]
        for tick in figure["ticks"]:  # nothing cut off at the figure's edge
            assert inside(tick["box"], tick["svg"]), (title, tick)
        times = [t for t in figure["ticks"] if ":" in t["text"]]
        assert 1 <= len(times) <= 3, (title, [t["text"] for t in times])
        ordered = sorted(times, key=lambda t: t["box"]["l"])
        for left, right in itertools.pairwise(ordered):
            assert left["box"]["r"] <= right["box"]["l"], (title, left, right)  # apart
        assert figure["plot"] is not None
        assert figure["heading"]["b"] <= figure["plot"]["t"] + 0.5, title  # above the plot
        for entry in figure["legend"]:  # legends stay off the lines
            assert not overlap(entry["box"], figure["plot"]), (title, entry, figure["plot"])
        if title.endswith("%"):
            values = sorted((t["text"] for t in figure["ticks"] if ":" not in t["text"]),
                            key=float)
            assert values == PERCENT_TICKS, (title, values)
    network = [f for f in figures if f["title"].startswith("Network")]
    assert network and {e["text"] for e in network[0]["legend"]} == {"received", "sent"}


def wait_for_points(page: Any, panel: str, points: int = 5, timeout: float = 60) -> None:
    """Until the panel's first line has ``points`` points (a few samples on the time axis)."""
    script = """sel => { const path = document.querySelector(sel + ' svg.svg-figure path.line');
        return path ? (path.getAttribute('d') || '').split(/[ML]/).length - 1 : 0; }"""
    deadline = time.monotonic() + timeout
    while page.evaluate(script, panel) < points:
        assert time.monotonic() < deadline, "the chart did not fill"
        time.sleep(0.5)
    time.sleep(1.0)  # the axes' transitions settle


def gpu_note(page: Any, panel: Any) -> str:
    note = panel.locator(".nb-gpu-note")
    note.wait_for(state="visible", timeout=30_000)
    page.wait_for_function("el => el.innerText.trim().length > 0",
                           arg=note.element_handle(), timeout=30_000)
    return note.inner_text().strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # every enabled extension (JupyterLab's and Voila's) on one server; Lab's settings of
    # its own (no news prompt over the notebook in the screenshots)
    base = tmp_path_factory.mktemp("charts")
    quiet_lab_settings(base / "lab-state")
    proc = start_server(base / "root", "--LabApp.expose_app_in_browser=True",
                        f"--LabApp.user_settings_dir={base / 'lab-state' / 'user-settings'}",
                        f"--LabApp.workspaces_dir={base / 'lab-state' / 'workspaces'}")
    yield proc
    stop_active_jobs(proc)
    proc.stop()


def test_voila_monitoring_page_charts(page, console, server):
    page.goto(f"{server.url}voila/render/notebench/dashboards/monitoring.ipynb"
              f"?token={server.token}")
    page.wait_for_selector(".nb-conn-live", timeout=PAGE_TIMEOUT)
    selector = ".nb-panel-monitoringdashboard"
    page.wait_for_selector(f"{selector} svg.svg-figure path.line", timeout=PAGE_TIMEOUT)
    wait_for_points(page, selector)
    screenshot(page, f"charts-{PHASE}-voila-monitoring")
    panel = page.locator(selector).first
    check_monitoring_charts(panel.evaluate(MEASURE))
    assert "GPU" in gpu_note(page, panel)
    assert console.errors(ignore=PAGE_NOISE) == []


def test_tour_notebook_charts(page, console, server):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{server.url}lab/tree/notebench/notebooks/tour.ipynb?token={server.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell"
                           " && document.querySelector('.jp-Notebook .jp-Cell')",
                           timeout=PAGE_TIMEOUT)
    page.wait_for_function("""() => {
        const panel = window.jupyterapp.shell.currentWidget;
        const kernel = panel && panel.sessionContext && panel.sessionContext.session
            && panel.sessionContext.session.kernel;
        return kernel && kernel.status === 'idle'; }""", timeout=PAGE_TIMEOUT)
    # every cell but the one that starts a training job (the charts do not need one, and
    # the job would take this small machine's CPU while the page is measured)
    skipped = page.evaluate("""async () => {
        const panel = window.jupyterapp.shell.currentWidget;
        const cells = panel.content.widgets;
        let skipped = 0;
        for (let i = 0; i < cells.length; i++) {
            if (cells[i].model.type !== 'code'
                || cells[i].model.sharedModel.getSource().includes('.start()')) {
                skipped += cells[i].model.type === 'code' ? 1 : 0;
                continue;
            }
            panel.content.activeCellIndex = i;
            await window.jupyterapp.commands.execute('notebook:run-cell');
        }
        return skipped; }""")
    assert skipped == 1
    selector = ".nb-panel-monitoringdashboard"
    panel = page.locator(selector).first
    panel.wait_for(state="attached", timeout=PAGE_TIMEOUT)
    panel.scroll_into_view_if_needed()
    panel.locator("svg.svg-figure path.line").first.wait_for(timeout=PAGE_TIMEOUT)
    wait_for_points(page, selector)
    panel.scroll_into_view_if_needed()
    screenshot(page, f"charts-{PHASE}-tour-monitoring")
    figures = panel.evaluate(MEASURE)
    hardware = page.locator(".nb-panel-hardwarepanel").first
    hardware.scroll_into_view_if_needed()
    screenshot(page, f"charts-{PHASE}-tour-hardware")
    check_monitoring_charts(figures)
    assert "GPU" in gpu_note(page, panel)
    assert console.errors(ignore=PAGE_NOISE) == []
