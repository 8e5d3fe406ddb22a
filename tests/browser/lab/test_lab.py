"""The JupyterLab extension in Debian's Chromium against a real ``jupyter lab``.

One Lab server for the module (the restart test goes last); jobs are tiny notebooks that
never import torch, except "Run as training job" on a real template with one epoch.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import nbformat

from tests.browser.chromium import screenshot
from tests.browser.lab.conftest import (
    STEPS_SOURCE,
    TERMINAL,
    job_state,
    open_lab,
    our_errors,
    show_training,
    submit,
    wait_until,
)

ROW = '.nb-job[data-job-id="{}"]'


def row_state(page: Any, job_id: str) -> str | None:
    return page.get_attribute(ROW.format(job_id), "data-state")


def test_panel_follows_a_job_live_to_the_end(page, console, lab) -> None:
    open_lab(page, lab)
    show_training(page)
    job = submit(lab, steps=8, delay=0.4)
    row = ROW.format(job["id"])
    page.wait_for_selector(row, timeout=30_000)
    wait_until(lambda: row_state(page, job["id"]) == "running", 60, "row shows running")
    # live values reach the row while the job runs (loss is 1 / (step + 1))
    page.wait_for_selector(f"{row} .nb-job-loss", timeout=30_000)
    seen = {page.inner_text(f"{row} .nb-job-loss")}
    wait_until(lambda: seen.add(page.inner_text(f"{row} .nb-job-loss")) or len(seen) > 1
               or row_state(page, job["id"]) == "succeeded", 60, "loss changes")
    wait_until(lambda: row_state(page, job["id"]) == "succeeded", 90, "row shows succeeded")
    assert job_state(lab, job["id"])["state"] == "succeeded"
    assert page.inner_text(f"{row} .nb-job-loss") == "loss 0.125"  # the last step's value
    assert "epoch 7" in page.inner_text(f"{row} .nb-job-epoch")
    width = page.eval_on_selector(f"{row} .nb-progress-bar", "el => el.style.width")
    assert width == "100%"
    screenshot(page, "lab-training-panel")

    # the job view: charts, the log tail, artifacts with download links, the output notebook
    page.click(f"{row} .nb-job-name")
    view = f"#notebench-job-{job['id']}"
    page.wait_for_selector(f"{view} .nb-chart canvas", timeout=30_000)
    wait_until(lambda: "step 7 of 8" in page.inner_text(f"{view} .nb-log"), 30, "log tail")
    page.wait_for_selector(f"{view} .nb-artifacts a.nb-download", timeout=30_000)
    href = page.get_attribute(f"{view} .nb-artifacts a.nb-download", "href")
    assert f"lifecycle/artifacts/{job['id']}/" in href
    status = page.evaluate("url => fetch(url).then(r => r.status)", href)
    assert status == 200
    page.wait_for_selector(f"{view} .nb-output .nb-cell", timeout=30_000)
    assert "notebench.report" in page.inner_text(f"{view} .nb-output")
    screenshot(page, "lab-job-view")
    assert not our_errors(console)


def test_pause_in_the_panel_pauses_the_job(page, console, lab) -> None:
    open_lab(page, lab)
    show_training(page)
    job = submit(lab, steps=200, delay=0.2)
    row = ROW.format(job["id"])
    page.wait_for_selector(f"{row} .nb-action-pause", timeout=60_000)
    # the job view's duration ticks while the job runs, with no request
    page.click(f"{row} .nb-job-name")
    duration = f"#notebench-job-{job['id']} .nb-jobview-header .nb-job-duration"
    page.wait_for_selector(duration, timeout=30_000)
    first = page.inner_text(duration)
    wait_until(lambda: page.inner_text(duration) not in (first, "0:00"), 10, "duration ticks")
    page.click(f"{row} .nb-action-pause")
    wait_until(lambda: job_state(lab, job["id"])["state"] == "paused", 30, "server paused")
    wait_until(lambda: row_state(page, job["id"]) == "paused", 30, "row shows paused")
    # frozen: the step it reached (once the record caught up) stays for a second, in
    # which a running job makes five (a stop resumes it to let it end cleanly)
    readings: list[int | None] = []

    def frozen() -> bool:
        readings.append(job_state(lab, job["id"])["progress"].get("step"))
        return len(readings) >= 6 and readings[-1] is not None and len(set(readings[-6:])) == 1

    wait_until(frozen, 30, "the paused job's step stays")
    page.click(f"{row} .nb-action-stop")
    wait_until(lambda: job_state(lab, job["id"])["state"] in TERMINAL, 60, "job stopped")
    wait_until(lambda: row_state(page, job["id"]) in TERMINAL, 30, "row shows the end")
    assert not our_errors(console)


def stream_clients(lab) -> int:
    """Open SSE connections that follow the jobs topic (what the extension opens)."""
    status, stats = lab.request("GET", "monitoring/stats")
    assert status == 200, stats
    return stats["sse"]["by_topic"].get("jobs", 0)


def test_two_tabs_share_one_stream_and_lab_is_not_starved(browser_context, lab) -> None:
    wait_until(lambda: stream_clients(lab) == 0, 30, "earlier pages' streams closed")
    first, second = browser_context.new_page(), browser_context.new_page()
    for page, workspace in ((first, "tab-one"), (second, "tab-two")):
        open_lab(page, lab, workspace)
        show_training(page)
    job = submit(lab, steps=10, delay=0.3)
    for page in (first, second):
        page.wait_for_selector(ROW.format(job["id"]), timeout=30_000)
    wait_until(lambda: all(row_state(p, job["id"]) == "succeeded" for p in (first, second)),
               90, "both tabs follow the job to its end")
    # one stream connection for the whole browser, whichever tab owns it
    assert stream_clients(lab) == 1
    # Lab's own requests go through while the stream is open: 12 at once from each tab
    script = """async () => {
        const app = window.jupyterapp;
        const t0 = performance.now();
        await Promise.all(Array.from({length: 12}, () => app.serviceManager.contents.get('')));
        return performance.now() - t0;
    }"""
    for page in (first, second):
        elapsed = page.evaluate(script)
        assert elapsed < 20_000, f"Lab's requests took {elapsed:.0f} ms"
    # closing the owner's tab hands the stream to the other one, still one connection
    owner = first if first.evaluate("window.notebenchHub.isOwner") else second
    assert not (second if owner is first else first).evaluate("window.notebenchHub.isOwner")
    owner.close()
    other = second if owner is first else first
    job = submit(lab, steps=3, delay=0.2)
    other.wait_for_selector(ROW.format(job["id"]), timeout=30_000)
    wait_until(lambda: row_state(other, job["id"]) == "succeeded", 60, "the other tab follows")
    wait_until(lambda: stream_clients(lab) == 1, 20, "one connection again")


def test_status_bar_shows_cpu_and_memory_and_updates(page, console, lab) -> None:
    open_lab(page, lab)
    page.wait_for_selector(".nb-status .nb-status-cpu", timeout=30_000)
    assert re.fullmatch(r"CPU \d+%", page.inner_text(".nb-status .nb-status-cpu"))
    assert re.fullmatch(r"Mem \d+%", page.inner_text(".nb-status .nb-status-mem"))
    first = page.get_attribute(".nb-status", "data-sample-ts")
    wait_until(lambda: page.get_attribute(".nb-status", "data-sample-ts") != first, 20,
               "a newer sample")
    page.click(".nb-status")
    page.wait_for_selector("#notebench-system .nb-cpu canvas", timeout=30_000)
    assert not our_errors(console)


def test_run_as_training_job_on_an_open_template(page, console, lab) -> None:
    open_lab(page, lab)
    page.evaluate("""() => window.jupyterapp.commands.execute('docmanager:open',
                     {path: 'notebench/notebooks/train_tabular.ipynb'})""")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    button = page.locator(".jp-NotebookPanel-toolbar [data-command='notebench:run-as-job']")
    button.wait_for(timeout=30_000)
    button.click()
    field = page.locator(".jp-Dialog input[data-param='epochs']")
    field.wait_for(timeout=30_000)
    assert field.input_value() == "30"
    # "auto" parameters come prefilled with the hardware recommendations
    assert page.locator(".jp-Dialog input[data-param='device']").input_value() in ("cpu", "cuda")
    field.fill("1")
    screenshot(page, "lab-run-as-job-dialog")
    page.click(".jp-Dialog .jp-mod-accept")
    page.wait_for_selector(".Toastify__toast", timeout=30_000)
    status, answer = lab.request("GET", "lifecycle/jobs?limit=20")
    assert status == 200, answer
    jobs = [j for j in answer["jobs"] if j["notebook"]["path"].endswith("train_tabular.ipynb")]
    assert len(jobs) == 1, answer
    job = jobs[0]
    assert job["parameters"]["epochs"] == 1
    wait_until(lambda: job_state(lab, job["id"])["state"] in TERMINAL, 240, "template job ends")
    final = job_state(lab, job["id"])
    assert final["state"] == "succeeded", final.get("error")
    assert final["progress"].get("epoch") in (0, 1)  # one epoch ran
    assert not our_errors(console)


def test_run_as_training_job_offers_to_tag_a_parameters_cell(page, console, lab) -> None:
    notebook = lab.root_dir / "nbs" / "untagged.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell("steps: int = 4\ndelay: float = 0.05"),
                nbformat.v4.new_code_cell(STEPS_SOURCE)]
    nbformat.write(nb, notebook)
    open_lab(page, lab, workspace="tagging")  # no notebook restored from earlier tests
    page.evaluate("""() => window.jupyterapp.commands.execute('docmanager:open',
                     {path: 'nbs/untagged.ipynb'})""")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    page.locator(".jp-NotebookPanel-toolbar [data-command='notebench:run-as-job']").click()
    offer = page.locator(".jp-Dialog", has_text="No parameters cell")
    offer.wait_for(timeout=30_000)
    offer.locator(".jp-mod-accept").click()  # "Tag the active cell" (the first one)
    field = page.locator(".jp-Dialog input[data-param='steps']")
    field.wait_for(timeout=30_000)
    assert field.input_value() == "4"  # read from the cell just tagged
    field.fill("2")
    page.click(".jp-Dialog .jp-mod-accept")
    saved = nbformat.read(notebook, as_version=4)
    assert saved.cells[0].metadata.get("tags") == ["parameters"]  # saved with the tag
    job = wait_until(lambda: [j for j in lab.request("GET", "lifecycle/jobs?limit=100")[1]
                              ["jobs"] if j["notebook"]["path"].endswith("untagged.ipynb")],
                     30, "job submitted")[0]
    assert job["parameters"] == {"steps": 2}, job["parameters"]  # what differs is sent
    wait_until(lambda: job_state(lab, job["id"])["state"] == "succeeded", 90, "job ends")
    assert job_state(lab, job["id"])["progress"].get("epoch") == 1  # two steps ran, not four
    assert not our_errors(console)


def test_dark_theme_renders(page, console, lab) -> None:
    open_lab(page, lab)
    page.evaluate("""() => window.jupyterapp.commands.execute('apputils:change-theme',
                     {theme: 'JupyterLab Dark'})""")
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached",
                           timeout=30_000)
    show_training(page)
    page.evaluate("() => window.jupyterapp.commands.execute('notebench:open-system')")
    page.wait_for_selector("#notebench-system .nb-cpu canvas", timeout=30_000)
    page.wait_for_timeout(1500)
    background = page.eval_on_selector("#notebench-training",
                                       "el => getComputedStyle(el).backgroundColor")
    channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
    assert sum(channels) / 3 < 100, background  # the panel follows the dark theme
    screenshot(page, "lab-dark-theme")
    page.evaluate("""() => window.jupyterapp.commands.execute('apputils:change-theme',
                     {theme: 'JupyterLab Light'})""")
    assert not our_errors(console)


def test_compare_two_runs_selected_in_the_panel(page, console, lab) -> None:
    short, long = submit(lab, steps=3, delay=0.05), submit(lab, steps=5, delay=0.05)
    for job in (short, long):
        wait_until(lambda job=job: job_state(lab, job["id"])["state"] in TERMINAL, 90, "ends")
    open_lab(page, lab)
    show_training(page)
    for job in (short, long):
        box = f"{ROW.format(job['id'])} .nb-job-select"
        page.wait_for_selector(box, timeout=30_000)
        page.check(box)
    page.click("#notebench-training .nb-compare-selected")
    view = ".nb-compare"
    page.wait_for_selector(f"{view} .nb-chart canvas", timeout=30_000)
    rows = page.locator(f"{view} .nb-compare-table tbody tr")
    rows.first.wait_for(timeout=30_000)
    assert rows.count() == 2
    # the parameter that differs has a column, with each run's value
    headers = page.locator(f"{view} .nb-compare-table th.nb-differs").all_inner_texts()
    assert "steps" in headers, headers
    column = headers.index("steps")
    values = rows.evaluate_all("""(rows, column) => Object.fromEntries(rows.map(row =>
        [row.dataset.jobId, row.querySelectorAll('td.nb-differs')[column].textContent]))""",
                               column)
    assert values == {short["id"]: "3", long["id"]: "5"}, values
    # two runs of one notebook share a name: the labels tell them apart
    labels = rows.evaluate_all("rows => rows.map(row => row.cells[0].textContent)")
    assert len(set(labels)) == 2 and all(label.startswith("steps") for label in labels), labels
    screenshot(page, "lab-compare")
    assert not our_errors(console)


def test_clone_with_edits_from_the_panel(page, console, lab) -> None:
    original = submit(lab, steps=3, delay=0.05)
    wait_until(lambda: job_state(lab, original["id"])["state"] in TERMINAL, 90, "ends")
    open_lab(page, lab)
    show_training(page)
    row = ROW.format(original["id"])
    page.wait_for_selector(f"{row} .nb-action-clone", timeout=30_000)
    page.click(f"{row} .nb-action-clone")
    steps = page.locator(".jp-Dialog input[data-param='steps']")
    steps.wait_for(timeout=30_000)
    assert steps.input_value() == "3"  # the job's own values, not the notebook's defaults
    assert page.locator(".jp-Dialog input[data-param='delay']").input_value() == "0.05"
    steps.fill("2")
    page.click(".jp-Dialog .jp-mod-accept")
    clones = wait_until(lambda: [j for j in lab.request("GET", "lifecycle/jobs?limit=100")[1]
                                 ["jobs"] if j.get("cloned_from") == original["id"]], 30, "clone")
    assert len(clones) == 1
    clone = clones[0]
    assert clone["parameters"] == {"steps": 2, "delay": 0.05}, clone["parameters"]
    page.wait_for_selector(ROW.format(clone["id"]), timeout=30_000)
    wait_until(lambda: job_state(lab, clone["id"])["state"] == "succeeded", 90, "clone ends")
    assert not our_errors(console)


def csv_of_size(size: int) -> bytes:
    """A CSV file of exactly ``size`` bytes (rows of numbers, then padding in the last row)."""
    rows = [b"step,value\n"]
    total, i = len(rows[0]), 0
    while total < size - 64:
        row = f"{i},{(i * 7919) % 100003}\n".encode()
        rows.append(row)
        total, i = total + len(row), i + 1
    rows.append(f"{i},{'9' * (size - total - len(str(i)) - 2)}\n".encode())
    return b"".join(rows)


def test_a_file_dropped_on_the_assets_panel_is_uploaded(page, console, lab) -> None:
    # over one 8 MiB chunk of the resumable protocol: two PATCH requests
    content = csv_of_size(9 * 1024 * 1024 + 12_345)
    assert len(content) == 9 * 1024 * 1024 + 12_345
    open_lab(page, lab)
    page.evaluate("window.jupyterapp.shell.activateById('notebench-assets')")
    page.wait_for_selector("#notebench-assets .nb-category option[value='datasets']",
                           state="attached", timeout=30_000)
    page.select_option("#notebench-assets .nb-category", "datasets")
    progress: list[str] = []
    page.expose_function("notebenchProgress", lambda width: progress.append(width))
    page.evaluate("""text => {
        const file = new File([text], 'dropped.csv', {type: 'text/csv'});
        const data = new DataTransfer();
        data.items.add(file);
        const panel = document.getElementById('notebench-assets');
        new MutationObserver(() => {
            const bar = panel.querySelector('.nb-upload .nb-progress-bar');
            if (bar) { window.notebenchProgress(bar.style.width); }
        }).observe(panel, {subtree: true, attributes: true, childList: true});
        for (const type of ['dragover', 'drop']) {
            panel.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true,
                                                     cancelable: true}));
        }
    }""", content.decode())
    page.wait_for_selector("#notebench-assets .nb-upload.nb-mod-done", timeout=60_000)
    assert any(width not in ("0%", "100%") for width in progress), progress  # seen part way
    status, answer = lab.request("GET", "assets/list/datasets?name=dropped.csv")
    assert status == 200, answer
    found = [item for item in answer["items"] if item["rel_path"] == "dropped.csv"]
    assert len(found) == 1, answer
    assert found[0]["size"] == len(content)
    assert found[0]["sha256"] == hashlib.sha256(content).hexdigest()
    assert found[0]["source"] == "upload"
    page.wait_for_selector("#notebench-assets .nb-asset-list >> text=dropped.csv",
                           timeout=30_000)
    screenshot(page, "lab-assets-upload")
    assert not our_errors(console)


def test_since_you_were_away_lists_what_finished(page, console, lab) -> None:
    open_lab(page, lab)
    page.wait_for_selector(".nb-status .nb-status-cpu", timeout=30_000)  # the stream is live
    page.goto("about:blank")  # leaving saves the last event id this browser accounted for
    job = submit(lab, steps=2, delay=0.05)
    wait_until(lambda: job_state(lab, job["id"])["state"] == "succeeded", 90, "job ends")
    open_lab(page, lab)
    toast = page.locator(".Toastify__toast", has_text="Since you were away")
    toast.wait_for(timeout=30_000)
    toast.get_by_role("button", name="Show").click()
    away = page.locator(".jp-Dialog .nb-away-list")
    away.wait_for(timeout=10_000)
    assert "steps" in away.inner_text() and "succeeded" in away.inner_text()
    screenshot(page, "lab-since-you-were-away")
    page.click(".jp-Dialog .jp-mod-accept")
    assert not our_errors(console)


LANGUAGE_SETTINGS = ("@jupyterlab", "translation-extension", "plugin.jupyterlab-settings")


def test_in_arabic_the_panels_speak_it_and_run_right_to_left(page, console, lab) -> None:
    """Lab's language set to Arabic (its language pack installed): the panels show
    notebench's own Arabic strings and lay themselves out right to left."""
    settings = lab.config_dir / "lab-state" / "user-settings" / Path(*LANGUAGE_SETTINGS)
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"locale": "ar_SA"}))
    try:
        job = submit(lab, steps=2, delay=0.1)
        wait_until(lambda: job_state(lab, job["id"])["state"] == "succeeded", 60, "the job's end")
        open_lab(page, lab, workspace="arabic")
        show_training(page)
        panel = page.locator("#notebench-training")
        assert panel.get_attribute("dir") == "rtl"
        assert panel.evaluate("el => getComputedStyle(el).direction") == "rtl"
        assert panel.locator("h2").first.inner_text() == "التدريب"
        row = page.locator(ROW.format(job["id"]))
        row.wait_for(timeout=30_000)
        assert "نجحت" in row.inner_text()  # its state, translated
        line = row.locator(".nb-job-line")
        cells = line.evaluate("el => Array.from(el.children).map(c => c.getBoundingClientRect().x)")
        assert cells[0] > cells[-1], cells  # the checkbox first, on the right
        page.wait_for_selector(".nb-status .nb-status-cpu", timeout=30_000)
        assert re.fullmatch(r"المعالج \d+%", page.inner_text(".nb-status .nb-status-cpu"))
        screenshot(page, "lab-arabic-rtl")
        assert not our_errors(console)
    finally:
        settings.unlink()


def test_panel_resumes_after_a_server_restart(page, console, lab) -> None:
    # a workspace of its own: views the other tests left open (their charts load a chunk
    # of the extension when first drawn) would be restored and could load while it is down
    open_lab(page, lab, workspace="restart")
    show_training(page)
    page.wait_for_selector(".nb-status .nb-status-cpu", timeout=30_000)
    lab.stop()
    page.wait_for_selector("#notebench-training .nb-connection[data-state='reconnecting']",
                           timeout=60_000)
    screenshot(page, "lab-reconnecting")
    lab.start()
    page.wait_for_selector("#notebench-training .nb-connection[data-state='open']",
                           state="attached", timeout=60_000)
    job = submit(lab, steps=3, delay=0.2)
    page.wait_for_selector(ROW.format(job["id"]), timeout=30_000)
    wait_until(lambda: row_state(page, job["id"]) == "succeeded", 60, "live after restart")
    # Lab itself reports its own failed requests while the server is down
    assert not [e for e in our_errors(console) if "notebench" in e.lower()]
