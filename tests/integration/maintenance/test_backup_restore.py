"""``notebench backup`` while a real server runs a job that reports points, and ``notebench
restore``: refused while a server owns the workspace, and into a fresh workspace (the
files copied, as to another machine) whose server then serves the same jobs and assets."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.maintenance.conftest import (
    assets_of,
    ended,
    jobs_of,
    notebench,
    same_job,
    series_of,
    upload,
)
from tests.integration.widgets.tiny import JOB_SETTINGS, serving, submit
from tests.server_process import ServerProcess
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("backup") / "root") as server:
        yield server


def store_of(server: ServerProcess) -> Path:
    return server.root_dir / "notebench" / ".notebench" / "state.sqlite"


def points(db: Path) -> set[tuple[object, ...]]:
    """Every metric point of the database, read with a read-only connection."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        return set(conn.execute("SELECT job_id, name, idx, step, value FROM job_metrics"))
    finally:
        conn.close()


def test_a_backup_taken_while_a_job_reports_holds_every_committed_point(
        source: ServerProcess, tmp_path: Path) -> None:
    job = submit(source, steps=3000, delay=0.01)
    live = store_of(source)
    wait_until(lambda: live.exists() and len(points(live)) >= 60, timeout=120)
    before = points(live)
    done = notebench(source.root_dir, "backup", str(tmp_path / "bk"), "--json")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    # the job went on reporting while and after the backup was taken
    wait_until(lambda: len(points(live)) > len(before) + 30, timeout=60)
    assert source.request("GET", f"lifecycle/jobs/{job['id']}")[1]["state"] == "running"
    copy = tmp_path / "bk" / "state.sqlite"
    copied = points(copy)
    assert before <= copied, len(before - copied)
    assert {p[0] for p in copied} == {job["id"]}
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()
    assert manifest["counts"]["metric_points"] == len(copied)
    assert manifest["counts"]["jobs"] == 1
    assert manifest["source"] == str(live.resolve())
    assert {"core", "assets", "jobs", "monitoring"} <= set(manifest["schema"])
    assert sorted(p.name for p in (tmp_path / "bk").iterdir()) == ["manifest.json",
                                                                   "state.sqlite"]
    assert source.request("POST", f"lifecycle/jobs/{job['id']}/control",
                          {"action": "stop"})[0] == 200
    # the tiny notebook leaves its loop on a stop and ends as it would anyway
    assert ended(source, job["id"])["state"] in ("stopped", "succeeded")


def test_restore_is_refused_while_the_server_owns_the_workspace(
        source: ServerProcess, tmp_path: Path) -> None:
    assert notebench(source.root_dir, "backup", str(tmp_path / "bk")).returncode == 0
    refused = notebench(source.root_dir, "restore", str(tmp_path / "bk"))
    assert refused.returncode == 3, refused.stderr
    assert "owns the workspace" in refused.stderr and f":{source.port}/" in refused.stderr
    assert "stop that server first" in refused.stderr
    state = [p.name for p in store_of(source).parent.iterdir()]
    assert not [n for n in state if n.startswith("pre-restore") or "restoring" in n], state
    assert source.request("GET", "info")[1]["workspace"]["read_only"] is False


def test_a_restored_workspace_serves_the_same_jobs_and_assets(
        source: ServerProcess, tmp_path: Path) -> None:
    short = submit(source, steps=4, delay=0.01)
    assert ended(source, short["id"])["state"] == "succeeded"
    upload(source, "datasets", "table.csv", b"a,b\n1,2\n3,4\n")
    assets = assets_of(source)
    jobs = jobs_of(source)
    series = {job_id: series_of(source, job_id) for job_id in jobs}
    assert len(jobs) >= 2 and ("datasets", "table.csv") in assets
    done = notebench(source.root_dir, "backup", str(tmp_path / "bk"))
    assert done.returncode == 0, done.stderr
    assert "backup written to" in done.stdout

    fresh = tmp_path / "fresh"
    shutil.copytree(source.root_dir / "notebench", fresh / "notebench",
                    ignore=shutil.ignore_patterns(".notebench"))
    restored = notebench(fresh, "restore", str(tmp_path / "bk"))
    assert restored.returncode == 0, restored.stderr
    assert f"{len(jobs)} job directories now point into this workspace" in restored.stdout
    server = ServerProcess(fresh, extra=JOB_SETTINGS).start()
    try:
        again = jobs_of(server)
        assert sorted(again) == sorted(jobs)
        for job_id, job in jobs.items():
            same_job(job, again[job_id])
            assert series_of(server, job_id) == series[job_id]
        served = assets_of(server)
        assert {k: a["sha256"] for k, a in served.items()} == {
            k: a["sha256"] for k, a in assets.items()}
        assert all(a["state"] == "present" for a in served.values())
    finally:
        server.stop()
