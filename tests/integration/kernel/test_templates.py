"""The training templates and the kernel API in real papermill runs with real kernels.

Each template runs as a job would: ``NOTEBENCH_JOB_ID`` / ``NOTEBENCH_JOB_DIR`` set, the
dataset passed as a name or an absolute path, and the job directory checked against the
protocol (docs/job-directory.md). A tiny notebook without torch checks report()'s flush at
the end of each cell and start_run() in a kernel.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from notebench import _jobdir

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[3]
IMAGE = ROOT / "notebooks" / "train_image_classifier.ipynb"
TABULAR = ROOT / "notebooks" / "train_tabular.ipynb"
SAMPLES = ROOT / "kernel_helpers" / "_data" / "datasets"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch):
    for name in (_jobdir.JOB_DIR_ENV, _jobdir.JOB_ID_ENV, _jobdir.RUNS_DIR_ENV,
                 _jobdir.RESUME_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as a job with one CPU gets it


def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    directory = tmp_path / "artifacts" / "jobs" / name
    directory.mkdir(parents=True)
    monkeypatch.setenv(_jobdir.JOB_ID_ENV, name)
    monkeypatch.setenv(_jobdir.JOB_DIR_ENV, str(directory))
    return directory


def execute(notebook: Path, job: Path, cwd: Path, **parameters) -> None:
    papermill.execute_notebook(str(notebook), str(job / "output.ipynb"), parameters=parameters,
                               kernel_name="python3", progress_bar=False, cwd=str(cwd))


def events(job: Path, kind: str | None = None) -> list[dict]:
    found = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    return [e for e in found if kind is None or e["kind"] == kind]


def training_points(job: Path) -> list[dict]:
    return [e for e in events(job, "metrics") if "loss" in e["metrics"]]


def load_model_file(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, weights_only=True)


def outputs_text(job: Path) -> str:
    notebook = nbformat.read(job / "output.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


def test_image_classifier_job(tmp_path: Path, monkeypatch) -> None:
    job = job_dir(tmp_path, monkeypatch, "j-0000000000a1")
    execute(IMAGE, job, tmp_path, epochs=1)  # dataset: the bare sample name

    points = training_points(job)
    total = points[0]["total_steps"]
    assert [p["step"] for p in points] == list(range(1, total + 1))
    assert {p["total_steps"] for p in points} == {total}
    assert all(p["metrics"]["epoch"] == 1 and isinstance(p["metrics"]["loss"], float)
               for p in points)
    [validation] = [e for e in events(job, "metrics") if "val_accuracy" in e["metrics"]]
    assert validation["step"] == total and 0 <= validation["metrics"]["val_accuracy"] <= 1
    [settings] = events(job, "settings")
    assert settings["settings"]["batch_size"]["source"] == "measured"
    assert settings["settings"]["num_workers"]["value"] == 0

    [saved] = events(job, "checkpoint")
    assert saved["path"] == "checkpoints/epoch-0001.pt" and saved["epoch"] == 1
    assert saved["best"] is True and (job / saved["path"]).is_file()
    state = torch.load(job / saved["path"], weights_only=True)
    assert state["epoch"] == 1 and state["step"] == total

    manifest = json.loads((job / "manifest.json").read_text())
    model = manifest["model"]
    assert model["name"] == "digits-cnn" and model["framework"] == "pytorch"
    assert set(model["metrics"]) == {"val_loss", "val_accuracy"}
    assert manifest["artifacts"] == ["metrics.csv"] and (job / "metrics.csv").is_file()
    weights = load_model_file(job / model["path"])
    assert tuple(weights["head.weight"].shape) == (10, 64)
    assert model["parameters"] == sum(v.numel() for k, v in weights.items()
                                      if "running" not in k and "num_batches" not in k)
    assert not (tmp_path / "notebench-output").exists()  # everything went to the job


def test_tabular_job_stops_on_request_and_a_restart_continues(tmp_path: Path,
                                                              monkeypatch) -> None:
    dataset = tmp_path / "datasets" / "table.csv"  # an absolute path, as the server passes
    dataset.parent.mkdir()
    shutil.copy(SAMPLES / "tabular-sample.csv", dataset)
    job = job_dir(tmp_path, monkeypatch, "j-0000000000b1")

    def stop_after_first_epoch() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            path = job / "events.jsonl"
            if path.exists() and b'"kind":"checkpoint"' in path.read_bytes():
                (job / "control.json").write_text(
                    json.dumps({"stop": True, "requested_at": time.time()}))
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=stop_after_first_epoch, daemon=True)
    watcher.start()
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        execute(TABULAR, job, tmp_path, dataset=str(dataset), epochs=500)
    watcher.join(5)
    assert raised.value.ename == "StopTraining"
    kinds = [e["kind"] for e in events(job)]
    assert kinds.index("stopping") < len(kinds) - 1 and kinds[-1] == "checkpoint"
    stopped = events(job, "checkpoint")[-1]
    assert stopped["path"].startswith("checkpoints/stopped-step-")
    assert stopped["epoch"] >= 1 and (job / stopped["path"]).is_file()
    assert not (job / "manifest.json").exists()  # the cells after the loop never ran

    restart = job_dir(tmp_path, monkeypatch, "j-0000000000b2")
    monkeypatch.setenv(_jobdir.RESUME_ENV, str(job / stopped["path"]))
    done = stopped["epoch"]
    execute(TABULAR, restart, tmp_path, dataset=str(dataset), epochs=done + 1)
    assert f"resuming after epoch {done}" in outputs_text(restart)
    points = training_points(restart)
    total = points[0]["total_steps"]
    per_epoch = total // (done + 1)
    assert points[0]["step"] == done * per_epoch + 1 and points[-1]["step"] == total
    assert {p["metrics"]["epoch"] for p in points} == {done + 1}
    assert [e["epoch"] for e in events(restart, "checkpoint")] == [done + 1]
    manifest = json.loads((restart / "manifest.json").read_text())
    assert manifest["model"]["name"] == "tabular-mlp"
    assert set(manifest["model"]["metrics"]) == {"val_loss", "val_accuracy"}


def test_tabular_regression_from_npz(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 3.0).astype(np.float32)
    np.savez(tmp_path / "regression.npz", X=x, y=y)
    job = job_dir(tmp_path, monkeypatch, "j-0000000000c1")
    execute(TABULAR, job, tmp_path, dataset=str(tmp_path / "regression.npz"), epochs=1,
            batch_size=32, task="regression", model_name="reg")
    [settings] = events(job, "settings")
    assert settings["settings"]["batch_size"] == {"value": 32, "source": "given",
                                                  "reason": "given"}
    assert len(training_points(job)) == 320 // 32 + (320 % 32 > 0)
    manifest = json.loads((job / "manifest.json").read_text())
    assert set(manifest["model"]["metrics"]) == {"val_loss", "val_rmse"}
    weights = load_model_file(job / manifest["model"]["path"])
    assert tuple(weights["x_mean"].shape) == (3,)


TINY_CELLS = [
    # a run of its own, two points: the first written at once, the second buffered
    "import math, json, notebench\n"
    "run = notebench.start_run('demo')\n"
    "notebench.report(step=1, total_steps=2, loss=1.0)\n"
    "notebench.report(step=2, total_steps=2, loss=math.nan)",
    # the end of the previous cell wrote the buffered point
    "lines = [json.loads(x) for x in open(run.dir / 'events.jsonl')]\n"
    "assert [e['step'] for e in lines] == [1, 2], lines\n"
    "assert lines[1]['metrics'] == {'loss': {'nonfinite': 'nan'}}\n"
    "run.end()",
    "from notebench import control\n"
    "with notebench.start_run('second') as second:\n"
    "    control.request_stop()\n"
    "    if notebench.should_stop():\n"
    "        raise notebench.StopTraining\n"
    "print(second.status)",
]


def test_report_flushes_at_the_end_of_each_cell_and_start_run(tmp_path: Path,
                                                               monkeypatch) -> None:
    runs = tmp_path / "artifacts" / "jobs"
    monkeypatch.setenv(_jobdir.RUNS_DIR_ENV, str(runs))
    notebook = new_notebook(cells=[new_code_cell(source) for source in TINY_CELLS],
                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                     "display_name": "Python 3"}})
    path = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, path)
    papermill.execute_notebook(str(path), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    found = {json.loads((d / "run.json").read_text())["name"]: d for d in runs.iterdir()}
    assert set(found) == {"demo", "second"}
    for name, status in (("demo", "succeeded"), ("second", "stopped")):
        info = json.loads((found[name] / "run.json").read_text())
        assert info["kind"] == "interactive" and info["id"] == found[name].name
        assert events(found[name])[-1]["kind"] == "run_end"
        assert events(found[name])[-1]["status"] == status
    assert [e["kind"] for e in events(found["second"])] == ["stopping", "run_end"]
