"""``notebench doctor``: the acceptance test (a workspace whose store was deleted, rebuilt
from its files, served again by a server: the same assets, the same finished jobs with
their metrics and model) and the report of a damaged workspace."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from typing import Any

import pytest

from notebench.server.workspace import Workspace
from tests.integration.maintenance.conftest import (
    assets_of,
    ended,
    jobs_of,
    notebench,
    same_job,
    series_of,
    upload,
)
from tests.integration.widgets.tiny import JOB_SETTINGS, serving, write_notebook
from tests.server_process import ServerProcess
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from tests.waiting import wait_until

TRAIN = """
import notebench, torch
for step in range(steps):
    notebench.report(step=step, total_steps=steps, loss=1.0 / (step + 1), accuracy=step / steps)
notebench.report(lr_seen=lr)
notebench.save_model({"w": torch.arange(6.0).reshape(2, 3) * lr}, "tiny-model",
                     metrics={"loss": 1.0 / steps})
"""
BROKEN = """
import notebench
notebench.report(step=0, loss=2.0)
raise ValueError("broken on purpose")
"""
PARAMETERS = "steps: int = 5\nlr: float = 0.1"


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A workspace with a job that saved a model, a failed job and an upload, as its
    server served them; the server has stopped. ``copy``: a copy made then (the files
    copied, the store backed up and restored there), for the tests that damage one."""
    root = tmp_path_factory.mktemp("doctor") / "root"
    with serving(root) as server:
        write_notebook(root / "nbs" / "model.ipynb", [TRAIN], parameters=PARAMETERS)
        write_notebook(root / "nbs" / "broken.ipynb", [BROKEN], parameters=PARAMETERS)
        ids = []
        for notebook, tags in (("model", ["kept"]), ("broken", [])):
            status, job = server.request("POST", "lifecycle/jobs", {
                "notebook": f"nbs/{notebook}.ipynb", "parameters": {"lr": 0.5},
                "tags": tags})
            assert status == 201, job
            ids.append(job["id"])
        assert ended(server, ids[0])["state"] == "succeeded"
        assert ended(server, ids[1])["state"] == "failed"
        wait_until(lambda: server.request("GET", f"lifecycle/jobs/{ids[0]}")[1]["model"],
                   timeout=30)  # linked just after the end
        upload(server, "datasets", "table.csv", b"a,b\n1,2\n")
        served = {"root": root, "ids": ids, "jobs": jobs_of(server),
                  "assets": assets_of(server), "series": {i: series_of(server, i) for i in ids}}
    served["copy"] = copy = root.parent / "copy"
    assert notebench(root, "backup", str(root.parent / "bk")).returncode == 0
    shutil.copytree(root / "notebench", copy / "notebench",
                    ignore=shutil.ignore_patterns(".notebench"))
    assert notebench(copy, "restore", str(root.parent / "bk")).returncode == 0
    return served


def problems(result: Any) -> dict[str, set[str]]:
    report = json.loads(result.stdout)
    found: dict[str, set[str]] = {}
    for problem in report["problems"]:
        found.setdefault(problem["kind"], set()).add(problem["subject"])
    return found


def test_a_workspace_rebuilt_from_its_files_serves_the_same_jobs_and_assets(
        before: dict[str, Any]) -> None:
    root = before["root"]
    state = root / "notebench" / ".notebench"
    assert notebench(root, "doctor").returncode == 0
    for path in state.glob("state.sqlite*"):
        path.unlink()
    lost = notebench(root, "doctor", "--json")
    assert lost.returncode == 1, lost.stderr
    found = problems(lost)
    assert found["store_missing"] and found["job_dir_unregistered"] == set(before["ids"])

    started = time.monotonic()
    rebuilt = notebench(root, "doctor", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert time.monotonic() - started < 60
    assert "rebuilt    2 jobs (1 failed, 1 succeeded), 1 model registered" in rebuilt.stdout
    assert "no problems found" in rebuilt.stdout

    server = ServerProcess(root, extra=JOB_SETTINGS).start()
    try:
        jobs = jobs_of(server)
        assert sorted(jobs) == sorted(before["ids"])
        for job_id in before["ids"]:
            was, now = before["jobs"][job_id], jobs[job_id]
            same_job(was, now)
            assert series_of(server, job_id) == before["series"][job_id]
            assert now["error"] == was["error"] and now["reason"] == was["reason"]
        model_job = before["ids"][0]
        was_model, model = before["jobs"][model_job]["model"], jobs[model_job]["model"]
        assert {k: model[k] for k in ("name", "path", "metrics")} == {
            k: was_model[k] for k in ("name", "path", "metrics")}
        assets = assets_of(server)
        assert {k: (a["name"], a["sha256"]) for k, a in assets.items()} == {
            k: (a["name"], a["sha256"]) for k, a in before["assets"].items()}
        linked = assets[("models", model["name"])]
        assert linked["id"] == model["asset_id"] and linked["job_id"] == model_job
        assert linked["metadata"]["final_metrics"] == was_model["metrics"]
        artifact = assets[("artifacts", f"jobs/{model_job}/{was_model['path']}")]
        assert artifact["job_id"] == model_job and artifact["source"] == "job"
    finally:
        server.stop()


def test_doctor_reports_a_damaged_workspace_and_rebuild_adds_what_it_can(
        before: dict[str, Any]) -> None:
    root = before["copy"]
    workspace = root / "notebench"
    failed = before["ids"][1]
    shutil.rmtree(workspace / "artifacts" / "jobs" / failed)
    (workspace / "datasets" / "table.csv").unlink()
    (workspace / "datasets" / "stray.csv").write_text("x\n1\n")
    run_id = "r-0123456789ab"
    run_dir = workspace / "artifacts" / "jobs" / run_id
    run_dir.mkdir()
    t0 = time.time() - 60
    (run_dir / "events.jsonl").write_text("".join(json.dumps(record) + "\n" for record in [
        *({"t": t0 + i, "kind": "metrics", "step": i, "metrics": {"loss": 1.0 / (i + 1)}}
          for i in range(4)),
        {"t": t0 + 5, "kind": "run_end", "status": "succeeded"}]))
    (run_dir / "run.json").write_text(json.dumps({
        "id": run_id, "name": "by hand", "kind": "interactive", "pid": None,
        "started": t0, "params": {"lr": 0.1}, "tags": ["hand"]}))

    report = notebench(root, "doctor", "--json")
    assert report.returncode == 1, report.stderr
    found = problems(report)
    missing = found.pop("asset_file_missing")
    assert found == {"job_dir_missing": {failed}, "job_dir_unregistered": {run_id},
                     "file_unregistered": {"datasets/stray.csv"}}
    # the upload, and the failed job's files registered as artifacts
    details = {p["detail"].rpartition(" (")[0] for p in json.loads(report.stdout)["problems"]
               if p["kind"] == "asset_file_missing"}
    assert "datasets/table.csv" in details and len(details) == len(missing) > 1
    assert all(d == "datasets/table.csv" or d.startswith(f"artifacts/jobs/{failed}/")
               for d in details), details
    text = notebench(root, "doctor")
    assert text.returncode == 1
    assert "job directory with no row  r-0123456789ab" in text.stdout
    assert f"{len(missing) + 3} problems found" in text.stdout

    owner = Workspace(workspace)
    owner.prepare()  # the lock a server holds
    try:
        refused = notebench(root, "doctor", "--rebuild")
        assert refused.returncode == 3
        assert "cannot rebuild: a notebench server owns the workspace" in refused.stderr
    finally:
        owner.release()

    rebuilt = notebench(root, "doctor", "--rebuild", "--json")
    assert rebuilt.returncode == 1  # what a rebuild cannot bring back is still reported
    report_after = json.loads(rebuilt.stdout)
    assert report_after["rebuilt"]["jobs"]["registered"] == [run_id]
    assert {p["kind"] for p in report_after["problems"]} == {"job_dir_missing",
                                                             "asset_file_missing"}
    conn = sqlite3.connect(workspace / ".notebench" / "state.sqlite")
    try:
        row = conn.execute("SELECT state, name, final_metrics, tags, parameters, ended "
                           "FROM jobs WHERE id = ?", (run_id,)).fetchone()
        count = conn.execute("SELECT count FROM job_series WHERE job_id = ?",
                             (run_id,)).fetchone()
    finally:
        conn.close()
    assert row[:2] == ("succeeded", "by hand")
    assert json.loads(row[2]) == {"loss": 0.25}
    assert (json.loads(row[3]), json.loads(row[4])) == (["hand"], {"lr": 0.1})
    assert row[5] == pytest.approx(t0 + 5)
    assert count == (4,)
