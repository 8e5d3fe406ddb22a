"""Every line of ``tests/fixtures/path_payloads.txt`` on every endpoint that takes a name or a path.

Three ways per line (``tests/fixtures/path_payloads.md``):

- ``raw``: the line as written in the URL (only what HTTP cannot carry is escaped, ``%``
  sequences are kept, so the server's one decoding applies);
- ``decoded``: the line URL-decoded once (to bytes) by the test, then sent the same way
  (the server decodes a second time);
- ``field``: the line intact in the body: the multipart file name, the JSON ``path``.

Where an endpoint has no URL slot for a name (register, import), ``raw`` and ``decoded``
go into the JSON field, and ``field`` nests the line under a real folder (register) or
makes it absolute under the import folder (import). One server per endpoint; every
line and way is sent to it, then the sentinel tree is compared with its snapshot.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from notebench.server.assets.paths import check_name
from tests.integration.assets.conftest import multipart_body, temp_files

PAYLOADS = [
    line for line in
    (Path(__file__).parents[2] / "fixtures" / "path_payloads.txt").read_text("utf-8")
    .split("\n") if line
]
ALNUM = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
URL_SAFE = b"%/:@!$'()*,;~=&+-._" + ALNUM
QUERY_SAFE = b"%/:@!$'()*,;~-._" + ALNUM
REFUSED = (400, 403, 404)
SECRET = b"top secret, never served\n"


def encode(raw: bytes, safe: bytes) -> str:
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in raw)


def as_written(line: str, safe: bytes = URL_SAFE) -> str:
    return encode(line.encode("utf-8"), safe)


def decoded_once(line: str, safe: bytes = URL_SAFE) -> str:
    return encode(urllib.parse.unquote_to_bytes(line), safe)


# -- the sentinel tree -----------------------------------------------------------------------


@pytest.fixture
def sentinel(workspace: Path, jp_root_dir: Path, tmp_path: Path, import_dir: Path) -> Any:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (jp_root_dir / "secret.txt").write_bytes(SECRET)
    for name in ("models-evil", "modelsX"):
        (workspace / name).mkdir()
        (workspace / name / "secret.txt").write_bytes(SECRET)
    (workspace / "datasets" / "secret.csv").write_bytes(b"secret,1\n")
    for folder in (workspace / "models", workspace / "artifacts", import_dir):
        (folder / "link_out").symlink_to(outside)
        (folder / "dangling_link").symlink_to(outside / "nothing-here")
        (folder / "loop_link").symlink_to("loop_link")
        os.link(outside / "secret.txt", folder / "hardlink_to_outside.bin")
    (workspace / "models" / "sub").mkdir()

    def snapshot(skip: str) -> dict[str, str]:
        state = {}
        for base in (jp_root_dir, outside, import_dir):
            for folder, dirs, files in os.walk(base):
                rel_folder = os.path.relpath(folder, jp_root_dir.parent)
                dirs[:] = [d for d in dirs if d != ".notebench"
                           and os.path.join(folder, d) != str(workspace / skip)]
                for name in dirs + files:
                    path = os.path.join(folder, name)
                    key = os.path.join(rel_folder, name)
                    if os.path.islink(path):
                        state[key] = "link:" + os.readlink(path)
                    elif os.path.isfile(path):
                        state[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                    else:
                        state[key] = "dir"
        return state

    return snapshot


class Sender:
    """Sends requests with exact targets; checks the invariants of every answer."""

    def __init__(self, port: int, base: str, auth: dict[str, str]) -> None:
        self.prefix = f"http://127.0.0.1:{port}{base}notebench/api/"
        self.auth = auth
        self.client = AsyncHTTPClient()
        self.accepted: list[dict[str, Any]] = []

    async def __call__(self, method: str, target: str, *, body: bytes | None = None,
                       headers: dict[str, str] | None = None, what: str = "") -> Any:
        try:
            response = await self.client.fetch(
                self.prefix + target, method=method, body=body, raise_error=True,
                headers={**self.auth, **(headers or {})}, allow_nonstandard_methods=True,
                follow_redirects=False, request_timeout=30)
        except HTTPClientError as exc:
            response = exc.response
        assert response is not None, f"{what}: no response"
        assert response.code < 500, f"{what}: {response.code} {response.body[:300]!r}"
        assert b"Traceback" not in (response.body or b""), what
        return response


@pytest.fixture
def send(jp_http_port: int, jp_base_url: str, jp_auth_header: dict, http_server_client: Any):
    return Sender(jp_http_port, jp_base_url, jp_auth_header)


def refused(response: Any, what: str) -> None:
    assert response.code in REFUSED, f"{what}: {response.code} {response.body[:200]!r}"


def check_stored(asset: dict[str, Any], root: Path, what: str) -> None:
    name = asset["name"]
    assert "/" not in name and "\\" not in name and not name.startswith("."), what
    assert not any(ord(c) < 32 or ord(c) == 127 for c in name), what
    check_name(name)  # the validator accepts what it stored
    stored = Path(asset["path"])
    assert stored.resolve().is_relative_to(root.resolve()), what
    assert stored.parent.resolve() == root.resolve(), what


# -- the endpoints ---------------------------------------------------------------------------


async def test_upload_payloads(send, sentinel, workspace, download):
    before = sentinel("artifacts")
    root = workspace / "artifacts"
    for index, line in enumerate(PAYLOADS):
        content = f"payload {index}\n".encode()
        ways = {
            "raw": ("?name=" + as_written(line, QUERY_SAFE), None, "application/octet-stream"),
            "decoded": ("?name=" + decoded_once(line, QUERY_SAFE), None,
                        "application/octet-stream"),
        }
        form, form_type = multipart_body(line, content)
        ways["field"] = ("", form, form_type)
        for way, (query, body, content_type) in ways.items():
            what = f"upload {way} {line!r}"
            response = await send("POST", "assets/upload/artifacts" + query,
                                  body=body if body is not None else content,
                                  headers={"Content-Type": content_type}, what=what)
            if response.code == 201:
                import json

                asset = json.loads(response.body)
                check_stored(asset, root, what)
                got = await download(asset["id"])
                assert got.body == content, what
                send.accepted.append(asset)
            else:
                # a name longer than a part's header limit is refused before it is read
                too_long = (413,) if way == "field" else ()
                assert response.code in (*REFUSED, 409, *too_long), f"{what}: {response.code}"
    assert sentinel("artifacts") == before
    assert len(send.accepted) > 20  # legal names are accepted, not all refused
    assert temp_files(workspace) == []


async def test_download_payloads(send, sentinel):
    before = sentinel("artifacts")
    for line in PAYLOADS:
        for way, segment in (("raw", as_written(line)), ("decoded", decoded_once(line)),
                             ("field", urllib.parse.quote(line, safe=""))):
            response = await send("GET", "assets/download/" + segment, what=f"download {way}")
            refused(response, f"download {way} {line!r}")
            assert SECRET not in (response.body or b"")
    assert sentinel("artifacts") == before


async def test_list_payloads(send, sentinel, workspace):
    before = sentinel("models")
    for line in PAYLOADS:
        for way, segment in (("raw", as_written(line)), ("decoded", decoded_once(line))):
            response = await send("GET", "assets/list/" + segment, what=f"list {way}")
            refused(response, f"list {way} {line!r}")
        response = await send("GET", "assets/list/models?name="
                              + urllib.parse.quote(line, safe=""), what="list field")
        assert response.code in (200, 400), f"list field {line!r}: {response.code}"
        if response.code == 200:
            import json

            for item in json.loads(response.body)["items"]:
                assert Path(item["path"]).resolve().is_relative_to(
                    (workspace / "models").resolve())
            assert SECRET not in response.body
    assert sentinel("models") == before


async def test_register_payloads(send, sentinel, workspace):
    import json

    before = sentinel("models")
    for line in PAYLOADS:
        for way, value in (("raw", line),
                           ("decoded", urllib.parse.unquote(line, errors="surrogateescape")),
                           ("field", "sub/" + line)):
            body = json.dumps({"category": "models", "path": value}).encode()
            response = await send("POST", "assets/register", body=body,
                                  headers={"Content-Type": "application/json"},
                                  what=f"register {way} {line!r}")
            refused(response, f"register {way} {line!r}")
    assert sentinel("models") == before


async def test_import_payloads(send, sentinel, workspace, import_dir):
    import json

    before = sentinel("artifacts")
    for line in PAYLOADS:
        for way, value in (("raw", line),
                           ("decoded", urllib.parse.unquote(line, errors="surrogateescape")),
                           ("field", f"{import_dir}/{line}")):
            body = json.dumps({"category": "artifacts", "path": value}).encode()
            response = await send("POST", "assets/import", body=body,
                                  headers={"Content-Type": "application/json"},
                                  what=f"import {way} {line!r}")
            refused(response, f"import {way} {line!r}")
    assert sentinel("artifacts") == before


async def test_delete_and_restore_payloads(send, sentinel):
    before = sentinel("artifacts")
    for line in PAYLOADS:
        for way, segment in (("raw", as_written(line)), ("decoded", decoded_once(line)),
                             ("field", urllib.parse.quote(line, safe=""))):
            response = await send("DELETE", "assets/" + segment, what=f"delete {way}")
            refused(response, f"delete {way} {line!r}")
            response = await send("POST", f"assets/trash/{segment}/restore", body=b"{}",
                                  what=f"restore {way}")
            refused(response, f"restore {way} {line!r}")
            response = await send("DELETE", f"assets/trash/{segment}", what=f"purge {way}")
            refused(response, f"purge {way} {line!r}")
    assert sentinel("artifacts") == before


async def test_errors_do_not_reveal_what_exists_outside(send, sentinel, workspace):
    import json

    sentinel("models")
    pairs = [("../secret.txt", "../no-such-secret.txt"),
             ("../models-evil/secret.txt", "../models-evil/nothing.txt"),
             ("link_out/secret.txt", "link_out/nothing.txt"),
             ("/etc/passwd", "/etc/no-such-file")]
    for exists, missing in pairs:
        answers = []
        for value in (exists, missing):
            body = json.dumps({"category": "models", "path": value}).encode()
            response = await send("POST", "assets/register", body=body,
                                  headers={"Content-Type": "application/json"})
            answers.append((response.code, response.body))
        assert answers[0] == answers[1], (exists, answers)
        assert str(workspace.parent).encode() not in answers[0][1]
