"""Workspace ownership, read-only second servers, journal modes and seeding."""

from __future__ import annotations

import json
import sqlite3

import pytest

from notebench.server.store import Store
from notebench.server.workspace import Workspace
from tests.server_process import ServerProcess


def test_second_server_on_the_same_workspace_is_read_only(services, jp_root_dir):
    assert services.workspace.read_only is False
    second = ServerProcess(jp_root_dir).start()
    try:
        status, info = second.request("GET", "info")
        assert status == 200
        assert info["workspace"]["read_only"] is True
        assert str(__import__("os").getpid()) in " ".join(info["workspace"]["warnings"])
        status, body = second.request("POST", "hardware/benchmark")
        assert status == 409
        assert body["error"]["code"] == "read_only"
        # it still reads the owner's store
        status, _ = second.request("GET", "hardware")
        assert status == 200
    finally:
        second.stop()


def test_lock_is_released_when_the_owner_stops(tmp_path):
    first = Workspace(tmp_path / "ws")
    first.prepare()
    assert not first.read_only
    second = Workspace(tmp_path / "ws")
    second.prepare()
    assert second.read_only
    first.release()
    third = Workspace(tmp_path / "ws")
    third.prepare()
    assert not third.read_only
    third.release()


def test_network_filesystem_falls_back_to_rollback_journal(tmp_path, monkeypatch):
    from notebench.server import workspace as workspace_module

    monkeypatch.setattr(workspace_module, "filesystem_of",
                        lambda path: {"fs_type": "nfs4", "is_network_fs": True})
    ws = Workspace(tmp_path / "ws")
    ws.prepare()
    assert ws.journal_mode == "delete"
    assert any("network filesystem" in w for w in ws.warnings)
    store = Store(ws.store_path, journal_mode=ws.journal_mode)
    store.open()
    try:
        assert store.submit(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]).result(
            5) == "delete"
    finally:
        store.close()
        ws.release()


def test_local_filesystem_uses_wal(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.prepare()
    assert ws.journal_mode == "wal"
    ws.release()


def test_migrations_are_forward_only(tmp_path):
    path = tmp_path / "state.sqlite"
    store = Store(path)
    store.open()
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=999")
    newer = Store(path)
    with pytest.raises(RuntimeError, match="newer than this notebench"):
        newer.open()


def test_seeding_keeps_user_edits_and_deletions(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.prepare()
    written = ws.seed()
    assert "notebooks/welcome.ipynb" in written
    welcome = ws.path / "notebooks" / "welcome.ipynb"
    dashboard = ws.path / "dashboards" / "dashboard.ipynb"
    welcome.write_text(json.dumps({"edited": True}))
    dashboard.unlink()
    assert ws.seed() == []
    assert json.loads(welcome.read_text()) == {"edited": True}
    assert not dashboard.exists()
    ws.release()


def test_seeding_updates_files_the_user_did_not_touch(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.prepare()
    ws.seed()
    manifest_path = ws.state_dir / "seeded.json"
    manifest = json.loads(manifest_path.read_text())
    welcome = ws.path / "notebooks" / "welcome.ipynb"
    # as if an older notebench had written an older version of the file
    welcome.write_text("old shipped version")
    import hashlib

    manifest["notebooks/welcome.ipynb"] = hashlib.sha256(b"old shipped version").hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    assert ws.seed() == ["notebooks/welcome.ipynb"]
    assert welcome.read_text() != "old shipped version"
    ws.release()
