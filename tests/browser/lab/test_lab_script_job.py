"""A percent-format ``.py`` script run as a training job from JupyterLab.

Two ways in: the "Run as training job" button of the script's editor (which saves the
script first) and the file browser's context menu. Each job runs with the value typed in
the dialog, and its output is a notebook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.chromium import screenshot
from tests.browser.lab.conftest import job_state, open_lab, our_errors, wait_until

#: steps are reported and the label printed: a job's output shows which values it ran with
SCRIPT = '''\
# %% [markdown]
# # A script job from Lab

# %% tags=["parameters"]
steps: int = 6
label: str = "{label}"

# %%
import notebench

for step in range(steps):
    notebench.report(step=step, total_steps=steps, loss=1.0 / (step + 1))
print(f"label={{label}} steps={{steps}}", flush=True)
'''


def write_script(root: Path, relative: str, label: str) -> str:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPT.format(label=label))
    return relative


def job_of(lab: Any, path: str) -> dict[str, Any]:
    """The one job submitted for ``path``, once there is one."""
    def found() -> list[dict[str, Any]]:
        status, answer = lab.request("GET", "lifecycle/jobs?limit=100")
        assert status == 200, answer
        return [j for j in answer["jobs"] if j["notebook"]["path"] == path]

    jobs = wait_until(found, 30, f"a job for {path}")
    assert len(jobs) == 1, jobs
    return jobs[0]


def printed(lab: Any, job_id: str) -> str:
    status, output = lab.request("GET", f"lifecycle/jobs/{job_id}/output")
    assert status == 200, output
    assert output["nbformat"] == 4  # the output of a script job is a notebook
    texts = (o.get("text", "") for c in output["cells"] if c["cell_type"] == "code"
             for o in c.get("outputs", []) if o.get("output_type") == "stream")
    return "".join("".join(t) if isinstance(t, list) else t for t in texts)


def fill_and_run(page: Any, steps: str) -> None:
    """In the dialog: ``steps`` typed, then Run."""
    field = page.locator(".jp-Dialog input[data-param='steps']")
    field.wait_for(timeout=30_000)
    assert field.input_value() == "6"
    field.fill(steps)
    page.click(".jp-Dialog .jp-mod-accept")


def test_run_a_script_open_in_the_editor_with_an_edited_parameter(page, console, lab) -> None:
    path = write_script(lab.root_dir, "scripts/editor_train.py", "on-disk")
    open_lab(page, lab, workspace="script-editor")
    page.evaluate("""path => window.jupyterapp.commands.execute('docmanager:open',
                     {path, factory: 'Editor'})""", path)
    editor = page.locator(".jp-MainAreaWidget:has(.jp-FileEditor)")
    editor.locator(".cm-content").wait_for(timeout=60_000)
    # an edit not yet saved: the command saves the script before reading its parameters
    page.evaluate("""() => {
        const shared = window.jupyterapp.shell.currentWidget.context.model.sharedModel;
        const start = shared.getSource().indexOf('"on-disk"');
        shared.updateSource(start, start + '"on-disk"'.length, '"from-editor"');  // as typing
    }""")
    button = editor.locator(".jp-Toolbar [data-command='notebench:run-as-job']")
    button.wait_for(timeout=30_000)
    button.click()
    label = page.locator(".jp-Dialog input[data-param='label']")
    label.wait_for(timeout=30_000)
    assert label.input_value() == "from-editor"
    screenshot(page, "lab-run-script-as-job-dialog")
    fill_and_run(page, "2")
    assert 'label: str = "from-editor"' in (lab.root_dir / path).read_text()
    job = job_of(lab, path)
    assert job["parameters"] == {"steps": 2}, job["parameters"]  # what differs is sent
    wait_until(lambda: job_state(lab, job["id"])["state"] in ("succeeded", "failed"), 90,
               "the script job ends")
    done = job_state(lab, job["id"])
    assert done["state"] == "succeeded", done.get("error")
    assert done["name"] == "editor_train"
    assert "label=from-editor steps=2" in printed(lab, job["id"])
    assert not our_errors(console)


def test_run_a_script_from_the_file_browser_menu(page, console, lab) -> None:
    path = write_script(lab.root_dir, "menu/menu_train.py", "menu")
    (lab.root_dir / "menu" / "notes.txt").write_text("not a job\n")
    open_lab(page, lab, workspace="script-menu")
    page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:go-to-path', "
                  "{path: 'menu/'})")
    item = page.locator(".jp-DirListing-item", has_text="menu_train.py")
    item.wait_for(timeout=30_000)
    menu_entry = page.locator(".lm-Menu-item[data-command='notebench:run-file-as-job']")
    # a file that is neither a notebook nor a script has no such entry (a hidden one at most)
    page.locator(".jp-DirListing-item", has_text="notes.txt").click(button="right")
    page.locator(".lm-Menu").first.wait_for(timeout=10_000)
    assert not menu_entry.is_visible()
    page.keyboard.press("Escape")
    item.click(button="right")
    menu_entry.wait_for(timeout=10_000)
    menu_entry.click()
    fill_and_run(page, "3")
    job = job_of(lab, path)
    assert job["parameters"] == {"steps": 3}, job["parameters"]
    wait_until(lambda: job_state(lab, job["id"])["state"] in ("succeeded", "failed"), 90,
               "the script job ends")
    done = job_state(lab, job["id"])
    assert done["state"] == "succeeded", done.get("error")
    assert "label=menu steps=3" in printed(lab, job["id"])
    assert not our_errors(console)
