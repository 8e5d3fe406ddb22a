"""The one path validator, on its own (no server)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from notebench.server.assets.paths import (
    check_name,
    check_relpath,
    locate,
    open_beneath,
    relative_to_root,
)
from notebench.server.errors import ApiError


@pytest.mark.parametrize("name", ["model.pt", "café.pt", "a b.pt", "100%.pt", "%zz.pt",
                                  "CON", "a:b.pt", "semi;colon.pt", "-rf", "\uff23\uff2f\uff2e",
                                  "model.pt.", "$(id).pt", "ﬁle.pt"])
def test_legal_names_pass(name):
    assert check_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", ".trash",
                                  "x\x00y", "evil\r\nX: 1", "tab\tname", "\x7f.pt",
                                  "\u202egpj.pt", "model\u200b.pt", "\u200b", " model.pt",
                                  "model.pt ", "%2e%2e%2fx", "a%00b", "..\uff0fsecret.txt",
                                  "\uff0e\uff0e", "\u2025", "a" * 256 + ".pt", "€" * 90])
def test_illegal_names_are_400(name):
    with pytest.raises(ApiError) as info:
        check_name(name)
    assert info.value.status == 400


def test_hidden_names_follow_allow_hidden_but_reserved_names_never_pass():
    assert check_name(".env", allow_hidden=True) == ".env"
    with pytest.raises(ApiError):
        check_name(".trash", allow_hidden=True)
    with pytest.raises(ApiError):
        check_name(".notebench-tmp", allow_hidden=True)


def test_names_are_stored_nfc():
    assert check_name("cafe\u0301.pt") == "caf\u00e9.pt"


@pytest.mark.parametrize("path", ["a/b/c.csv", "sub/model.pt"])
def test_relative_paths(path):
    assert check_relpath(path) == PurePosixPath(path)


@pytest.mark.parametrize("path", ["/abs", "~/x", "a//b", "a/./b", "a/../b", "a/", "a\\b",
                                  "/".join(["d"] * 65), "a/.git/config"])
def test_bad_relative_paths(path):
    with pytest.raises(ApiError) as info:
        check_relpath(path)
    assert info.value.status == 400


def test_locate_refuses_links_and_escapes_with_one_answer(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "dir").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("s")
    (root / "dir" / "file").write_text("f")
    (root / "out").symlink_to(outside)
    (root / "file-link").symlink_to(root / "dir" / "file")
    assert locate(root, PurePosixPath("dir/file")) == (root / "dir" / "file").resolve()
    answers = set()
    for rel in ("out/secret", "out/nothing", "file-link", "missing", "dir/file/below"):
        with pytest.raises(ApiError) as info:
            locate(root, PurePosixPath(rel))
        answers.add((info.value.status, info.value.message))
    assert answers == {(404, "no such asset path in this root")}
    assert locate(root, PurePosixPath("dir/new"), must_exist=False).name == "new"


def test_a_root_that_is_itself_a_link_works(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("x")
    (tmp_path / "alias").symlink_to(real)
    assert locate(tmp_path / "alias", PurePosixPath("f")) == real / "f"


def test_open_beneath_never_follows_a_link(tmp_path):
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"ok")
    (tmp_path / "secret").write_bytes(b"no")
    (root / "d" / "l").symlink_to(tmp_path / "secret")
    (root / "dl").symlink_to(tmp_path)
    fd = open_beneath(root, PurePosixPath("d/f"))
    assert os.read(fd, 10) == b"ok"
    os.close(fd)
    for rel in ("d/l", "dl/secret"):
        with pytest.raises(ApiError) as info:
            open_beneath(root, PurePosixPath(rel))
        assert info.value.status == 404


def test_relative_to_root_is_not_a_string_prefix_check(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    assert relative_to_root(root, root / "a" / "b.pt") == PurePosixPath("a/b.pt")
    for other in (tmp_path / "models-evil" / "x", tmp_path / "modelsX", root, Path("/etc")):
        with pytest.raises(ApiError):
            relative_to_root(root, other)
