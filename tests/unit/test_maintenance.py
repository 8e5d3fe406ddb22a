"""Backup, restore and the periodic backup on a real store (the server's ``Store`` with
every capability's migrations) and real files, no server process: consistency while a
writer commits, refusals that leave nothing behind, the owner lock, pruning on a
``ManualClock``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from notebench.server.capability import load_capabilities
from notebench.server.clock import ManualClock
from notebench.server.jobs import store as jobstore
from notebench.server.maintenance.backup import DATABASE, MANIFEST, take_backup
from notebench.server.maintenance.dbfacts import code_schema_versions, sha256_of
from notebench.server.maintenance.errors import EXIT_INVALID, EXIT_OWNED, MaintenanceError
from notebench.server.maintenance.periodic import PeriodicBackup, backups
from notebench.server.maintenance.rebuild import find_copy
from notebench.server.maintenance.restore import restore_backup
from notebench.server.store import Store
from notebench.server.workspace import Workspace


def open_store(workspace: Path) -> Store:
    store = Store(Workspace(workspace).store_path,
                  schemas={c.name: c.schema for c in load_capabilities() if c.schema})
    store.open()
    return store


def job_row(job_id: str, job_dir: Path) -> dict[str, object]:
    return {"id": job_id, "kind": "papermill", "name": job_id, "state": "succeeded",
            "job_dir": str(job_dir), "created": 1.0, "updated": 1.0,
            "final_metrics": {"loss": 0.5}}


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    """A workspace whose store holds one job with three points (closed again)."""
    path = tmp_path / "ws"
    store = open_store(path)
    row = job_row("j-000000000001", path / "artifacts" / "jobs" / "j-000000000001")
    store.submit(lambda conn: jobstore.insert_job(conn, row)).result()
    store.submit(lambda conn: jobstore.insert_metrics(conn, [
        ("j-000000000001", "loss", i, i, float(i), 1.0 / (i + 1), None) for i in range(3)
    ])).result()
    store.close()
    yield path


def points(db: Path) -> set[tuple[object, ...]]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return set(conn.execute("SELECT job_id, name, idx, value FROM job_metrics"))
    finally:
        conn.close()


def test_a_backup_taken_while_a_writer_commits_holds_all_committed_before(
        tmp_path: Path, workspace: Path) -> None:
    store = open_store(workspace)
    stop = threading.Event()

    def write() -> None:
        index = 3
        while not stop.is_set():
            rows = [("j-000000000001", "loss", index + k, None, time.time(), float(k), None)
                    for k in range(50)]
            store.submit(lambda conn, r=rows: jobstore.insert_metrics(conn, r)).result()
            index += 50

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.2)
        before = points(store.path)
        manifest = take_backup(store.path, tmp_path / "bk", workspace=workspace)
        time.sleep(0.1)
        after = points(store.path)
    finally:
        stop.set()
        writer.join()
        store.close()
    copied = points(tmp_path / "bk" / DATABASE)
    assert before <= copied <= after and len(after) > len(before)
    assert manifest["counts"]["metric_points"] == len(copied)
    assert manifest["counts"]["jobs"] == 1
    assert manifest["schema"] == code_schema_versions()
    assert manifest["workspace"] == str(workspace)
    digest, size = sha256_of(tmp_path / "bk" / DATABASE)
    assert manifest["database"] == {"file": DATABASE, "sha256": digest, "size": size,
                                    "integrity_check": "ok"}
    assert json.loads((tmp_path / "bk" / MANIFEST).read_text()) == manifest
    assert sorted(p.name for p in (tmp_path / "bk").iterdir()) == [MANIFEST, DATABASE]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_destination_that_exists_is_refused_and_nothing_is_left(
        tmp_path: Path, workspace: Path) -> None:
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "note.txt").write_text("mine")
    with pytest.raises(MaintenanceError, match="exists and is not empty") as refused:
        take_backup(Workspace(workspace).store_path, dest)
    assert refused.value.exit_status == EXIT_INVALID
    assert [p.name for p in dest.iterdir()] == ["note.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(MaintenanceError, match="is not a folder"):
        take_backup(Workspace(workspace).store_path, tmp_path / "file")
    with pytest.raises(MaintenanceError, match="no store"):
        take_backup(tmp_path / "nowhere" / "state.sqlite", tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken", "ws"]
    empty = tmp_path / "empty"
    empty.mkdir()
    take_backup(Workspace(workspace).store_path, empty)  # an empty folder is taken
    assert (empty / MANIFEST).is_file()


def test_restore_rebases_job_directories_and_keeps_the_previous_store(
        tmp_path: Path, workspace: Path) -> None:
    take_backup(Workspace(workspace).store_path, tmp_path / "bk", workspace=workspace)
    other = tmp_path / "elsewhere"
    open_store(other).close()  # a store of its own, to be set aside
    done = restore_backup(tmp_path / "bk", other)
    assert done["job_dirs_moved"] == 1
    assert points(Workspace(other).store_path) == points(Workspace(workspace).store_path)
    previous = Path(done["previous"])
    assert previous.parent == other / ".notebench" and (previous / "state.sqlite").is_file()
    conn = sqlite3.connect(Workspace(other).store_path)
    try:
        job_dir = conn.execute("SELECT job_dir FROM jobs").fetchone()[0]
    finally:
        conn.close()
    assert job_dir == str(other / "artifacts" / "jobs" / "j-000000000001")
    leftovers = [p.name for p in (other / ".notebench").iterdir() if "restoring" in p.name]
    assert leftovers == []


def test_restore_is_refused_while_the_workspace_is_owned(
        tmp_path: Path, workspace: Path) -> None:
    take_backup(Workspace(workspace).store_path, tmp_path / "bk")
    owner = Workspace(workspace)
    owner.prepare()  # what a server does: the owner lock, held
    owner.record_owner("http://127.0.0.1:1/")
    before = sha256_of(owner.store_path)
    try:
        with pytest.raises(MaintenanceError, match=r"owns the workspace .*127\.0\.0\.1:1") as no:
            restore_backup(tmp_path / "bk", workspace)
        assert no.value.exit_status == EXIT_OWNED
    finally:
        owner.release()
    assert sha256_of(owner.store_path) == before
    assert not list((workspace / ".notebench").glob("pre-restore-*"))


def _rewrite(bk: Path, change: object) -> None:
    manifest = json.loads((bk / MANIFEST).read_text())
    change(manifest)  # type: ignore[operator]
    (bk / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, message", [
    ("no manifest", "is not a notebench backup"),
    ("garbage manifest", "is not a notebench backup"),
    ("not a backup manifest", "is not a notebench backup manifest"),
    ("changed database", "does not match its manifest"),
    ("newer schema", "newer than this notebench's \\(jobs 99 > "),
    ("no database", "has no state.sqlite"),
    ("not sqlite", "is not a usable SQLite database"),
    ("missing", "no backup at"),
])
def test_a_bad_backup_is_refused_and_the_store_is_untouched(
        tmp_path: Path, workspace: Path, damage: str, message: str) -> None:
    bk = tmp_path / "bk"
    take_backup(Workspace(workspace).store_path, bk)
    db = bk / DATABASE
    if damage == "no manifest":
        (bk / MANIFEST).unlink()
    elif damage == "garbage manifest":
        (bk / MANIFEST).write_bytes(b"\x00\xffnot json")
    elif damage == "not a backup manifest":
        (bk / MANIFEST).write_text('{"format": "something else"}')
    elif damage == "changed database":
        with db.open("r+b") as handle:
            handle.seek(200)
            handle.write(b"\x01")
    elif damage == "newer schema":
        conn = sqlite3.connect(db)
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema:jobs'")
        conn.commit()
        conn.close()
        digest, size = sha256_of(db)
        _rewrite(bk, lambda m: m["database"].update(sha256=digest, size=size))
    elif damage == "no database":
        db.unlink()
    elif damage == "not sqlite":
        db.write_bytes(b"not a database, but the manifest says it is" * 100)
        digest, size = sha256_of(db)
        _rewrite(bk, lambda m: m["database"].update(sha256=digest, size=size))
    elif damage == "missing":
        bk = tmp_path / "nothing-here"
    store_path = Workspace(workspace).store_path
    before = sha256_of(store_path)
    with pytest.raises(MaintenanceError, match=message) as refused:
        restore_backup(bk, workspace)
    assert refused.value.exit_status == EXIT_INVALID
    assert sha256_of(store_path) == before
    state = sorted(p.name for p in (workspace / ".notebench").iterdir())
    assert not [n for n in state if "restoring" in n or n.startswith("pre-restore")], state


def test_periodic_backups_appear_and_are_pruned_on_a_manual_clock(
        tmp_path: Path, workspace: Path) -> None:
    clock = ManualClock()
    folder = tmp_path / "backups"

    async def run() -> list[list[str]]:
        periodic = PeriodicBackup(Workspace(workspace).store_path, folder, interval=3600,
                                  keep=2, workspace=workspace, clock=clock)
        periodic.start()
        seen = []
        try:
            for expected in (1, 2, 3, 4):
                deadline = time.monotonic() + 20
                while periodic.taken < expected:
                    assert time.monotonic() < deadline, periodic.last_error
                    await asyncio.sleep(0.02)
                seen.append([p.name for p in backups(folder)])
                await asyncio.sleep(0.1)
                assert periodic.taken == expected  # nothing more until the clock moves
                clock.advance(3600)
        finally:
            await periodic.stop()
        return seen

    seen = asyncio.run(run())
    assert [len(names) for names in seen] == [1, 2, 2, 2]
    assert seen[2][0] == seen[1][1] and seen[3][0] == seen[2][1]  # the oldest went
    for path in backups(folder):
        manifest = json.loads((path / MANIFEST).read_text())
        assert manifest["database"]["sha256"] == sha256_of(path / DATABASE)[0]


def test_the_first_periodic_backup_waits_for_the_newest_one(
        tmp_path: Path, workspace: Path) -> None:
    """A server restarted within the interval does not back up again at once."""
    clock = ManualClock()
    folder = tmp_path / "backups"

    async def run(expect_now: bool) -> int:
        periodic = PeriodicBackup(Workspace(workspace).store_path, folder, interval=3600,
                                  keep=3, clock=clock)
        periodic.start()
        await asyncio.sleep(0.3)
        taken = periodic.taken
        await periodic.stop()
        assert (taken == 1) is expect_now
        return taken

    asyncio.run(run(True))
    clock.advance(1800)
    asyncio.run(run(False))
    clock.advance(1900)
    asyncio.run(run(True))
    assert len(backups(folder)) == 2


def test_a_jobs_model_is_found_by_its_link_or_its_copy(tmp_path: Path) -> None:
    """``doctor --rebuild`` registers the model the server had linked, not a new one."""
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    src = tmp_path / "job" / "model.safetensors"
    src.parent.mkdir()
    src.write_bytes(b"weights" * 100)
    (models / "other.safetensors").write_bytes(b"other!!" * 100)  # same size, not it
    assert find_copy(models, src) is None
    os.link(src, models / "sub" / "tiny.safetensors")
    assert find_copy(models, src) == models / "sub" / "tiny.safetensors"
    os.link(src, tmp_path / "elsewhere")  # a third link: not all the registry's
    assert find_copy(models, src) is None
    (tmp_path / "elsewhere").unlink()
    (models / "sub" / "tiny.safetensors").unlink()
    shutil.copyfile(src, models / "copied.safetensors")  # across filesystems: a copy
    assert find_copy(models, src) == models / "copied.safetensors"
