"""Job tokens: minted from the workspace's key, resolved while the job is allowed, parsed
from headers; the key file (0600, atomic, the same after a restart)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from notebench.server.credentials import (
    JOB_PREFIX,
    SECRET_BYTES,
    JobTokens,
    job_token_from_header,
    load_secret,
    token_from_header,
)
from notebench.server.services import JOB_TOKEN_KEY, job_tokens_of
from notebench.server.workspace import Workspace

JOB = "j-0123456789ab"
OTHER = "j-ba9876543210"
SECRET = bytes(range(SECRET_BYTES))


def test_a_minted_token_resolves_while_its_job_is_allowed() -> None:
    tokens = JobTokens(SECRET)
    token = tokens.mint(JOB)
    assert token.startswith(f"{JOB_PREFIX}{JOB}_")
    assert len(token) == len(JOB_PREFIX) + len(JOB) + 1 + 43
    assert tokens.mint(JOB) == token  # derived, not random
    assert tokens.resolve(token) is None  # not allowed yet
    assert tokens.job_of(token) == JOB
    tokens.allow(JOB)
    assert tokens.resolve(token) == JOB
    assert tokens.revoke(JOB) is True
    assert tokens.resolve(token) is None
    assert tokens.revoke(JOB) is False


def test_a_wrong_mac_or_another_jobs_id_does_not_resolve() -> None:
    tokens = JobTokens(SECRET)
    tokens.allow(JOB)
    tokens.allow(OTHER)
    token = tokens.mint(JOB)
    mac = token[-43:]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert tokens.resolve(flipped) is None
    assert tokens.resolve(f"{JOB_PREFIX}{OTHER}_{mac}") is None  # A's mac, B's id
    assert tokens.resolve(tokens.mint(OTHER)) == OTHER
    assert JobTokens(b"another secret of 32 bytes......").resolve(token) is None


@pytest.mark.parametrize("token", [
    "", "nbj_", "nbj_j-0123456789ab", "nbj_j-0123456789ab_", "nbj_j-0123456789ab_short",
    "nbj_not-a-job_" + "A" * 43, "nbj_j-0123456789ab-" + "A" * 43, "nbv_" + "A" * 60,
    "nbj_j-0123456789abX" + "A" * 43, "nbj_j-0123456789ab_" + "A" * 44,
])
def test_malformed_tokens_do_not_resolve(token: str) -> None:
    tokens = JobTokens(SECRET)
    tokens.allow(JOB)
    assert tokens.resolve(token) is None


def test_only_job_ids_get_tokens_and_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        JobTokens(SECRET).mint("../etc")
    with pytest.raises(ValueError):
        JobTokens(b"short")


@pytest.mark.parametrize(("header", "expected"), [
    ("token nbj_j-0123456789ab_abc-_", "nbj_j-0123456789ab_abc-_"),
    ("Bearer nbj_x", "nbj_x"),
    ("  TOKEN   nbj_x  ", "nbj_x"),
    ("token nbv_x", None),
    ("token nbj_x y", None),
    ("token nbj_x/y", None),
    ("nbj_x", None),
    ("token abc", None),
    ("", None),
    (None, None),
])
def test_job_tokens_are_recognised_in_headers(header: str | None, expected: str | None) -> None:
    assert job_token_from_header(header) == expected


def test_the_viewer_token_parser_ignores_job_tokens() -> None:
    assert token_from_header("token nbj_x") is None
    assert token_from_header("token nbv_x") == "nbv_x"


def test_the_key_file_is_0600_and_the_same_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "job-token.key"
    first = load_secret(path)
    assert len(first) == SECRET_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path) == first
    # two servers (a restart) from the same file: the same tokens
    before, after = JobTokens(load_secret(path)), JobTokens(load_secret(path))
    after.allow(JOB)
    assert after.resolve(before.mint(JOB)) == JOB
    assert [p.name for p in tmp_path.iterdir()] == ["job-token.key"]


def test_a_readable_key_is_made_private_and_a_torn_one_replaced(tmp_path: Path) -> None:
    path = tmp_path / "job-token.key"
    path.write_bytes(SECRET)
    path.chmod(0o644)
    assert load_secret(path) == SECRET
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_bytes(SECRET[:7])
    replaced = load_secret(path)
    assert len(replaced) == SECRET_BYTES and path.read_bytes() == replaced


def test_a_crash_while_writing_the_key_leaves_no_half_key(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "job-token.key"

    def crash(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        load_secret(path)
    assert list(tmp_path.iterdir()) == []


def test_the_workspace_keeps_the_key_and_a_read_only_server_writes_none(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    workspace.prepare()
    try:
        tokens = job_tokens_of(workspace)
        key = workspace.state_dir / JOB_TOKEN_KEY
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        again = job_tokens_of(workspace)
        again.allow(JOB)
        assert again.resolve(tokens.mint(JOB)) == JOB
        reader = Workspace(tmp_path / "other", read_only=True)
        job_tokens_of(reader)
        assert not (tmp_path / "other").exists()
    finally:
        workspace.release()
