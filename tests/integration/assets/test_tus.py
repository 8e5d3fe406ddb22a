"""tus 1.0.0 on the resumable upload routes, spoken by a real tus client (tuspy) to a server
in its own process: an interrupted 20 MiB upload resumed by a new uploader, every chunk
checked (``Upload-Checksum``) and the whole sha256 checked on the server; then the protocol's
edges by hand: checksum mismatch, termination, discovery, versions, metadata, limits."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server_process import ServerProcess
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401

requests = pytest.importorskip("requests")
tus_client = pytest.importorskip("tusclient.client")
from tusclient.uploader import Uploader  # noqa: E402

MIB = 1 << 20
TUS = {"Tus-Resumable": "1.0.0"}
SESSIONS = 6  # NotebenchApp.upload_sessions_per_user of the test server


class Sha256Uploader(Uploader):
    """tuspy's uploader with sha256 chunk checksums (it sends sha1 by default)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("tus") / "root"
    root.mkdir()
    proc = ServerProcess(root, extra=[f"--NotebenchApp.upload_sessions_per_user={SESSIONS}",
                                      "--NotebenchAssetRegistry.size_limits="
                                      "{'checkpoints': 1048576}"])
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def auth(server: ServerProcess) -> dict[str, str]:
    return {"Authorization": f"token {server.token}"}


@pytest.fixture(scope="module")
def endpoint(server: ServerProcess) -> str:
    return f"{server.url}notebench/api/assets/uploads"


def data_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def metadata(**values: str) -> str:
    return ",".join(f"{key} {b64(value)}" for key, value in values.items())


def create(endpoint: str, auth: dict[str, str], size: int, name: str,
           category: str = "artifacts", **extra: str) -> Any:
    return requests.post(endpoint, headers={**auth, **TUS, "Upload-Length": str(size),
                                            "Upload-Metadata": metadata(
                                                filename=name, category=category, **extra)})


def created(endpoint: str, auth: dict[str, str], size: int, name: str, **extra: str) -> str:
    response = create(endpoint, auth, size, name, **extra)
    assert response.status_code == 201, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0"
    location = response.headers["Location"]
    assert location.startswith("/notebench/api/assets/uploads/")
    return endpoint.rsplit("/notebench/", 1)[0] + location


def patch(url: str, auth: dict[str, str], chunk: bytes, offset: int,
          **headers: str) -> Any:
    return requests.patch(url, data=chunk, headers={
        **auth, **TUS, "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream", **headers})


def offset_of(url: str, auth: dict[str, str]) -> int:
    head = requests.head(url, headers={**auth, **TUS})
    assert head.status_code == 200, head.status_code
    assert head.headers["Tus-Resumable"] == "1.0.0"
    assert head.headers["Cache-Control"] == "no-store"
    return int(head.headers["Upload-Offset"])


def checksum(chunk: bytes) -> str:
    return "sha256 " + b64(hashlib.sha256(chunk).digest())


def asset_named(server: ServerProcess, category: str, name: str) -> dict[str, Any] | None:
    status, page = server.request("GET", f"assets/list/{category}?name={name}")
    assert status == 200, page
    found = [item for item in page["items"] if item["name"] == name]
    return found[0] if found else None


def temp_files(server: ServerProcess) -> list[str]:
    workspace = Path(server.request("GET", "info")[1]["workspace"]["path"])
    return sorted(str(p.relative_to(workspace)) for p in workspace.glob("*/.notebench-tmp/*"))


def test_tuspy_resumes_an_interrupted_upload_and_the_server_checks_its_sha256(
        server, auth, endpoint, tmp_path):
    data = data_of(20 * MIB, seed=1)
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    client = tus_client.TusClient(endpoint, headers=auth)
    meta = {"filename": "tuspy-20mib.bin", "category": "artifacts", "sha256": digest}
    first = Sha256Uploader(file_path=str(path), client=client, chunk_size=4 * MIB,
                           metadata=meta, upload_checksum=True)
    first.upload_chunk()
    first.upload_chunk()
    assert first.offset == 8 * MIB
    url = first.url
    del first  # the client stops here, as one that crashed or went away
    assert offset_of(url, auth) == 8 * MIB
    assert asset_named(server, "artifacts", "tuspy-20mib.bin") is None

    resumed = Sha256Uploader(file_path=str(path), client=client, url=url, chunk_size=4 * MIB,
                             metadata=meta, upload_checksum=True)
    assert resumed.offset == 8 * MIB  # asked the server (HEAD)
    resumed.upload()
    assert resumed.offset == len(data)
    asset = asset_named(server, "artifacts", "tuspy-20mib.bin")
    assert asset is not None
    assert asset["size"] == len(data) and asset["sha256"] == digest
    assert asset["source"] == "upload"
    assert requests.head(url, headers={**auth, **TUS}).status_code == 404  # completed
    got = requests.get(f"{server.url}notebench/api/assets/download/{asset['id']}",
                       headers=auth)
    assert hashlib.sha256(got.content).hexdigest() == digest
    assert temp_files(server) == []


def test_a_wrong_checksum_is_460_and_the_chunk_is_discarded(server, auth, endpoint):
    data = data_of(3 * MIB, seed=2)
    url = created(endpoint, auth, len(data), "checked.bin",
                  sha256=hashlib.sha256(data).hexdigest())
    first = data[:MIB]
    assert patch(url, auth, first, 0, **{"Upload-Checksum": checksum(first)}).status_code == 204
    second = data[MIB:2 * MIB]
    wrong = patch(url, auth, second, MIB, **{"Upload-Checksum": checksum(b"other bytes")})
    assert wrong.status_code == 460, wrong.text
    assert wrong.json()["error"]["code"] == "checksum_mismatch"
    assert wrong.headers["Tus-Resumable"] == "1.0.0"
    assert offset_of(url, auth) == MIB  # the offset did not move
    sha1 = patch(url, auth, second, MIB,
                 **{"Upload-Checksum": "sha1 " + b64(hashlib.sha1(second).digest())})
    assert sha1.status_code == 400 and sha1.json()["error"]["code"] == "unsupported_checksum"
    garbled = patch(url, auth, second, MIB, **{"Upload-Checksum": "sha256 !!notbase64"})
    assert garbled.status_code == 400
    assert offset_of(url, auth) == MIB
    # the chunk again, right this time; then the rest without a checksum
    ok = patch(url, auth, second, MIB, **{"Upload-Checksum": checksum(second)})
    assert ok.status_code == 204 and ok.headers["Upload-Offset"] == str(2 * MIB)
    last = patch(url, auth, data[2 * MIB:], 2 * MIB)
    assert last.status_code == 204, last.text
    assert last.headers["Upload-Offset"] == str(len(data))
    asset = asset_named(server, "artifacts", "checked.bin")
    assert asset is not None and asset["sha256"] == hashlib.sha256(data).hexdigest()


def test_termination_discovery_and_the_version(server, auth, endpoint):
    url = created(endpoint, auth, 1000, "dropped.bin")
    assert patch(url, auth, b"x" * 400, 0).status_code == 204
    gone = requests.delete(url, headers={**auth, **TUS})
    assert gone.status_code == 204 and gone.content == b""
    assert gone.headers["Tus-Resumable"] == "1.0.0"
    missing = requests.head(url, headers={**auth, **TUS})
    assert missing.status_code == 404 and missing.headers["Tus-Resumable"] == "1.0.0"

    options = requests.options(endpoint, headers=auth)
    assert options.status_code == 204
    assert options.headers["Tus-Resumable"] == "1.0.0"
    assert options.headers["Tus-Version"] == "1.0.0"
    assert options.headers["Tus-Extension"] == "creation,termination,checksum"
    assert options.headers["Tus-Checksum-Algorithm"] == "sha256"
    assert int(options.headers["Tus-Max-Size"]) == 20 << 30  # max_upload_bytes
    small = requests.options(endpoint + "?category=checkpoints", headers=auth)
    assert small.headers["Tus-Max-Size"] == "1048576"
    assert requests.options(endpoint).status_code == 403  # authenticated, as every route

    old = requests.post(endpoint, headers={**auth, "Tus-Resumable": "0.2.2",
                                           "Upload-Length": "10"})
    assert old.status_code == 412
    assert old.headers["Tus-Version"] == "1.0.0"
    assert old.json()["error"]["code"] == "unsupported_version"
    head = requests.head(url, headers={**auth, "Tus-Resumable": "2.0.0"})
    assert head.status_code == 412 and head.headers["Tus-Version"] == "1.0.0"
    assert requests.post(endpoint, headers={**TUS, "Upload-Length": "10",
                                            "Upload-Metadata": metadata(
                                                filename="a.bin", category="artifacts")}
                         ).status_code == 403


@pytest.mark.parametrize(("headers", "code"), [
    ({"Upload-Metadata": "filename !!!,category " + b64("artifacts")}, "invalid_base64"),
    ({"Upload-Metadata": f"filename {b64('a.bin')}=,category {b64('artifacts')}"},
     "invalid_base64"),
    ({"Upload-Metadata": f"filename {b64('a.bin')},filename {b64('b.bin')}"},
     "invalid_metadata"),
    ({"Upload-Metadata": "filename " + b64(b"\xff\xfe") + ",category " + b64("artifacts")},
     "invalid_metadata"),
    ({"Upload-Metadata": f"category {b64('artifacts')}"}, "invalid_name"),
    ({"Upload-Metadata": f"filename {b64('a.bin')}"}, "invalid_category"),
    ({"Upload-Metadata": metadata(filename="a.bin", category="artifacts", sha256="12ab")},
     "invalid_digest"),
    ({"Upload-Metadata": metadata(filename="../a.bin", category="artifacts")},
     "invalid_name"),
])
def test_bad_creation_requests_are_400_with_a_json_error(endpoint, auth, headers, code):
    response = requests.post(endpoint, headers={**auth, **TUS, "Upload-Length": "10",
                                                **headers})
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == code
    assert response.headers["Tus-Resumable"] == "1.0.0"


def test_creation_edges(server, auth, endpoint):
    meta = metadata(filename="edge.bin", category="artifacts")
    deferred = requests.post(endpoint, headers={**auth, **TUS, "Upload-Defer-Length": "1",
                                                "Upload-Metadata": meta})
    assert deferred.status_code == 400
    with_body = requests.post(endpoint, data=b"abc", headers={
        **auth, **TUS, "Upload-Length": "3", "Upload-Metadata": meta})
    assert with_body.status_code == 400
    too_big = create(endpoint, auth, 2 * MIB, "big.pt", category="checkpoints")
    assert too_big.status_code == 413
    query = requests.post(endpoint + "?category=artifacts", headers={
        **auth, **TUS, "Upload-Length": "0", "Upload-Metadata": metadata(name="empty.bin")})
    assert query.status_code == 201, query.text  # ?category=, name; empty: complete at once
    empty = asset_named(server, "artifacts", "empty.bin")
    assert empty is not None and empty["sha256"] == hashlib.sha256(b"").hexdigest()


def test_chunk_errors(server, auth, endpoint):
    data = data_of(4096, seed=3)
    url = created(endpoint, auth, len(data), "edges.bin")
    plain = requests.patch(url, data=data[:10], headers={
        **auth, **TUS, "Upload-Offset": "0", "Content-Type": "application/octet-stream"})
    assert plain.status_code == 415 and plain.headers["Tus-Resumable"] == "1.0.0"
    assert patch(url, auth, data[:100], 0).status_code == 204
    mismatch = patch(url, auth, data[100:200], 50)
    assert mismatch.status_code == 409
    assert mismatch.json()["error"]["details"]["offset"] == 100
    over = patch(url, auth, data[100:] + b"extra", 100)
    assert over.status_code == 413
    assert requests.delete(url, headers={**auth, **TUS}).status_code == 204


def test_a_wrong_sha256_fails_the_last_chunk_and_leaves_nothing(server, auth, endpoint):
    data = data_of(2 * MIB, seed=4)
    url = created(endpoint, auth, len(data), "mismatch.bin", sha256="0" * 64)
    assert patch(url, auth, data[:MIB], 0).status_code == 204
    last = patch(url, auth, data[MIB:], MIB)
    assert last.status_code == 400, last.text
    assert last.json()["error"]["code"] == "digest_mismatch"
    assert last.headers["Tus-Resumable"] == "1.0.0"
    assert requests.head(url, headers={**auth, **TUS}).status_code == 404
    assert asset_named(server, "artifacts", "mismatch.bin") is None
    assert temp_files(server) == []


def test_a_refused_type_fails_the_last_chunk_with_415(server, auth, endpoint):
    url = created(endpoint, auth, 100, "weights.safetensors", category="models")
    assert patch(url, auth, b"not safetensors " * 4, 0).status_code == 204
    refused = patch(url, auth, b"at all, really! " * 2 + b"!!!!", 64)
    assert refused.status_code == 415, refused.text
    assert refused.json()["error"]["code"] == "unsupported_type"
    assert requests.head(url, headers={**auth, **TUS}).status_code == 404
    assert asset_named(server, "models", "weights.safetensors") is None


def test_the_per_user_session_limit_counts_tus_uploads(server, auth, endpoint):
    urls = []
    for index in range(SESSIONS + 1):
        response = create(endpoint, auth, 10, f"many-{index}.bin")
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "too_many_uploads"
            break
        assert response.status_code == 201, response.text
        urls.append(endpoint.rsplit("/notebench/", 1)[0] + response.headers["Location"])
    else:
        pytest.fail("no 429 past upload_sessions_per_user")
    for url in urls:
        assert requests.delete(url, headers={**auth, **TUS}).status_code == 204
    assert create(endpoint, auth, 10, "after.bin").status_code == 201


def test_the_own_protocol_is_unchanged_beside_tus(server, auth, endpoint):
    data = data_of(300_000, seed=5)
    status, body = server.request("POST", "assets/uploads", {
        "category": "artifacts", "name": "own.bin", "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest()})
    assert status == 201, body
    url = f"{endpoint}/{body['id']}"
    sent = requests.patch(url, data=data, headers={**auth, "Upload-Offset": "0",
                                                   "Content-Type": "application/octet-stream"})
    assert sent.status_code == 200 and sent.json()["offset"] == len(data)
    assert "Tus-Resumable" not in sent.headers
    status, asset = server.request("POST", f"assets/uploads/{body['id']}/complete")
    assert status == 201 and asset["sha256"] == hashlib.sha256(data).hexdigest()
