"""The ingest routes a remote job's forwarder calls, and the job token's scope.

The jobs here stay queued (``cpu_slots`` 0): a queued job is live for ingest, and no local
runner writes into its directory while the test does. Cancelling one puts it in a final
state (``job_ended``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from notebench.jobprotocol import CONTROL_FILE, write_json_atomic
from notebench.server.credentials import JobTokens, load_secret
from notebench.server.jobs.ingest import MAX_INGEST_CHUNK
from notebench.server.jobs.ingest_uploads import IngestUploads
from notebench.server.jobs.remote_control import RemoteControl
from notebench.server.services import JOB_TOKEN_KEY
from tests.integration.assets.conftest import RawConnection
from tests.integration.jobs.conftest import bus_events
from tests.openapi_check import validate_response
from tests.waiting import wait_for

QUEUED_ONLY = {"cpu_slots": 0, "tick_seconds": 0.2, "stall_minutes": 0.0}
pytestmark = pytest.mark.parametrize("jobs_config", [QUEUED_ONLY])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def remote(services: Any) -> RemoteControl:
    """The service as a remote executor sets it up."""
    control = RemoteControl()
    services.jobs.remote_control = control
    return control


@pytest.fixture
def queued(jobs_api, write_notebook) -> Any:
    """``await queued()``: a new job that stays queued; its id."""
    path = write_notebook("tiny", ["x = 1"])

    async def make() -> str:
        job = await jobs_api.submit(path)
        assert job["state"] == "queued"
        return job["id"]

    return make


@pytest.fixture
def job_dir(services: Any):
    return lambda job_id: services.jobs.runs_dir / job_id


@pytest.fixture
def ingest(api):
    """Calls of the ingest routes (``token``: a job token instead of the owner's)."""

    def auth(token: str | None) -> dict[str, str]:
        return {"Authorization": f"token {token}"} if token else {}

    class Ingest:
        async def state(self, job_id: str, token: str | None = None):
            return await api("GET", f"lifecycle/jobs/{job_id}/ingest", headers=auth(token))

        async def stream(self, job_id: str, name: str, offset: int, data: bytes,
                         token: str | None = None):
            return await api("POST", f"lifecycle/jobs/{job_id}/ingest/streams/{name}", data,
                             params={"offset": str(offset)},
                             headers={"Content-Type": "application/octet-stream",
                                      **auth(token)})

        async def file(self, job_id: str, rel: str, offset: int, data: bytes, total: int,
                       digest: str, token: str | None = None):
            # the checker's templates match one path segment per parameter
            return await api("PUT", f"lifecycle/jobs/{job_id}/ingest/files/{rel}", data,
                             params={"offset": str(offset), "total": str(total),
                                     "sha256": digest},
                             headers={"Content-Type": "application/octet-stream",
                                      **auth(token)}, validate="/" not in rel)

        async def heartbeat(self, job_id: str, body: Any, token: str | None = None):
            return await api("POST", f"lifecycle/jobs/{job_id}/ingest/heartbeat", body,
                             headers=auth(token))

    return Ingest()


@pytest.fixture
def raw_fetch(jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]):
    """A request whose path is sent exactly as given (``%2F`` and ``%2e`` kept)."""

    async def fetch(method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
        url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}notebench/api/{path}"
        response = await AsyncHTTPClient().fetch(url, method=method, body=body,
                                                 headers=jp_auth_header, raise_error=False)
        return response.code, json.loads(response.body) if response.body else None

    return fetch


async def test_streams_append_at_offsets_exactly_once(remote, queued, ingest, job_dir):
    job_id = await queued()
    first = await ingest.stream(job_id, "events.jsonl", 0, b'{"a": 1}\n{"b"')
    assert first.status == 200, first.body
    assert first.body == {"size": 13, "control": {"stop": None, "paused": False,
                                                  "signal": None}}
    retry = await ingest.stream(job_id, "events.jsonl", 0, b'{"a": 1}\n{"b"')
    assert retry.status == 200 and retry.body["size"] == 13
    overlap = await ingest.stream(job_id, "events.jsonl", 9, b'{"b": 2}\n')
    assert overlap.status == 200 and overlap.body["size"] == 18
    assert (job_dir(job_id) / "events.jsonl").read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    gap = await ingest.stream(job_id, "events.jsonl", 30, b"x")
    assert gap.status == 409
    assert gap.body["error"]["code"] == "offset_mismatch"
    assert gap.body["size"] == gap.body["error"]["details"]["size"] == 18
    assert (await ingest.stream(job_id, "papermill.log", 0, b"out\r")).body["size"] == 4
    state = await ingest.state(job_id)
    assert state.status == 200
    assert state.body["streams"] == {"events.jsonl": 18, "runner.jsonl": 0,
                                     "papermill.log": 4}
    assert state.body["files"] == {}
    unknown = await ingest.stream(job_id, "job.json", 0, b"{}")
    assert unknown.status == 400 and unknown.body["error"]["code"] == "unknown_stream"


async def test_a_stream_chunk_needs_an_offset(remote, queued, api):
    job_id = await queued()
    response = await api("POST", f"lifecycle/jobs/{job_id}/ingest/streams/events.jsonl",
                         b"x", headers={"Content-Type": "application/octet-stream"})
    assert response.status == 400
    assert response.body["error"]["code"] == "invalid_parameter"


async def test_files_arrive_in_chunks_and_replace_the_old_version(remote, queued, ingest,
                                                                  job_dir):
    job_id = await queued()
    data = os.urandom(300_000)
    digest = sha(data)
    rel = "checkpoints/step-1/model.pt"
    target = job_dir(job_id) / rel
    first = await ingest.file(job_id, rel, 0, data[:100_000], len(data), digest)
    assert first.status == 200, first.body
    assert (first.body["size"], first.body["complete"]) == (100_000, False)
    assert not target.exists()
    retry = await ingest.file(job_id, rel, 0, data[:100_000], len(data), digest)
    assert retry.body["size"] == 100_000
    gap = await ingest.file(job_id, rel, 200_000, data[200_000:], len(data), digest)
    assert gap.status == 409 and gap.body["size"] == 100_000
    assert (await ingest.file(job_id, rel, 100_000, data[100_000:200_000], len(data),
                              digest)).body["size"] == 200_000
    last = await ingest.file(job_id, rel, 200_000, data[200_000:], len(data), digest)
    assert last.status == 200
    assert (last.body["size"], last.body["complete"]) == (len(data), True)
    assert target.read_bytes() == data
    assert list((job_dir(job_id) / ".ingest" / "parts").rglob("*.part")) == []
    # the last chunk again (its answer was lost): complete, nothing sent twice
    again = await ingest.file(job_id, rel, 200_000, data[200_000:], len(data), digest)
    assert again.body["complete"] is True and target.read_bytes() == data
    state = await ingest.state(job_id)
    assert state.body["files"] == {rel: {"size": len(data), "sha256": digest}}
    newer = b"the newer version"
    replaced = await ingest.file(job_id, rel, 0, newer, len(newer), sha(newer))
    assert replaced.body["complete"] is True and target.read_bytes() == newer
    empty = await ingest.file(job_id, "empty.txt", 0, b"", 0, sha(b""))
    assert empty.body["complete"] is True and (job_dir(job_id) / "empty.txt").read_bytes() == b""
    output = await ingest.file(job_id, "output.ipynb", 0, b"{}", 2, sha(b"{}"))
    assert output.body["complete"] is True


async def test_a_wrong_checksum_leaves_no_file_and_no_part(remote, queued, ingest, job_dir):
    job_id = await queued()
    data = b"metrics,1\n" * 100
    wrong = await ingest.file(job_id, "metrics.csv", 0, data, len(data), sha(b"other"))
    assert wrong.status == 400 and wrong.body["error"]["code"] == "checksum_mismatch"
    assert not (job_dir(job_id) / "metrics.csv").exists()
    assert list((job_dir(job_id) / ".ingest" / "parts").rglob("*")) == []
    assert (await ingest.state(job_id)).body["files"] == {}
    right = await ingest.file(job_id, "metrics.csv", 0, data, len(data), sha(data))
    assert right.body["complete"] is True
    assert (job_dir(job_id) / "metrics.csv").read_bytes() == data


@pytest.mark.parametrize("rel", [
    "a/../../outside.txt", "..%2Foutside.txt", "%2Fetc%2Fpasswd", "a%2F%2Fb", "%2e%2e",
    ".ingest%2Findex.json", ".hidden", "a/.b/c", "job.json", "notebook.ipynb",
    "environment.txt", "control.json", "events.jsonl", "runner.jsonl", "papermill.log",
    "a%5Cb", "a%00b", "a%0Ab",
])
async def test_unsafe_paths_are_refused(remote, queued, raw_fetch, job_dir, rel):
    job_id = await queued()
    before = sorted(p.name for p in job_dir(job_id).parent.iterdir())
    status, body = await raw_fetch(
        "PUT", f"lifecycle/jobs/{job_id}/ingest/files/{rel}?offset=0&total=1"
               f"&sha256={sha(b'x')}", b"x")
    assert status == 400, body
    assert body["error"]["code"] == "unsafe_path"
    assert sorted(p.name for p in job_dir(job_id).parent.iterdir()) == before
    assert (job_dir(job_id) / "job.json").read_bytes() != b"x"


async def test_bad_file_arguments(remote, queued, ingest, api):
    job_id = await queued()
    past = await ingest.file(job_id, "a.bin", 0, b"abc", 2, sha(b"ab"))
    assert past.status == 400 and past.body["error"]["code"] == "invalid_range"
    after = await ingest.file(job_id, "a.bin", 5, b"", 2, sha(b"ab"))
    assert after.status == 400 and after.body["error"]["code"] == "invalid_range"
    bad_digest = await ingest.file(job_id, "a.bin", 0, b"ab", 2, "xyz")
    assert bad_digest.status == 400
    huge = await ingest.file(job_id, "big.bin", 0, b"", 20 * 1024**3 + 1, sha(b""))
    assert huge.status == 413 and huge.body["error"]["code"] == "too_large"


async def test_a_chunk_over_the_limit_is_413_before_its_body(remote, queued, jp_http_port,
                                                             jp_auth_header, jp_base_url):
    job_id = await queued()
    conn = RawConnection(jp_http_port, jp_auth_header)
    await conn.open("POST", f"{jp_base_url}notebench/api/lifecycle/jobs/{job_id}/ingest/"
                            "streams/events.jsonl?offset=0",
                    {"Content-Length": str(MAX_INGEST_CHUNK + 1)})
    status, _headers, body = await conn.response()  # no byte of the body was sent
    await conn.close()
    assert status == 413 and b"too_large" in body


async def test_a_chunked_body_over_the_limit_is_413(remote, queued, jp_http_port,
                                                    jp_auth_header, jp_base_url, job_dir):
    job_id = await queued()
    conn = RawConnection(jp_http_port, jp_auth_header)
    await conn.open("POST", f"{jp_base_url}notebench/api/lifecycle/jobs/{job_id}/ingest/"
                            "streams/events.jsonl?offset=0",
                    {"Transfer-Encoding": "chunked"})
    piece = b"x" * 65536
    for _ in range(MAX_INGEST_CHUNK // len(piece)):
        await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    # one byte more, and no more (the server then has read all it was sent: its answer
    # is not lost to a reset)
    await conn.send(b"1\r\nx\r\n")
    status, _headers, body = await conn.response()
    await conn.close()
    assert status == 413 and b"too_large" in body
    assert not (job_dir(job_id) / "events.jsonl").exists()


async def test_heartbeats_record_contact_and_placement(remote, queued, ingest, job_dir):
    job_id = await queued()
    assert remote.last_heard(job_id) is None
    info = {"worker": "tcp://10.0.0.2:40000", "host": "node-2", "gpu_uuids": ["GPU-1"],
            "pid": 4242}
    beat = await ingest.heartbeat(job_id, info)
    assert beat.status == 200, beat.body
    assert beat.body == {"control": {"stop": None, "paused": False, "signal": None}}
    assert remote.last_heard(job_id) is not None
    assert remote.placement(job_id) == info
    bad = await ingest.heartbeat(job_id, {"pid": "four"})
    assert bad.status == 400
    remote.set_paused(job_id, True)
    remote.send_signal(job_id, "term")
    write_json_atomic(job_dir(job_id) / CONTROL_FILE, {"stop": True, "reason": "stop requested"})
    told = await ingest.heartbeat(job_id, {})
    assert told.body["control"] == {"stop": {"stop": True, "reason": "stop requested"},
                                    "paused": True, "signal": "term"}
    remote.send_signal(job_id, "kill")
    remote.send_signal(job_id, "term")  # a kill is not downgraded
    assert (await ingest.state(job_id)).body["control"]["signal"] == "kill"


async def test_a_heartbeat_saying_where_the_job_runs_announces_its_record(
        remote, queued, ingest, services):
    job_id = await queued()
    place = {"worker": "tcp://10.0.0.7:40111", "host": "gpu-node-7", "gpu_uuids": ["GPU-x"]}
    with bus_events(services.bus, f"job:{job_id}", "updated") as updated:
        for beat in (place, place, {"worker": "tcp://10.0.0.8:40111"}, {}):
            answer = await ingest.heartbeat(job_id, beat)
            assert answer.status == 200, answer.body
        await wait_for(lambda: len(updated) >= 2, 10)
    assert [e.data["job"]["id"] for e in updated] == [job_id, job_id]
    # only a new place counts: the same one again, or none, is no news
    assert remote.placement(job_id) == {**place, "worker": "tcp://10.0.0.8:40111"}
    assert not remote.heard(job_id, place | {"worker": "tcp://10.0.0.8:40111"})
    assert not remote.heard(job_id, {})
    assert remote.heard(job_id, {"threads": 4})


async def test_a_forwarders_notes_reach_the_jobs_log_and_topic(remote, queued, ingest,
                                                               jobs_api, services):
    job_id = await queued()
    notes = [{"kind": "reconnected", "after_seconds": 4.5, "unsent_bytes": 1200},
             {"kind": "grace_stop", "after_seconds": 60}]
    with bus_events(services.bus, "jobs", "remote") as seen:
        beat = await ingest.heartbeat(job_id, {"notes": notes})
        assert beat.status == 200, beat.body
        await wait_for(lambda: len(seen) >= 2, 10)  # the bus delivers after the answer
    assert [e.data["kind"] for e in seen] == ["reconnected", "grace_stop"]
    assert seen[0].data == {"job_id": job_id, **notes[0]}
    records = await jobs_api.logs(job_id, source="jobs")
    text = " ".join(r["message"] for r in records)
    assert "reaches the server again" in text and "after_seconds 4.5" in text
    assert "grace period" in text
    for bad in ([{"kind": "format_disk"}], [{"kind": "reconnected", "x": "rm -rf"}], "x"):
        refused = await ingest.heartbeat(job_id, {"notes": bad})
        assert refused.status == 400, (bad, refused.body)


async def test_a_job_that_ended_answers_job_ended(remote, queued, ingest, jobs_api):
    job_id = await queued()
    await jobs_api.control(job_id, "cancel")
    for response in (await ingest.state(job_id),
                     await ingest.stream(job_id, "events.jsonl", 0, b"x"),
                     await ingest.file(job_id, "a.txt", 0, b"x", 1, sha(b"x")),
                     await ingest.heartbeat(job_id, {})):
        assert response.status == 409, response.body
        assert response.body["error"]["code"] == "job_ended"


async def test_without_a_remote_executor_ingest_is_409(queued, ingest):
    job_id = await queued()
    response = await ingest.stream(job_id, "events.jsonl", 0, b"x")
    assert response.status == 409 and response.body["error"]["code"] == "not_remote"


async def test_an_unknown_job_is_404(remote, ingest):
    response = await ingest.state("j-000000000000")
    assert response.status == 404


async def test_a_job_token_reaches_its_own_ingest_and_record_only(
        remote, queued, ingest, api, services, job_dir):
    job_id, other = await queued(), await queued()
    tokens = services.job_tokens
    tokens.allow(job_id)
    tokens.allow(other)
    token = tokens.mint(job_id)
    auth = {"Authorization": f"token {token}"}

    assert (await ingest.state(job_id, token)).status == 200
    assert (await ingest.stream(job_id, "events.jsonl", 0, b"{}\n", token)).status == 200
    assert (await ingest.file(job_id, "a.txt", 0, b"a", 1, sha(b"a"), token)).status == 200
    assert (await ingest.heartbeat(job_id, {"host": "h"}, token)).status == 200
    record = await api("GET", f"lifecycle/jobs/{job_id}", headers=auth)
    assert record.status == 200 and record.body["id"] == job_id

    refused = [
        ("GET", "lifecycle/jobs", None),
        ("POST", "lifecycle/jobs", {"notebook": "nbs/tiny.ipynb"}),
        ("PATCH", f"lifecycle/jobs/{job_id}", {"name": "mine"}),
        ("DELETE", f"lifecycle/jobs/{job_id}", None),
        ("POST", f"lifecycle/jobs/{job_id}/control", {"action": "cancel"}),
        ("GET", f"lifecycle/jobs/{job_id}/metrics", None),
        ("GET", f"lifecycle/jobs/{job_id}/logs", None),
        ("GET", f"lifecycle/jobs/{job_id}/output", None),
        ("GET", f"lifecycle/jobs/{job_id}/stream", None),
        ("GET", f"lifecycle/artifacts/{job_id}", None),
        ("GET", f"lifecycle/jobs/{other}", None),
        ("GET", f"lifecycle/jobs/{other}/ingest", None),
        ("POST", f"lifecycle/jobs/{other}/ingest/heartbeat", {}),
        ("GET", "lifecycle/templates", None),
        ("GET", "lifecycle/trash", None),
        ("GET", "info", None),
        ("GET", "hardware", None),
        ("GET", "assets/roots", None),
        ("GET", "assets/list/models", None),
        ("GET", "monitoring/metrics", None),
        ("GET", "monitoring/health", None),
    ]
    for method, path, body in refused:
        response = await api(method, path, body, headers=auth, validate=False)
        assert response.status == 403, (method, path, response.status)
        assert response.body["error"]["code"] == "forbidden"
    other_stream = await ingest.stream(other, "events.jsonl", 0, b"x", token)
    assert other_stream.status == 403
    assert not (job_dir(other) / "events.jsonl").exists()
    job = (await api("GET", f"lifecycle/jobs/{job_id}")).body
    assert job["state"] == "queued" and job["name"] != "mine"

    tokens.revoke(job_id)
    for response in (await ingest.state(job_id, token),
                     await ingest.stream(job_id, "events.jsonl", 3, b"x", token),
                     await api("GET", f"lifecycle/jobs/{job_id}", headers=auth)):
        assert response.status == 403
        assert "ended" in response.body["error"]["message"]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (await ingest.state(other, forged)).status == 403
    assert (await ingest.state(other, tokens.mint(other))).status == 200
    assert (await ingest.state(job_id)).status == 200  # the owner still may


async def test_the_servers_tokens_come_from_the_workspace_key(services):
    key: Path = services.workspace.state_dir / JOB_TOKEN_KEY
    assert key.stat().st_mode & 0o777 == 0o600
    restarted = JobTokens(load_secret(key))
    restarted.allow("j-0123456789ab")
    assert restarted.resolve(services.job_tokens.mint("j-0123456789ab")) == "j-0123456789ab"


# -- large files: the resumable upload protocol under the job's ingest routes ---------------


@pytest.fixture
def uploads(api):
    """Calls of the ingest uploads routes (``token``: a job token instead of the owner's)."""

    def auth(token: str | None) -> dict[str, str]:
        return {"Authorization": f"token {token}"} if token else {}

    class Uploads:
        async def create(self, job_id: str, name: str, data: bytes, digest: str | None = None,
                         token: str | None = None, **extra: Any):
            body = {"name": name, "size": len(data), "sha256": digest or sha(data), **extra}
            return await api("POST", f"lifecycle/jobs/{job_id}/ingest/uploads", body,
                             headers=auth(token))

        async def patch(self, job_id: str, uid: str, offset: int, data: bytes,
                        token: str | None = None):
            return await api("PATCH", f"lifecycle/jobs/{job_id}/ingest/uploads/{uid}", data,
                             headers={"Upload-Offset": str(offset), **auth(token),
                                      "Content-Type": "application/offset+octet-stream"})

        async def head(self, job_id: str, uid: str, token: str | None = None):
            path = f"lifecycle/jobs/{job_id}/ingest/uploads/{uid}"
            response = await api("HEAD", path, headers=auth(token), validate=False)
            if response.status == 200:  # an error's answer has no body to check
                validate_response("HEAD", f"notebench/api/{path}", 200, b"")
            return response

        async def get(self, job_id: str, uid: str, token: str | None = None):
            return await api("GET", f"lifecycle/jobs/{job_id}/ingest/uploads/{uid}",
                             headers=auth(token))

        async def delete(self, job_id: str, uid: str, token: str | None = None):
            return await api("DELETE", f"lifecycle/jobs/{job_id}/ingest/uploads/{uid}",
                             headers=auth(token))

        async def complete(self, job_id: str, uid: str, token: str | None = None):
            return await api("POST", f"lifecycle/jobs/{job_id}/ingest/uploads/{uid}/complete",
                             headers=auth(token))

    return Uploads()


def upload_files(job_dir: Path) -> list[str]:
    folder = job_dir / ".ingest" / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_a_large_file_upload_resumes_after_a_cut_off_chunk(
        remote, queued, uploads, job_dir, ingest, services, jp_http_port, jp_auth_header,
        jp_base_url):
    job_id = await queued()
    data = os.urandom(3_000_000)
    rel = "checkpoints/epoch-1/model.pt"
    target = job_dir(job_id) / rel
    created = await uploads.create(job_id, rel, data)
    assert created.status == 201, created.body
    uid = created.body["id"]
    assert created.headers["Upload-Offset"] == "0"
    assert created.headers["Location"].endswith(
        f"notebench/api/lifecycle/jobs/{job_id}/ingest/uploads/{uid}")
    assert created.body["name"] == rel and created.body["offset"] == 0
    first = await uploads.patch(job_id, uid, 0, data[:1_000_000])
    assert first.status == 200, first.body
    assert first.body["offset"] == 1_000_000 and first.headers["Upload-Offset"] == "1000000"

    # a chunk cut off after 700,000 of its 2,000,000 bytes: what arrived is kept
    conn = RawConnection(jp_http_port, jp_auth_header)
    await conn.open("PATCH", f"{jp_base_url}notebench/api/lifecycle/jobs/{job_id}/ingest/"
                             f"uploads/{uid}",
                    {"Upload-Offset": "1000000", "Content-Length": "2000000",
                     "Content-Type": "application/offset+octet-stream"})
    await conn.send(data[1_000_000:1_700_000])
    await conn.close()

    async def released() -> Any:
        # the server reads the cut chunk to its end, keeps it and releases the upload
        # (complete answers upload_busy until then, incomplete after)
        head = await uploads.head(job_id, uid)
        if head.headers.get("Upload-Offset") != "1700000":
            return None
        early = await uploads.complete(job_id, uid)
        return head if early.body["error"]["code"] == "incomplete" else None

    head = await wait_for(released, 20)
    assert head.status == 200
    assert head.headers["Upload-Length"] == str(len(data))
    assert not target.exists()

    # a server restart forgets what it held in memory: the files on disk carry on
    services.jobs.ingest.uploads = IngestUploads(services.jobs.ingest)
    status = await uploads.get(job_id, uid)
    assert status.status == 200 and status.body["offset"] == 1_700_000
    stale = await uploads.patch(job_id, uid, 1_000_000, data[1_000_000:])
    assert stale.status == 409 and stale.body["error"]["code"] == "offset_mismatch"
    assert stale.body["error"]["details"]["offset"] == 1_700_000
    rest = await uploads.patch(job_id, uid, 1_700_000, data[1_700_000:])
    assert rest.status == 200 and rest.body["offset"] == len(data)
    done = await uploads.complete(job_id, uid)
    assert done.status == 200, done.body
    assert done.body["complete"] is True and done.body["sha256"] == sha(data)
    assert target.read_bytes() == data
    assert upload_files(job_dir(job_id)) == []  # nothing partial left
    assert (await ingest.state(job_id)).body["files"] == {
        rel: {"size": len(data), "sha256": sha(data)}}
    assert (await uploads.head(job_id, uid)).status == 404
    assert (await uploads.complete(job_id, uid)).status == 404


async def test_a_large_file_with_the_wrong_digest_leaves_nothing(remote, queued, uploads,
                                                                 job_dir):
    job_id = await queued()
    data = b"weights" * 10_000
    created = await uploads.create(job_id, "model.pt", data, digest=sha(b"other"))
    uid = created.body["id"]
    assert (await uploads.patch(job_id, uid, 0, data)).status == 200
    done = await uploads.complete(job_id, uid)
    assert done.status == 400 and done.body["error"]["code"] == "digest_mismatch"
    assert done.body["error"]["details"]["received"] == sha(data)
    assert not (job_dir(job_id) / "model.pt").exists()
    assert upload_files(job_dir(job_id)) == []
    assert (await uploads.get(job_id, uid)).status == 404


async def test_large_file_uploads_are_checked_before_any_byte(remote, queued, uploads,
                                                              job_dir, services):
    job_id = await queued()
    data = b"x" * 100
    for name in ("../outside.pt", "/etc/passwd", ".hidden", "a/.b/c", "job.json",
                 "events.jsonl", "a\\b", "a//b", ""):
        refused = await uploads.create(job_id, name, data)
        assert refused.status == 400, (name, refused.body)
        assert refused.body["error"]["code"] == "unsafe_path", name
    bad_digest = await uploads.create(job_id, "a.pt", data, digest="xyz")
    assert bad_digest.status == 400 and bad_digest.body["error"]["code"] == "invalid_digest"
    huge = await api_size(uploads, job_id, services.jobs.max_ingest_file_bytes + 1)
    assert huge.status == 413 and huge.body["error"]["code"] == "too_large"
    uid = (await uploads.create(job_id, "small.pt", data)).body["id"]
    past = await uploads.patch(job_id, uid, 0, data + b"more")
    assert past.status == 413 and past.body["error"]["code"] == "too_large"
    early = await uploads.complete(job_id, uid)
    assert early.status == 409 and early.body["error"]["code"] == "incomplete"
    again = await uploads.create(job_id, "small.pt", data)  # a newer version replaces it
    assert again.status == 201 and (await uploads.get(job_id, uid)).status == 404
    for index in range(3):
        assert (await uploads.create(job_id, f"f{index}.pt", data)).status == 201
    over = await uploads.create(job_id, "f3.pt", data)
    assert over.status == 429 and over.body["error"]["code"] == "too_many_uploads"
    aborted = await uploads.delete(job_id, again.body["id"])
    assert aborted.status == 200 and aborted.body == {"id": again.body["id"],
                                                      "state": "aborted"}
    assert (await uploads.create(job_id, "f3.pt", data)).status == 201
    assert len(upload_files(job_dir(job_id))) == 8  # four records, four parts
    assert sorted(p.name for p in job_dir(job_id).iterdir()
                  if p.suffix == ".pt") == []  # nothing in place before completion


async def api_size(uploads: Any, job_id: str, size: int) -> Any:
    """A create that declares ``size`` bytes (none are sent)."""
    return await uploads.create(job_id, "big.pt", b"", size=size)


async def test_large_file_uploads_take_only_their_jobs_token(remote, queued, uploads,
                                                             services, jobs_api, job_dir):
    job_id, other = await queued(), await queued()
    services.job_tokens.allow(job_id)
    services.job_tokens.allow(other)
    token = services.job_tokens.mint(job_id)
    data = b"checkpoint" * 1000
    mine = await uploads.create(job_id, "ckpt.pt", data, token=token)
    assert mine.status == 201, mine.body
    theirs = (await uploads.create(other, "ckpt.pt", data)).body["id"]
    for response in (await uploads.create(other, "x.pt", data, token=token),
                     await uploads.patch(other, theirs, 0, data, token=token),
                     await uploads.head(other, theirs, token=token),
                     await uploads.get(other, theirs, token=token),
                     await uploads.complete(other, theirs, token=token),
                     await uploads.delete(other, theirs, token=token)):
        assert response.status == 403, response.status
    assert (await uploads.get(other, theirs)).body["offset"] == 0
    uid = mine.body["id"]
    assert (await uploads.patch(job_id, uid, 0, data, token=token)).status == 200
    assert (await uploads.head(job_id, uid, token=token)).headers["Upload-Offset"] == str(
        len(data))
    done = await uploads.complete(job_id, uid, token=token)
    assert done.status == 200 and (job_dir(job_id) / "ckpt.pt").read_bytes() == data

    await jobs_api.control(other, "cancel")  # an ended job: 409
    ended = await uploads.get(other, theirs)
    assert ended.status == 409 and ended.body["error"]["code"] == "job_ended"
    assert upload_files(job_dir(other)) == [f"{theirs}.json", f"{theirs}.part"]
    assert services.jobs.ingest.forget in services.jobs.supervisor.retire_hooks
    services.jobs.ingest.forget(other)  # as a live job retires: its uploads go
    await wait_for(lambda: upload_files(job_dir(other)) == [], 10)
