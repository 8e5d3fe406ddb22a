"""The server's periodic backups (``c.NotebenchApp.backup_dir``, ``backup_interval``,
``backup_keep``): they appear while the server runs, each sound, and are pruned to the
newest ``keep``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from notebench.server.maintenance.dbfacts import sha256_of
from notebench.server.maintenance.periodic import backups
from tests.server_process import ServerProcess
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from tests.waiting import wait_until


def test_periodic_backups_appear_and_are_pruned(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    folder = tmp_path / "backups"
    server = ServerProcess(root, extra=[f"--NotebenchApp.backup_dir={folder}",
                                        "--NotebenchApp.backup_interval=1",
                                        "--NotebenchApp.backup_keep=2"]).start()
    seen: set[str] = set()

    def pruned() -> bool:
        names = [p.name for p in backups(folder)]
        seen.update(names)
        return len(seen) >= 4 and len(names) == 2

    try:
        wait_until(pruned, timeout=60, interval=0.1)
    finally:
        server.stop()
    kept = backups(folder)
    assert len(kept) == 2 and {p.name for p in kept} <= seen
    assert not [p.name for p in folder.iterdir() if p not in kept]  # no partial left
    for path in kept:
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["database"]["sha256"] == sha256_of(path / "state.sqlite")[0]
        assert manifest["workspace"] == str((root / "notebench").resolve())
        conn = sqlite3.connect(path / "state.sqlite")
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
    assert "backup" in server.log_path.read_text() and "written" in server.log_path.read_text()
