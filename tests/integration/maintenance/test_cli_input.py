"""The ``notebench backup|restore|doctor`` commands on bad input, no server: clear
messages, non-zero exit statuses, nothing half-written; and their help."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.maintenance.conftest import notebench
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401


def test_the_commands_are_listed_and_their_help_is_the_maintenance_module(
        tmp_path: Path) -> None:
    listed = notebench(tmp_path, "--help")
    assert listed.returncode == 0
    for command in ("backup", "restore", "doctor"):
        assert command in listed.stdout
    assert "python -m notebench.server.maintenance" in listed.stdout
    for command, words in (("backup", "DEST"), ("restore", "SRC"), ("doctor", "--rebuild")):
        helped = notebench(tmp_path, command, "--help")
        assert helped.returncode == 0, helped.stderr
        assert words in helped.stdout and "--root-dir" in helped.stdout
    assert notebench(tmp_path, "backup").returncode == 2  # DEST is required


def test_bad_input_is_refused_with_a_message_and_leaves_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    no_store = notebench(empty, "backup", str(tmp_path / "bk"))
    assert no_store.returncode == 2 and "no store at" in no_store.stderr
    assert not (tmp_path / "bk").exists()
    doctor = notebench(empty, "doctor")
    assert doctor.returncode == 1 and "no store" in doctor.stdout

    root = tmp_path / "root"
    root.mkdir()
    made = notebench(root, "doctor", "--rebuild", "--json")  # an empty workspace's store
    assert made.returncode == 0, made.stdout + made.stderr
    assert json.loads(made.stdout)["ok"] is True
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("mine")
    refused = notebench(root, "backup", str(taken))
    assert refused.returncode == 2 and "exists and is not empty" in refused.stderr
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "root", "taken"]

    store = root / "notebench" / ".notebench" / "state.sqlite"
    before = store.read_bytes()
    missing = notebench(root, "restore", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no backup at" in missing.stderr
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "manifest.json").write_text("{not json")
    (garbage / "state.sqlite").write_bytes(b"not a database")
    bad = notebench(root, "restore", str(garbage))
    assert bad.returncode == 2 and "is not a notebench backup" in bad.stderr
    assert store.read_bytes() == before
    assert sorted(p.name for p in store.parent.iterdir() if "restor" in p.name) == []


def test_a_store_that_is_not_a_database_is_reported_not_overwritten(tmp_path: Path) -> None:
    store = tmp_path / "notebench" / ".notebench" / "state.sqlite"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"\x07 not a database" * 300)
    doctor = notebench(tmp_path, "doctor", "--json")
    assert doctor.returncode == 1
    assert [p["kind"] for p in json.loads(doctor.stdout)["problems"]] == ["store_unreadable"]
    rebuild = notebench(tmp_path, "doctor", "--rebuild")
    assert rebuild.returncode == 2 and "move it aside" in rebuild.stderr
    backup = notebench(tmp_path, "backup", str(tmp_path / "bk"))
    assert backup.returncode == 2 and "cannot be backed up" in backup.stderr
    assert "Traceback" not in backup.stderr + rebuild.stderr
    assert store.read_bytes() == b"\x07 not a database" * 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebench"]
