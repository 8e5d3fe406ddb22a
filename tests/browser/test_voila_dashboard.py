"""The Voila dashboards in Debian's Chromium: rendering, live jobs, controls, reconnection,
charts, upload, dark theme and right to left, and a server that goes away."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import FOREIGN_CONSOLE_NOISE, screenshot
from tests.integration.widgets.tiny import job_state, start_server, stop_active_jobs, submit
from tests.server_process import ServerProcess

# Console errors these pages show that say nothing about the dashboards: bqplot relayouts the
# figures of tabs that are off screen when the window is resized (a screenshot does) and
# reports their negative plot size. (Voila would load every JupyterLab extension of the
# environment; notebench's own is for Lab, and the shipped server config denies it to Voila.)
PAGE_NOISE = (*FOREIGN_CONSOLE_NOISE, "A negative value is not valid")
PAGE_TIMEOUT = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path_factory.mktemp("voila") / "root",
                        "--NotebenchApp.voila_actions=True")
    yield proc
    stop_active_jobs(proc)
    proc.stop()


def open_app(page: Any, server: ServerProcess, app: str = "dashboard", query: str = "") -> None:
    url = (f"{server.url}voila/render/notebench/dashboards/{app}.ipynb"
           f"?token={server.token}{query}")
    page.goto(url)
    page.wait_for_selector(".nb-conn-live", timeout=PAGE_TIMEOUT)


def no_errors(console: Any) -> None:
    assert console.errors(ignore=PAGE_NOISE) == []


def test_voila_renders_the_dashboard(page, console, server):
    open_app(page, server)
    page.wait_for_selector(".nb-jobs-table", timeout=PAGE_TIMEOUT)
    assert page.locator(".nb-dashboard-tabs button").count() == 6
    assert page.evaluate("window.__notebenchWatch") is True  # the page-side watch runs
    screenshot(page, "voila-dashboard")
    no_errors(console)


def test_a_job_started_through_the_api_appears_advances_and_finishes(page, console, server):
    open_app(page, server, "jobs")
    job = submit(server, steps=8, delay=0.4)
    row = page.locator(f".nb-job-{job['id']}")
    row.wait_for(timeout=PAGE_TIMEOUT)
    bar = row.locator(".progress-bar")
    widths: list[float] = []
    deadline = time.monotonic() + 90
    while "succeeded" not in row.locator(".nb-cell-state").inner_text():
        style = bar.get_attribute("style") or ""
        if "width" in style:
            widths.append(float(style.split("width:")[1].split("%")[0]))
        assert time.monotonic() < deadline, "the job did not finish in the page"
        time.sleep(0.1)
    assert any(0 < w < 100 for w in widths), widths  # seen part way
    assert widths == sorted(widths)  # progress only advances
    page.wait_for_function("el => el.style.width === '100%'", arg=bar.element_handle())
    assert row.locator(".nb-loss").inner_text() == "0.125"  # the last report: 1 / 8
    screenshot(page, "voila-job-finished")
    no_errors(console)


def stop_in_the_page(page: Any, row: Any) -> None:
    """Press a job row's Stop and wait until the row says the job stopped."""
    row.locator(".nb-btn-stop").click()
    page.wait_for_function(
        "el => el.innerText.includes('stopped')",
        arg=row.locator(".nb-cell-state").element_handle(), timeout=60_000)


def test_pause_and_resume_pressed_in_the_page(page, console, server):
    open_app(page, server, "jobs")
    job = submit(server, steps=2000, delay=0.05)
    row = page.locator(f".nb-job-{job['id']}")
    row.locator(".nb-btn-pause").wait_for(state="visible", timeout=PAGE_TIMEOUT)
    row.locator(".nb-btn-pause").click()
    row.locator(".nb-btn-resume").wait_for(state="visible", timeout=30_000)
    assert job_state(server, job["id"]) == "paused"
    assert "paused" in row.locator(".nb-cell-state").inner_text()
    screenshot(page, "voila-job-paused")
    row.locator(".nb-btn-resume").click()
    row.locator(".nb-btn-pause").wait_for(state="visible", timeout=30_000)
    assert job_state(server, job["id"]) == "running"
    stop_in_the_page(page, row)
    no_errors(console)


def test_reconnects_without_a_gap_when_every_stream_closes(page, console, server):
    open_app(page, server, "monitoring")
    marker = f"while away {uuid.uuid4().hex[:8]}"
    status, closed = server.request("POST", "_test/close_streams")
    assert status == 200 and closed["closed"] >= 1
    page.wait_for_selector(".nb-conn-reconnecting", timeout=15_000)
    screenshot(page, "voila-reconnecting")
    # logged while the page is away from the stream: the replay must bring all of them
    assert server.request("POST", "_test/log", {"message": marker, "count": 5})[0] == 200
    page.wait_for_selector(".nb-conn-live", timeout=30_000)
    page.wait_for_function(
        "m => (document.querySelector('.nb-logs').innerText.split(m).length - 1) === 5",
        arg=marker, timeout=15_000)
    for index in range(5):
        assert f"{marker} {index}" in page.locator(".nb-logs").inner_text()
    no_errors(console)


def line_points(page: Any) -> int:
    return page.evaluate("""() => {
        const path = document.querySelector(
            '.nb-panel-monitoringdashboard svg.svg-figure path.line');
        return path ? (path.getAttribute('d') || '').split(/[ML]/).length - 1 : 0; }""")


def test_the_monitoring_chart_gains_points(page, console, server):
    open_app(page, server, "monitoring")
    page.wait_for_selector("svg.svg-figure path.line", timeout=PAGE_TIMEOUT)
    first = line_points(page)
    deadline = time.monotonic() + 20
    while line_points(page) < first + 2:
        assert time.monotonic() < deadline, f"the chart stayed at {line_points(page)} points"
        time.sleep(0.25)
    screenshot(page, "voila-monitoring")
    no_errors(console)


def test_an_upload_through_the_page_arrives_with_its_sha256(page, console, server, tmp_path):
    open_app(page, server, "assets")
    page.get_by_role("tab", name="Datasets").click()
    content = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(20000))
    source = tmp_path / "from-browser.csv"
    source.write_bytes(content)
    with page.expect_file_chooser() as chooser:
        page.locator(".nb-upload").click()
    chooser.value.set_files(str(source))
    page.wait_for_selector("text=from-browser.csv", timeout=30_000)
    status, listed = server.request("GET", "assets/list/datasets?name=from-browser")
    assert status == 200
    assert [a["sha256"] for a in listed["items"]] == [hashlib.sha256(content).hexdigest()]
    assert hashlib.sha256(content).hexdigest() in page.locator(".nb-message").inner_text()
    screenshot(page, "voila-upload")
    no_errors(console)


def luminance(css_color: str) -> float:
    parts = [float(p) for p in css_color[css_color.index("(") + 1:-1].split(",")[:3]]
    return (0.2126 * parts[0] + 0.7152 * parts[1] + 0.0722 * parts[2]) / 255


def test_dark_theme_and_right_to_left_persian(page, console, server):
    open_app(page, server, "dashboard", "&theme=dark&direction=rtl&lang=fa")
    root = page.locator(".nb-dashboard")
    assert root.evaluate("el => getComputedStyle(el).direction") == "rtl"
    assert luminance(root.evaluate("el => getComputedStyle(el).backgroundColor")) < 0.25
    assert luminance(root.evaluate("el => getComputedStyle(el).color")) > 0.6
    assert page.locator("text=کارهای فعال").count() >= 1
    tabs = page.locator(".nb-dashboard-tabs button")
    first, last = tabs.first.bounding_box(), tabs.last.bounding_box()
    assert first["x"] > last["x"]  # the first tab stands on the right
    screenshot(page, "voila-dark-rtl")
    page.get_by_text("پایش", exact=True).click()
    chart = page.locator(".nb-panel-monitoringdashboard .bqplot").first
    chart.locator("path.line").first.wait_for(timeout=PAGE_TIMEOUT)
    # the value axis's labels are numbers (the time axis's are HH:MM:SS)
    value_ticks = chart.evaluate("""el => {
        const box = el.getBoundingClientRect();
        return Array.from(el.querySelectorAll('text'))
            .filter(t => /^\\d+(\\.\\d+)?$/.test(t.textContent.trim()))
            .map(t => (t.getBoundingClientRect().left - box.left) / box.width); }""")
    assert value_ticks and min(value_ticks) > 0.5, value_ticks  # on the right
    screenshot(page, "voila-dark-rtl-monitoring")
    no_errors(console)


OVERFLOW = """root => {
    const edge = root.getBoundingClientRect().right + 1;
    return Array.from(root.querySelectorAll('*'))
        .filter(el => el.offsetParent !== null && !el.closest('.nb-offstage')
                && el.getBoundingClientRect().right > edge)
        .map(el => el.className.toString()).slice(0, 5); }"""


def test_a_narrow_column_keeps_every_control_in_reach(page, console, server):
    page.set_viewport_size({"width": 380, "height": 900})
    open_app(page, server, "dashboard")
    job = submit(server, steps=2000, delay=0.05)
    row = page.locator(f".nb-job-{job['id']}")
    pause = row.locator(".nb-btn-pause")
    pause.wait_for(state="visible", timeout=PAGE_TIMEOUT)
    root = page.locator(".nb-dashboard")
    width = root.evaluate("el => el.getBoundingClientRect().width")
    assert width <= 380
    assert root.evaluate(OVERFLOW) == []  # nothing sticks out to the side
    tabs = page.locator(".nb-dashboard-tabs button")
    for index in range(tabs.count()):  # the tab bar wraps instead of running off
        box = tabs.nth(index).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 381
    name = row.locator(".nb-cell-name").bounding_box()
    assert name is not None and name["width"] > width * 0.6  # the name takes its own line
    screenshot(page, "voila-narrow")
    pause.click()
    row.locator(".nb-btn-resume").wait_for(state="visible", timeout=30_000)
    assert job_state(server, job["id"]) == "paused"
    stop_in_the_page(page, row)
    page.get_by_text("Monitoring", exact=True).click()
    chart = page.locator(".nb-panel-monitoringdashboard .bqplot").first
    chart.locator("path.line").first.wait_for(timeout=PAGE_TIMEOUT)
    assert root.evaluate(OVERFLOW) == []
    no_errors(console)


def test_the_page_says_when_the_server_went_away(page, console, tmp_path):
    server = start_server(Path(tmp_path) / "root")
    try:
        open_app(page, server, "jobs")
    finally:
        server.kill()
    page.wait_for_selector(".nb-root[data-nb-gone] .nb-gone", state="visible", timeout=30_000)
    assert "reload this page" in page.locator(".nb-gone").first.inner_text()
    screenshot(page, "voila-server-gone")
