"""Bounds on what a client may make the server hold: request statistics, streams (rate,
replay, count per user), multipart part headers, resumable upload sessions, metric points.
Each bound answers with its status and a JSON error; a flood of hostile requests over real
sockets leaves the server's memory flat."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import logging
import os
from typing import Any

import psutil
import pytest
from jupyter_server.prometheus.metrics import HTTP_REQUEST_DURATION_SECONDS

from notebench.server.events.sse import StreamSubscriber
from tests.sse_client import open_sse
from tests.waiting import wait_for

BACKLOG = 64 * 1024
MAX_STREAMS = 3
MAX_SESSIONS = 2
MAX_SESSION_BYTES = 1000
#: the methods request statistics count by name; any other counts as OTHER
COUNTED_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}


@pytest.fixture
def notebench_config() -> dict[str, Any]:
    return {"sse_heartbeat_interval": 1.0, "sse_max_backlog_bytes": BACKLOG,
            "max_streams_per_user": MAX_STREAMS, "upload_sessions_per_user": MAX_SESSIONS,
            "upload_session_bytes_per_user": MAX_SESSION_BYTES}


@pytest.fixture
def jp_server_config(notebench_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"notebench.server": True,
                                              "tests.server_hooks": True}},
        "NotebenchApp": notebench_config,
        "NotebenchMonitoringService": {"interval": 0.25, "pss_interval": 1.0,
                                       "history_bucket_seconds": 1.0},
        "NotebenchAssetRegistry": {"scan_interval": 0.0},
    }


class Client:
    """One keep-alive HTTP/1.1 connection, requests written by hand."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.headers = headers or {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes = b"",
                      headers: dict[str, str] | None = None, *, head_only: bool = False
                      ) -> tuple[int, dict[str, str], bytes]:
        """Send a request and read its response (``head_only``: a body without a length,
        a stream's, is left unread; the caller closes the connection)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                 *(f"{k}: {v}" for k, v in {**self.headers, **(headers or {})}.items())]
        if body or method in ("POST", "PATCH", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin1") + body)
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        status_line, *header_lines = head.decode("latin1").split("\r\n")
        found = {k.strip().lower(): v.strip()
                 for k, _, v in (line.partition(":") for line in header_lines if line)}
        status = int(status_line.split()[1])
        if head_only and "content-length" not in found:
            return status, found, b""
        data = b""
        if found.get("transfer-encoding") == "chunked":
            while size := int((await self.reader.readline()).strip() or b"0", 16):
                data += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readline()
        elif "content-length" in found:
            data = await asyncio.wait_for(self.reader.readexactly(int(found["content-length"])),
                                          30)
        if found.get("connection", "").lower() == "close":
            self.close()
        return status, found, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def error_of(body: bytes) -> dict[str, Any]:
    """The ``error`` object of a JSON error body."""
    return json.loads(body)["error"]


@pytest.fixture
def client(jp_http_port: int, jp_auth_header: dict[str, str], http_server_client: Any):
    """``client()``: an authenticated keep-alive connection; ``client(auth=False)``: none."""
    made: list[Client] = []

    def make(auth: bool = True) -> Client:
        made.append(Client(jp_http_port, dict(jp_auth_header) if auth else {}))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def api_path(jp_base_url: str) -> str:
    return f"{jp_base_url}notebench/api/"


async def publish(api: Any, topic: str, count: int, pad_bytes: int, type_: str = "test") -> None:
    response = await api("POST", "_test/publish", {"topic": topic, "count": count,
                                                   "pad_bytes": pad_bytes, "type": type_},
                         validate=False)
    assert response.status == 200


def stream_subscribers(services: Any) -> list[StreamSubscriber]:
    return [s for s in services.bus.subscribers() if isinstance(s, StreamSubscriber)]


def multipart_with_headers(extra: list[str]) -> tuple[bytes, str]:
    boundary = "nbLimitsBoundary"
    head = [f"--{boundary}", 'Content-Disposition: form-data; name="file"; filename="a.csv"',
            "Content-Type: text/csv", *extra]
    body = ("\r\n".join(head) + "\r\n\r\n").encode() + b"a,b\n1,2\n" + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# -- request statistics -------------------------------------------------------------------


async def test_invented_methods_are_counted_as_one(client, api_path, services):
    anonymous = client(auth=False)
    for index in range(30):
        status, _, body = await anonymous.request(f"X{index}", f"{api_path}info")
        assert status == 405 and error_of(body)["code"] == "method_not_allowed"
    routes = services.monitoring.requests.routes
    assert {method for method, _ in routes} <= COUNTED_METHODS
    assert sum(s.count for (m, _), s in routes.items() if m == "OTHER") >= 30
    labelled = {sample.labels.get("method") for metric in HTTP_REQUEST_DURATION_SECONDS.collect()
                for sample in metric.samples}
    assert not any(m and m.startswith("X") for m in labelled), "jupyter_server's metrics too"


# -- streams --------------------------------------------------------------------------------


async def test_max_hz_has_a_floor(client, api_path):
    status, _, body = await client().request("GET", f"{api_path}stream?topics=logs&max_hz=1e-9",
                                             head_only=True)
    assert status == 400 and error_of(body)["code"] == "invalid_max_hz"
    status, _, _ = await client().request("GET", f"{api_path}stream?topics=logs&max_hz=0.1",
                                          head_only=True)
    assert status == 200


async def test_a_rate_limited_stream_flushes_when_its_queue_reaches_the_backlog(
        api, jp_http_port, api_path, jp_auth_header, services):
    conn = await open_sse(jp_http_port, f"{api_path}stream?topics=logs&max_hz=0.1",
                          headers=jp_auth_header)

    def arrived(kind: str, count: int) -> Any:
        async def check() -> bool:
            await conn.read_for(0.05)
            return sum(f.event == kind for f in conn.frames) >= count
        return check

    await publish(api, "logs", 1, 0, "first")  # the first delivery leaves at once
    await wait_for(arrived("first", 1), timeout=10)
    await publish(api, "logs", 10, 16 * 1024, "burst")  # 160 KiB: over the 64 KiB bound
    await wait_for(arrived("burst", 4), timeout=5)  # well before the 10 s the rate allows
    [sub] = stream_subscribers(services)
    assert sub._queued_bytes <= BACKLOG
    conn.close()


async def test_a_replay_leaves_in_pages_under_the_backlog_bound(
        api, jp_http_port, api_path, jp_auth_header, services):
    await publish(api, "logs", 1, 0, "before")
    base = services.bus.last_id
    count = 500
    await publish(api, "logs", count, 32 * 1024)  # 16 MiB: more than socket buffers hold
    headers = {**jp_auth_header, "Last-Event-ID": str(base)}
    conn = await open_sse(jp_http_port, f"{api_path}stream?topics=logs", headers=headers,
                          rcvbuf=4096)
    # the client reads nothing: the socket fills and what waits for it stays bounded
    sub = await wait_for(lambda: next((s for s in stream_subscribers(services)
                                       if s.writer.backlog() > 0), None))
    assert sub._held is not None, "the replay waits for the client, one page out"
    assert sub.writer.backlog() <= BACKLOG
    await conn.read_frames(count, timeout=60)
    await publish(api, "logs", 2, 0, "after")
    await conn.read_frames(2, timeout=20)
    test = [f for f in conn.frames if f.event == "test"]
    assert [f.data["data"]["index"] for f in test] == list(range(count))
    assert [f.event for f in conn.frames if f.event in ("after", "before")] == ["after"] * 2
    ids = [f.id for f in conn.frames if f.id is not None]
    assert ids == sorted(set(ids)) and min(ids) > base, "an event was sent twice or early"
    conn.close()


async def test_streams_per_user_are_bounded_across_routes(client, api_path, services,
                                                          jp_serverapp):
    routes = ["stream?topics=logs", "monitoring/stream", "lifecycle/jobs/stream"]
    held = []
    for route in routes:
        one = client()
        status, _, _ = await one.request("GET", api_path + route, head_only=True)
        assert status == 200
        held.append(one)
    counts = jp_serverapp.web_app.settings["notebench_open_streams"]
    assert sum(counts.values()) == MAX_STREAMS
    status, _, body = await client().request("GET", f"{api_path}stream?topics=hardware")
    assert status == 429
    error = error_of(body)
    assert error["code"] == "too_many_streams"
    assert error["details"]["max_streams"] == MAX_STREAMS
    assert sum(counts.values()) == MAX_STREAMS  # the refused one is not counted
    await wait_for(lambda: len(stream_subscribers(services)) == MAX_STREAMS)
    held.pop().close()
    await wait_for(lambda: sum(counts.values()) == MAX_STREAMS - 1)
    status, _, _ = await client().request("GET", f"{api_path}stream?topics=hardware",
                                          head_only=True)
    assert status == 200


# -- uploads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [[f"X-Pad{i}: " + "a" * 3000 for i in range(4)],
                                   ["X-Pad: " + "a" * 40_000],
                                   [f"X-H{i}: v" for i in range(12)]],
                         ids=["header bytes", "one long header", "header count"])
async def test_multipart_part_headers_are_bounded(client, api_path, extra):
    body, content_type = multipart_with_headers(extra)
    status, _, data = await client().request("POST", f"{api_path}assets/upload/datasets", body,
                                             {"Content-Type": content_type})
    assert status == 413, data
    assert error_of(data)["code"] == "part_headers_too_large"


async def test_resumable_upload_sessions_are_bounded_per_user(api):
    async def create(name: str, size: int) -> Any:
        return await api("POST", "assets/uploads",
                         {"category": "datasets", "name": name, "size": size})

    first, second = await create("a.csv", 10), await create("b.csv", 10)
    assert first.status == second.status == 201
    third = await create("c.csv", 10)
    assert third.status == 429 and third.body["error"]["code"] == "too_many_uploads"
    assert (await api("DELETE", f"assets/uploads/{second.body['id']}")).status == 200
    over = await create("d.csv", MAX_SESSION_BYTES - 5)
    assert over.status == 413 and over.body["error"]["code"] == "upload_quota_exceeded"
    assert (await create("e.csv", MAX_SESSION_BYTES - 10)).status == 201


# -- metrics ----------------------------------------------------------------------------------


async def test_metric_points_stay_under_max_points_whatever_the_step(api, services):
    await wait_for(lambda: services.monitoring.sampler.samples >= 12)
    for params in ({"since": "-2", "step": "0.001", "max_points": "5"},
                   {"since": "-600", "step": "1", "max_points": "5"},
                   {"since": "0", "step": "0.001", "max_points": "3"}):
        response = await api("GET", "monitoring/metrics", params={"names": "cpu_percent",
                                                                  **params})
        assert response.status == 200, response.body
        [series] = response.body["series"]
        assert 1 <= len(series["t"]) <= int(params["max_points"]), (params, series["t"])
    bad = await api("GET", "monitoring/metrics", params={"step": "inf"})
    assert bad.status == 400 and bad.body["error"]["code"] == "invalid_parameter"


# -- all of it at once ------------------------------------------------------------------------


async def test_memory_stays_flat_under_10000_hostile_requests(api, client, api_path, services,
                                                              jp_http_port, jp_auth_header):
    await publish(api, "logs", 60, 2048)  # something to replay: ~120 KiB per stream
    for name in ("s1.csv", "s2.csv"):  # the user's upload sessions are all taken
        created = await api("POST", "assets/uploads",
                            {"category": "datasets", "name": name, "size": 10})
        assert created.status == 201
    upload = json.dumps({"category": "datasets", "name": "n.csv", "size": 10}).encode()
    part, part_type = multipart_with_headers(["X-Pad: " + "a" * 20_000])
    method_numbers = itertools.count()
    expected = {"method": {405}, "metrics": {200}, "upload": {429}, "hz": {400},
                "replay": {200, 429}, "multipart": {413}}

    async def one(kind: str, anonymous: Client, user: Client) -> None:
        if kind == "method":
            status, _, _ = await anonymous.request(f"X{next(method_numbers)}", f"{api_path}info")
        elif kind == "metrics":
            status, _, _ = await user.request(
                "GET", f"{api_path}monitoring/metrics?names=cpu_percent&since=-600&step=0.001"
                       "&max_points=5")
        elif kind == "upload":
            status, _, _ = await user.request("POST", f"{api_path}assets/uploads", upload,
                                              {"Content-Type": "application/json"})
        elif kind in ("hz", "replay"):
            fresh = Client(jp_http_port, jp_auth_header)
            max_hz = "1e-9" if kind == "hz" else "0.1"
            status, _, _ = await fresh.request(
                "GET", f"{api_path}stream?topics=logs&max_hz={max_hz}&last_event_id=0",
                head_only=True)
            fresh.close()
        else:
            fresh = Client(jp_http_port, jp_auth_header)
            status, _, _ = await fresh.request(
                "POST", f"{api_path}assets/upload/datasets", part, {"Content-Type": part_type})
            fresh.close()
        assert status in expected[kind], (kind, status)

    mix = ["method"] * 5 + ["metrics", "upload", "hz", "replay", "multipart"]

    async def worker(rounds: int) -> None:
        anonymous, user = Client(jp_http_port), Client(jp_http_port, jp_auth_header)
        for _ in range(rounds):
            for kind in mix:
                await one(kind, anonymous, user)
        anonymous.close()
        user.close()

    async def flood(total: int, workers: int = 10) -> None:
        await asyncio.gather(*(worker(total // (workers * len(mix))) for _ in range(workers)))
        await wait_for(lambda: not stream_subscribers(services))

    def rss() -> int:
        gc.collect()
        return psutil.Process(os.getpid()).memory_info().rss

    logging.disable(logging.CRITICAL)  # pytest keeps every log record of the server
    try:
        await flood(2000)  # warm-up: the same requests
        before = rss()
        await flood(10_000)
        after = rss()
    finally:
        logging.disable(logging.NOTSET)
    print(f"RSS {before / 2**20:.1f} MiB after the warm-up, {after / 2**20:.1f} MiB after "
          f"10,000 hostile requests ({(after / before - 1) * 100:+.1f} %)")
    assert after <= before * 1.10, f"RSS grew from {before >> 20} MiB to {after >> 20} MiB"
    assert {m for m, _ in services.monitoring.requests.routes} <= COUNTED_METHODS
