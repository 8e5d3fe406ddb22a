"""The secret scrubber: values known, text and bytes scrubbed, files rewritten atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from notebench.server import scrubbing
from notebench.server.scrubbing import SecretScrubber, without_secrets

TOKEN = "0123456789abcdef0123"


def test_known_values_are_replaced_in_text_and_bytes() -> None:
    s = SecretScrubber(environ={"JUPYTERHUB_API_TOKEN": "hub-secret-value", "HOME": "/root"})
    s.add(TOKEN)
    s.add("short")  # too short to scrub safely
    s.add(None)
    assert s.values() == {TOKEN, "hub-secret-value"}
    assert s.scrub_text(f"a {TOKEN} b hub-secret-value c short") == \
        "a [secret] b [secret] c short"
    assert s.scrub_bytes(f"x{TOKEN}{TOKEN}".encode()) == b"x[secret][secret]"
    assert s.scrub_text("nothing here") == "nothing here"
    s.discard(TOKEN)
    assert s.scrub_text(TOKEN) == TOKEN


def test_a_value_is_scrubbed_in_its_json_form_too() -> None:
    s = SecretScrubber(environ={})
    secret = 'tok"en\\with/quotes'
    s.add(secret)
    encoded = json.dumps({"text": f"token={secret}"})
    assert secret not in json.loads(s.scrub_text(encoded))["text"]
    assert json.loads(s.scrub_text(encoded)) == {"text": "token=[secret]"}


def test_environment_values_are_read_when_scrubbing() -> None:
    env: dict[str, str] = {}
    s = SecretScrubber(environ=env)
    assert s.scrub_text("hub-token-1234") == "hub-token-1234"
    env["JUPYTERHUB_API_TOKEN"] = "hub-token-1234"
    assert s.scrub_text("hub-token-1234") == "[secret]"


def test_without_secrets_drops_the_credential_variables() -> None:
    env = {"PATH": "/bin", "NOTEBENCH_SERVER_TOKEN": "a", "JUPYTERHUB_API_TOKEN": "b",
           "JUPYTER_TOKEN": "c", "NOTEBENCH_SERVER_URL": "http://h/"}
    assert without_secrets(env) == {"PATH": "/bin", "NOTEBENCH_SERVER_URL": "http://h/"}


@pytest.mark.parametrize("offset", [0, 1, 5, 19, 20])
def test_file_is_rewritten_atomically_across_chunk_boundaries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset: int) -> None:
    monkeypatch.setattr(scrubbing, "CHUNK", 64)
    s = SecretScrubber(environ={})
    s.add(TOKEN)
    # secrets straddling every chunk boundary, and one at the very end
    body = b"".join(b"." * (64 - offset) + TOKEN.encode() + b"\n" for _ in range(50))
    body += TOKEN.encode()
    path = tmp_path / "papermill.log"
    path.write_bytes(body)
    path.chmod(0o640)
    before = os.stat(path).st_ino
    assert s.scrub_file(path) is True
    data = path.read_bytes()
    assert TOKEN.encode() not in data
    assert data == body.replace(TOKEN.encode(), b"[secret]")
    assert os.stat(path).st_ino != before  # replaced, never written in place
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["papermill.log"]  # no temp left
    assert s.scrub_file(path) is False  # clean now: left alone


def test_clean_file_is_left_alone_and_a_copy_leaves_the_source(tmp_path: Path) -> None:
    s = SecretScrubber(environ={})
    s.add(TOKEN)
    clean = tmp_path / "clean.log"
    clean.write_bytes(b"nothing secret\n")
    inode = clean.stat().st_ino
    assert s.scrub_file(clean) is False
    assert clean.stat().st_ino == inode
    live = tmp_path / "live.log"
    live.write_text(f"token {TOKEN}\n")
    copy = tmp_path / ".served" / "live.log"
    assert s.scrub_file(live, copy) is True
    assert live.read_text() == f"token {TOKEN}\n"
    assert copy.read_text() == "token [secret]\n"
    assert s.scrub_file(tmp_path / "missing.log") is False
