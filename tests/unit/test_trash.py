"""The one trash (``notebench.server.trash``) on real files: both slot layouts, restoring
without overwriting, purging, usage and the retention cutoff."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from notebench.server.errors import ApiError
from notebench.server.trash import TRASH_DIR, Trash, dir_size, retention_cutoff


def content_trash(root: Path) -> Trash:
    """The assets' layout: the bytes as ``content`` next to the ``asset.json`` record."""
    return Trash(root / TRASH_DIR, content="content", sidecar="asset.json")


def test_an_item_moves_in_with_its_record_and_back(tmp_path: Path) -> None:
    trash = content_trash(tmp_path)
    (tmp_path / "a.csv").write_bytes(b"1,2\n")
    slot = trash.move_in("A1", tmp_path / "a.csv", {"id": "A1", "rel_path": "a.csv"})
    assert slot == tmp_path / ".trash" / "A1"
    assert not (tmp_path / "a.csv").exists()
    assert (slot / "content").read_bytes() == b"1,2\n"
    assert orjson.loads((slot / "asset.json").read_bytes()) == {"id": "A1",
                                                                "rel_path": "a.csv"}
    trash.restore("A1", tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_bytes() == b"1,2\n"
    assert os.stat(tmp_path / "b.csv").st_nlink == 1  # moved, not left linked in the trash
    assert not slot.exists()


def test_a_folder_slot_is_the_item_itself(tmp_path: Path) -> None:
    trash = Trash(tmp_path / "runs" / TRASH_DIR)
    job = tmp_path / "runs" / "J1"
    job.mkdir(parents=True)
    (job / "job.json").write_text("{}")
    (job / "output.ipynb").write_text("nb")
    slot = trash.move_in("J1", job)
    assert (tmp_path / "runs" / ".trash" / "J1" / "output.ipynb").read_text() == "nb"
    assert sorted(p.name for p in slot.iterdir()) == ["job.json", "output.ipynb"]
    assert not job.exists()
    trash.restore("J1", job)
    assert (job / "output.ipynb").read_text() == "nb" and not slot.exists()


def test_nothing_to_move_leaves_an_empty_slot(tmp_path: Path) -> None:
    trash = Trash(tmp_path / TRASH_DIR)
    slot = trash.move_in("J2", None)
    assert slot.is_dir() and list(slot.iterdir()) == []


def test_moving_in_again_replaces_the_old_slot(tmp_path: Path) -> None:
    trash = content_trash(tmp_path)
    (tmp_path / "x").write_bytes(b"old")
    trash.move_in("A", tmp_path / "x", {"v": 1})
    (tmp_path / "x").write_bytes(b"new")
    trash.move_in("A", tmp_path / "x", {"v": 2})
    assert (trash.slot("A") / "content").read_bytes() == b"new"
    assert orjson.loads((trash.slot("A") / "asset.json").read_bytes()) == {"v": 2}


@pytest.mark.parametrize("occupant", ["file", "folder", "empty folder", "link"])
@pytest.mark.parametrize("item", ["file", "folder"])
def test_restore_never_overwrites(tmp_path: Path, item: str, occupant: str) -> None:
    trash = content_trash(tmp_path)
    source = tmp_path / "item"
    if item == "file":
        source.write_bytes(b"trashed")
    else:
        source.mkdir()
    trash.move_in("A", source, {})
    if occupant == "file":
        source.write_bytes(b"mine")
    elif occupant == "link":
        source.symlink_to(tmp_path / "nowhere")
    else:
        source.mkdir()
        if occupant == "folder":
            (source / "f").write_bytes(b"mine")
    taken = ApiError(409, "name_exists", "taken")
    with pytest.raises(ApiError) as raised:
        trash.restore("A", source, taken=taken)
    assert raised.value is taken
    assert os.path.lexists(trash.item("A"))  # still in the trash
    if occupant == "file":
        assert source.read_bytes() == b"mine"
    elif occupant == "folder":
        assert (source / "f").read_bytes() == b"mine"
    elif occupant == "link":
        assert source.is_symlink()
    else:
        assert source.is_dir() and list(source.iterdir()) == []


def test_the_default_refusal_is_name_exists(tmp_path: Path) -> None:
    trash = Trash(tmp_path / TRASH_DIR)
    (tmp_path / "J").mkdir()
    trash.move_in("J", tmp_path / "J")
    (tmp_path / "J").mkdir()
    with pytest.raises(ApiError) as raised:
        trash.restore("J", tmp_path / "J")
    assert (raised.value.status, raised.value.code) == (409, "name_exists")


@pytest.mark.parametrize("layout", ["content", "slot"])
def test_a_link_in_the_slot_is_not_restored(tmp_path: Path, layout: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    if layout == "content":
        trash = content_trash(tmp_path)
        trash.slot("A").mkdir(parents=True)
        (trash.slot("A") / "content").symlink_to(outside)
    else:
        trash = Trash(tmp_path / TRASH_DIR)
        trash.folder.mkdir()
        trash.slot("A").symlink_to(outside)
    missing = ApiError(404, "not_found", "gone")
    with pytest.raises(ApiError) as raised:
        trash.restore("A", tmp_path / "back", missing=missing)
    assert raised.value is missing
    assert not os.path.lexists(tmp_path / "back")
    assert (outside / "secret").read_bytes() == b"s"


def test_a_file_as_slot_is_not_restored_as_a_folder_item(tmp_path: Path) -> None:
    trash = Trash(tmp_path / TRASH_DIR)
    trash.folder.mkdir()
    trash.slot("J").write_bytes(b"stray")
    with pytest.raises(ApiError) as raised:
        trash.restore("J", tmp_path / "J")
    assert (raised.value.status, raised.value.code) == (404, "not_in_trash")
    assert not (tmp_path / "J").exists()


def test_restoring_what_is_not_there_is_404(tmp_path: Path) -> None:
    with pytest.raises(ApiError) as raised:
        content_trash(tmp_path).restore("nope", tmp_path / "x")
    assert raised.value.status == 404


def test_purge_deletes_the_slot_whatever_it_is(tmp_path: Path) -> None:
    trash = content_trash(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x")
    trash.move_in("A", tmp_path / "d", {})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"k")
    trash.slot("L").symlink_to(outside)
    trash.purge("A")
    trash.purge("L")
    trash.purge("never-there")
    assert list(trash.folder.iterdir()) == []
    assert (outside / "keep").read_bytes() == b"k"  # a link is removed, never followed


def test_usage_counts_slots_files_and_bytes_without_sidecars(tmp_path: Path) -> None:
    trash = content_trash(tmp_path)
    assert trash.usage().items == 0  # no trash folder yet
    (tmp_path / "a").write_bytes(b"12345")
    trash.move_in("A", tmp_path / "a", {"id": "A"})
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"123")
    os.link(tmp_path / "d" / "f", tmp_path / "d" / "g")  # one file, two names
    (tmp_path / "d" / "l").symlink_to(tmp_path / "a")  # a link: not followed
    (tmp_path / "d" / "asset.json").write_bytes(b"{}")  # an item's own file, not a sidecar
    trash.move_in("D", tmp_path / "d", {"id": "D"})
    (trash.folder / "stray").write_bytes(b"xx")  # not a slot
    usage = trash.usage()
    assert (usage.items, usage.files, usage.bytes) == (2, 3, 5 + 3 + 2)


def test_dir_size_counts_hard_links_once_and_follows_no_link(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10)
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c").write_bytes(b"y" * 4)
    (tmp_path / "big").symlink_to(tmp_path / "a")
    assert dir_size(tmp_path) == 14


def test_retention_cutoff_uses_the_given_now_and_refuses_negative_days() -> None:
    assert retention_cutoff(2, now=1_000_000.0) == 1_000_000.0 - 2 * 86400
    assert retention_cutoff(0, now=5.0) == 5.0
    with pytest.raises(ApiError) as raised:
        retention_cutoff(-0.5, now=5.0)
    assert (raised.value.status, raised.value.code) == (400, "invalid_request")
    assert raised.value.message == "older_than_days must not be negative"
    with pytest.raises(ApiError) as raised:
        retention_cutoff(-1, code="invalid_parameter")
    assert raised.value.code == "invalid_parameter"
