"""Percent-format ``.py`` scripts as jobs: read by jupytext, run and kept as notebooks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nbformat

from tests.integration.test_kernel_side import run_in_kernel

#: a jupytext percent-format script: a markdown cell, the parameters cell, the training
SCRIPT = '''\
# %% [markdown]
# # A script job
# Trains nothing; reports a loss per step.

# %% tags=["parameters"]
steps: int = 3
lr: float = 0.1  # learning rate
label: str = "base"

# %%
import notebench

for step in range(steps):
    notebench.report(step=step, total_steps=steps, loss=lr / (step + 1))
print(f"ran {label} with lr={lr} for {steps} steps", flush=True)
'''


def write_script(root: Path, relative: str, text: str | bytes) -> str:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return relative


def printed(nb: dict) -> str:
    """What the code cells of an output notebook (as served: JSON, text as lists) printed."""
    texts = (o.get("text", "") for c in nb["cells"] if c["cell_type"] == "code"
             for o in c.get("outputs", []) if o.get("output_type") == "stream")
    return "".join("".join(t) if isinstance(t, list) else t for t in texts)


async def test_a_script_runs_with_parameters_and_its_output_is_a_notebook(
        jobs_api, api, jp_root_dir, services):
    path = write_script(jp_root_dir, "scripts/train.py", SCRIPT)
    described = await api("GET", "lifecycle/parameters", params={"path": path})
    assert described.status == 200, described.body
    assert [(p["name"], p["default"]) for p in described.body["parameters"]] == [
        ("steps", 3), ("lr", 0.1), ("label", "base")]
    assert described.body["kernel_name"] == "python3"  # a script without a header: Python's
    assert described.body["parameters"][1]["help"] == "learning rate"

    job = await jobs_api.submit(path, parameters={"steps": 5, "label": "tuned"})
    assert job["name"] == "train" and job["notebook"]["path"] == path
    assert job["resolved_parameters"] == {"steps": 5, "lr": 0.1, "label": "tuned"}
    again = await jobs_api.submit(path, parameters={"lr": 0.5})
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    other = await jobs_api.wait(again["id"])
    assert other["state"] == "succeeded", (other["reason"], other["error"])

    # the job directory holds the notebook jupytext made of the script, its hash the job's
    job_dir = services.workspace.root("artifacts") / "jobs" / job["id"]
    snapshot = (job_dir / "notebook.ipynb").read_bytes()
    assert hashlib.sha256(snapshot).hexdigest() == job["notebook"]["sha256"]
    node = nbformat.reads(snapshot.decode(), as_version=4)
    nbformat.validate(node)
    assert [c.cell_type for c in node.cells] == ["markdown", "code", "code"]
    assert node.cells[1].metadata["tags"] == ["parameters"]
    assert not list(job_dir.glob("*.py"))
    # the same script snapshots to the same bytes: equal hashes
    assert other["notebook"]["sha256"] == job["notebook"]["sha256"]

    output = await api("GET", f"lifecycle/jobs/{job['id']}/output")
    assert output.status == 200, output.body
    nbformat.validate(nbformat.from_dict(output.body))
    injected = [c for c in output.body["cells"]
                if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and 'label = "tuned"' in "".join(injected[0]["source"])
    assert "ran tuned with lr=0.1 for 5 steps" in printed(output.body)
    assert (job_dir / "output.ipynb").is_file()
    counts = {s["name"]: s["count"] for s in (await jobs_api.metrics(job["id"]))["series"]}
    assert counts == {"loss": 5}
    assert "ran base with lr=0.5 for 3 steps" in printed(
        (await api("GET", f"lifecycle/jobs/{again['id']}/output")).body)


async def test_a_script_without_a_parameters_cell_runs_as_written(jobs_api, api, jp_root_dir):
    path = write_script(jp_root_dir, "plain.py", "# %%\nx = 6 * 7\n\n# %%\nprint('x is', x)\n")
    described = await api("GET", "lifecycle/parameters", params={"path": path})
    assert described.status == 200, described.body
    assert described.body["parameters_cell"] is None and described.body["parameters"] == []
    refused = await api("POST", "lifecycle/jobs", {"notebook": path, "parameters": {"x": 1}})
    assert refused.status == 400 and refused.body["error"]["code"] == "invalid_parameters"
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    output = await api("GET", f"lifecycle/jobs/{job['id']}/output")
    assert "x is 42" in printed(output.body)


async def test_scripts_that_cannot_be_jobs_are_refused_with_a_reason(api, jp_root_dir,
                                                                    services):
    root = jp_root_dir
    cases = {
        # no '# %%' cells: jupytext's light format, not percent
        write_script(root, "bad/light.py", "steps = 3\nprint(steps)\n"):
            ("invalid_notebook", "percent format"),
        write_script(root, "bad/syntax.py", '# %% tags=["parameters"]\nsteps = (3\n\n'
                                            "# %%\nprint(steps)\n"):
            ("invalid_notebook", "not valid Python"),
        write_script(root, "bad/header.py", "# %% tags=['parameters'\nsteps = 3\n"):
            ("invalid_notebook", "cannot read"),
        write_script(root, "bad/latin1.py", "# %%\nname = 'caf\xe9'\n".encode("latin-1")):
            ("invalid_notebook", "UTF-8"),
        write_script(root, "bad/notes.txt", "# %%\nx = 1\n"):
            ("invalid_notebook", "percent-format script (.py)"),
        write_script(root, "good.py", SCRIPT): ("invalid_parameters", "steps"),
        "missing.py": ("unknown_notebook", "missing.py"),
    }
    runs_dir = services.workspace.root("artifacts") / "jobs"
    before = set(runs_dir.iterdir()) if runs_dir.exists() else set()
    for path, (code, words) in cases.items():
        body = {"notebook": path}
        if path == "good.py":
            body["parameters"] = {"steps": "many"}
        response = await api("POST", "lifecycle/jobs", body)
        assert response.status == 400, (path, response.body)
        assert response.body["error"]["code"] == code, (path, response.body)
        assert words in response.body["error"]["message"], (path, response.body)
    # the dialog's route reads scripts as submission does
    for path in ("bad/light.py", "bad/header.py"):
        response = await api("GET", "lifecycle/parameters", params={"path": path})
        assert response.status == 400, (path, response.body)
        assert response.body["error"]["code"] == "invalid_notebook"
    syntax = await api("GET", "lifecycle/parameters", params={"path": "bad/syntax.py"})
    assert syntax.status == 200 and "not valid Python" in syntax.body["problems"][0]
    after = set(runs_dir.iterdir()) if runs_dir.exists() else set()
    assert after == before, "a refused script left a job directory"


KERNEL_CODE = """
import json, notebench
job = notebench.jobs.submit("train.py", lr=0.25, steps=4, name="script-from-kernel")
job.wait(timeout=90, progress=False)
out = job.output()
print(json.dumps({"state": job.state, "path": job["notebook"]["path"],
                  "parameters": job["parameters"], "loss": job.metrics()["loss"].tolist(),
                  "cell_types": [c.cell_type for c in out.cells],
                  "nbformat": out.nbformat}))
"""


async def test_jobs_submit_takes_a_script_from_a_kernel(jp_serverapp, http_server_client,
                                                       jp_root_dir, jobs_api):
    write_script(jp_root_dir, "train.py", SCRIPT)
    output = await run_in_kernel(jp_serverapp, KERNEL_CODE)
    result = json.loads(output.strip().splitlines()[-1])
    assert result["state"] == "succeeded", result
    assert result["path"] == "train.py"
    assert result["parameters"] == {"lr": 0.25, "steps": 4}
    assert result["loss"] == [0.25 / (step + 1) for step in range(4)]
    assert result["nbformat"] == 4 and result["cell_types"][0] == "markdown"
    assert result["cell_types"].count("code") >= 3  # parameters, injected, training
