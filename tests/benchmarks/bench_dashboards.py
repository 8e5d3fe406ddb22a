"""Voila dashboards: time to the jobs table, and the kernel's CPU while it follows jobs.

1. With one dashboard open, 5 tiny jobs reporting 20 points a second each, and the
   monitoring stream followed: the CPU time of the page's kernel (the ``ipykernel``
   process the server started for Voila) over ``--windows`` windows of ``--seconds``
   seconds, once with the Active jobs tab shown (monitoring followed off screen) and once
   with the Monitoring tab shown (its charts redrawn). Goal: median < 5 % of one core.
2. Open the Voila dashboard (``/voila/render/notebench/dashboards/dashboard.ipynb``) in
   Debian's Chromium, ``--opens`` times, each a new page and so a new kernel: the time from
   ``page.goto`` to the jobs table being visible (kernel start, imports, first REST read and
   the widgets' rendering included; the jobs of part 1 stopped). Voila keeps a closed page's
   kernel, so the kernels of earlier pages are shut down before each open. Goal: median < 5 s.

    python tests/benchmarks/bench_dashboards.py [--opens 5] [--windows 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.benchmarks._common import (  # noqa: E402
    api,
    fmt,
    log,
    machine_summary,
    median,
    print_table,
    running_server,
    sigterm_as_interrupt,
    wait_until,
)
from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS  # noqa: E402
from tests.integration.widgets.tiny import JOB_SETTINGS, write_notebook  # noqa: E402

GOAL_OPEN_S = 5.0
GOAL_KERNEL_CPU_PCT = 5.0
JOBS = 5
APP = "voila/render/notebench/dashboards/dashboard.ipynb"


def open_dashboard(browser: Any, url: str) -> tuple[Any, float]:
    """A new page on the dashboard; seconds until the jobs table is visible."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(".nb-jobs-table", state="visible", timeout=120_000)
    return page, time.perf_counter() - started


def voila_kernels(server: Any) -> list[psutil.Process]:
    """The kernels the server started itself (Voila's; job kernels belong to runners)."""
    proc = psutil.Process(server.proc.pid)
    return [p for p in proc.children() if "ipykernel_launcher" in " ".join(p.cmdline())]


def shut_down_kernels(server: Any) -> None:
    """Shut the server's kernels down (Voila keeps a closed page's kernel running, and the
    kernels of earlier opens would go on following the stream while the next one opens)."""
    headers = {"Authorization": f"token {server.token}"}
    request = urllib.request.Request(f"{server.url}api/kernels", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        kernels = json.loads(response.read())
    for kernel in kernels:
        request = urllib.request.Request(f"{server.url}api/kernels/{kernel['id']}",
                                         method="DELETE", headers=headers)
        with urllib.request.urlopen(request, timeout=60):
            pass


def cpu_share(process: psutil.Process, seconds: float) -> float:
    """Percent of one core that ``process`` used over the next ``seconds``."""
    before = process.cpu_times()
    wall = time.perf_counter()
    time.sleep(seconds)
    after = process.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100.0 * used / (time.perf_counter() - wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=5)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    sigterm_as_interrupt()
    from playwright.sync_api import sync_playwright

    log(machine_summary())
    with running_server(JOB_SETTINGS) as server, sync_playwright() as playwright:
        write_notebook(server.root_dir / "nbs" / "tiny.ipynb")
        url = f"{server.url}{APP}?token={server.token}"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            shares = follow_jobs(browser, server, url, args.windows, args.seconds)
            opens = []
            for index in range(args.opens):
                shut_down_kernels(server)  # those of the pages opened before
                wait_until(lambda: not voila_kernels(server), 15)
                page, seconds = open_dashboard(browser, url)
                opens.append(seconds)
                log(f"open {index + 1}: jobs table after {seconds:.2f} s")
                page.close()
            log("load avg after the opens: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
        finally:
            browser.close()
            for job in api(server, "GET", "lifecycle/jobs?state=running,paused,queued")[1][
                    "jobs"]:
                api(server, "POST", f"lifecycle/jobs/{job['id']}/control", {"action": "stop"})

    rows = [["open to jobs table visible (s)", fmt(median(opens), 2), fmt(min(opens), 2),
             fmt(max(opens), 2), f"< {GOAL_OPEN_S:g}",
             "yes" if median(opens) < GOAL_OPEN_S else "NO"]]
    for tab, values in shares.items():
        rows.append([f"kernel CPU, {JOBS} jobs + monitoring, {tab} tab (% core)",
                     fmt(median(values), 2), fmt(min(values), 2), fmt(max(values), 2),
                     f"< {GOAL_KERNEL_CPU_PCT:g}",
                     "yes" if median(values) < GOAL_KERNEL_CPU_PCT else "NO"])
    print_table(["measure", "median", "min", "max", "goal", "met"], rows,
                title=f"Voila dashboard ({args.opens} opens; {args.windows} windows of "
                      f"{args.seconds:g} s)")
    return 0


def follow_jobs(browser: Any, server: Any, url: str, windows: int,
                seconds: float) -> dict[str, list[float]]:
    page, _ = open_dashboard(browser, url)
    try:
        page.wait_for_selector(".nb-conn-live", timeout=60_000)
    except Exception:
        page.screenshot(path=str(ROOT / "tests" / "artifacts" / "bench-dashboard-failed.png"))
        raise
    kernels = voila_kernels(server)
    assert len(kernels) == 1, kernels
    kernel = kernels[0]
    page.get_by_text("Monitoring", exact=True).click()  # subscribes the monitoring panel
    page.wait_for_selector("svg.svg-figure path.line", timeout=60_000)
    page.get_by_text("Active jobs", exact=True).click()
    ids = []
    for _ in range(JOBS):
        status, job = api(server, "POST", "lifecycle/jobs", {
            "notebook": "nbs/tiny.ipynb", "parameters": {"steps": 1_000_000, "delay": 0.05}})
        assert status == 201, job
        ids.append(job["id"])
    for job_id in ids:
        page.locator(f".nb-job-{job_id} .nb-loss").wait_for(timeout=120_000)
        wait_until(lambda j=job_id: page.locator(f".nb-job-{j} .nb-loss").inner_text() != "-",
                   120)
    log(f"{JOBS} jobs running and reporting; measuring the kernel (pid {kernel.pid})")
    shares: dict[str, list[float]] = {"Active jobs": [], "Monitoring": []}
    for tab in shares:
        page.get_by_text(tab, exact=True).click()
        time.sleep(2)
        for index in range(windows):
            share = cpu_share(kernel, seconds)
            shares[tab].append(share)
            log(f"{tab} tab, window {index + 1}: kernel {share:.2f} % of a core")
    page.close()
    for job_id in ids:
        api(server, "POST", f"lifecycle/jobs/{job_id}/control", {"action": "stop"})
    wait_until(lambda: not api(server, "GET", "lifecycle/jobs?state=running,stopping")[1][
        "jobs"], 60)
    return shares


if __name__ == "__main__":
    raise SystemExit(main())
