"""The event bus and SSE base over real sockets: replay, reset, multiplexing, slow clients."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from notebench.server.events.sse import StreamSubscriber
from tests.server_process import ServerProcess
from tests.sse_client import open_sse


@pytest.fixture
def stream(jp_http_port, jp_base_url, jp_auth_header, http_server_client):
    """``await stream("logs,hardware", last_event_id=..)``: an open SSE connection."""

    async def open_stream(topics: str, *, last_event_id: int | None = None, query: str = "",
                          header_id: bool = True, rcvbuf: int | None = None, auth: bool = True):
        path = f"{jp_base_url}notebench/api/stream?topics={topics}{query}"
        headers = dict(jp_auth_header) if auth else {}
        if last_event_id is not None:
            if header_id:
                headers["Last-Event-ID"] = str(last_event_id)
            else:
                path += f"&last_event_id={last_event_id}"
        conn = await open_sse(jp_http_port, path, headers=headers, rcvbuf=rcvbuf)
        return conn

    return open_stream


def of_type(frames, kind="test"):
    return [f for f in frames if f.event == kind]


async def publish(api, topic="logs", count=1, **extra):
    response = await api("POST", "_test/publish", {"topic": topic, "count": count, **extra},
                         validate=False)
    assert response.status == 200
    return response


async def wait_for(predicate, timeout=10.0, conn=None):
    """Wait until ``predicate()`` holds, reading ``conn`` meanwhile when given."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        if conn is not None:
            await conn.read_for(0.05)
        else:
            await asyncio.sleep(0.02)


async def test_stream_headers_and_retry(stream):
    conn = await stream("logs")
    assert conn.status == 200
    assert conn.headers["content-type"].startswith("text/event-stream")
    await conn.read_for(0.3)
    assert conn.retry == 3000
    conn.close()


@pytest.mark.parametrize("header_id", [True, False], ids=["Last-Event-ID", "query"])
async def test_replay_after_reconnect_has_no_gap_and_no_duplicate(api, stream, header_id):
    first = await stream("logs")
    await publish(api, count=10, type="test", pad_bytes=0)
    await wait_for(lambda: len(of_type(first.frames)) >= 10, conn=first)
    got = of_type(first.frames)
    assert [f.data["data"]["index"] for f in got] == list(range(10))
    last_id = first.last_id
    first.close()

    await publish(api, count=7, type="missed")  # published while nobody listens
    second = await stream("logs", last_event_id=last_id, header_id=header_id)
    await publish(api, count=5, type="live")
    await wait_for(lambda: len(of_type(second.frames, "live")) >= 5, conn=second)
    missed = [f.data["data"]["index"] for f in of_type(second.frames, "missed")]
    live = [f.data["data"]["index"] for f in of_type(second.frames, "live")]
    assert missed == list(range(7))
    assert live == list(range(5))
    ids = [f.id for f in second.frames]
    assert all(i is not None and i > last_id for i in ids)
    assert ids == sorted(set(ids)), "ids repeat or go backwards"
    assert not of_type(second.frames), "events before last_event_id were sent again"
    second.close()


async def test_an_event_committed_before_the_replay_but_delivered_after_it_is_sent_once(
        api, stream, services, monkeypatch):
    """The writer thread hands committed events to the loop a little later; a replay that
    read them from the store meanwhile must not see them arrive again live."""
    first = await stream("logs")
    await publish(api, count=1, type="before")
    await wait_for(lambda: of_type(first.frames, "before"), conn=first)
    last_id = first.last_id
    first.close()

    late: list[Any] = []
    monkeypatch.setattr(services.bus, "deliver_soon", late.append)
    await publish(api, count=3, type="late")  # committed, not yet delivered
    second = await stream("logs", last_event_id=last_id)
    await wait_for(lambda: len(of_type(second.frames, "late")) == 3, conn=second)
    monkeypatch.undo()
    for event in late:
        services.bus.deliver_soon(event)
    await publish(api, count=1, type="after")
    await wait_for(lambda: of_type(second.frames, "after"), conn=second)
    await second.read_for(0.2)
    ids = [f.id for f in second.frames]
    assert [f.data["data"]["index"] for f in of_type(second.frames, "late")] == [0, 1, 2]
    assert ids == sorted(set(ids)), "an event was sent twice"
    second.close()


@pytest.mark.parametrize("notebench_config", [{"event_log_keep": 20}])
async def test_id_older_than_kept_log_gets_reset(api, stream, services):
    await publish(api, count=300)
    await wait_for(lambda: services.bus.pruned_through > 1)
    conn = await stream("logs", last_event_id=1)
    frames = await conn.read_frames(1)
    assert frames[0].event == "reset"
    # the id of the log's end when the replay was asked (other records may follow it)
    assert 300 <= frames[0].id <= services.bus.last_id
    assert frames[0].data["data"]["oldest_kept_id"] > 2
    # the reset id is a valid position: reconnecting from it replays nothing old
    conn.close()
    again = await stream("logs", last_event_id=frames[0].id)
    await publish(api, count=1, type="after")
    await wait_for(lambda: of_type(again.frames, "after"), conn=again)
    assert not of_type(again.frames, "reset") and not of_type(again.frames)
    again.close()


async def test_unknown_future_id_gets_reset(stream, services):
    conn = await stream("logs", last_event_id=services.bus.last_id + 1000)
    frames = await conn.read_frames(1)
    assert frames[0].event == "reset"
    conn.close()


async def test_ephemeral_events_carry_no_id_and_are_not_replayed(api, stream):
    conn = await stream("hardware")
    await publish(api, topic="hardware", count=1, type="durable")
    await publish(api, topic="hardware", count=3, type="sample", replay=False)
    await wait_for(lambda: len(of_type(conn.frames, "sample")) == 3, conn=conn)
    samples = of_type(conn.frames, "sample")
    assert all(f.id is None for f in samples)
    assert all("id:" not in f.raw for f in samples)
    durable_id = of_type(conn.frames, "durable")[0].id
    assert durable_id is not None
    conn.close()
    again = await stream("hardware", last_event_id=durable_id - 1)
    await again.read_for(0.5)
    assert [f.event for f in again.frames] == ["durable"]
    again.close()


async def test_multiplexed_route_delivers_two_topics_on_one_connection(api, stream):
    conn = await stream("logs,hardware")
    await publish(api, topic="logs", count=2, type="a")
    await publish(api, topic="hardware", count=2, type="b")
    await wait_for(lambda: len(of_type(conn.frames, "a")) == 2
                   and len(of_type(conn.frames, "b")) == 2, conn=conn)
    topics = {f.data["topic"] for f in conn.frames if f.event in ("a", "b")}
    assert topics == {"logs", "hardware"}
    conn.close()


async def test_heartbeats_arrive(stream):
    conn = await stream("hardware")
    await conn.read_for(2.6)  # heartbeat interval is 1 s in the test server
    assert conn.comments.count("keepalive") >= 2
    conn.close()


@pytest.mark.parametrize("notebench_config",
                         [{"sse_max_backlog_bytes": 1 << 20}])
async def test_slow_client_is_dropped_while_another_keeps_everything(api, stream, services):
    slow = await stream("hardware", rcvbuf=4096)  # never read again after the head
    fast = await stream("hardware")
    reader = asyncio.ensure_future(fast.read_for(60))
    total = 0
    for _ in range(20):
        await publish(api, topic="hardware", count=10, type="pad", pad_bytes=64 * 1024)
        total += 10
        await asyncio.sleep(0.05)
    await wait_for(lambda: len(of_type(fast.frames, "pad")) == total, timeout=30)
    assert services.bus.dropped_clients >= 1
    hardware_streams = [s for s in services.bus.subscribers()
                        if isinstance(s, StreamSubscriber) and "hardware" in s.topics]
    assert len(hardware_streams) == 1
    indexes = [f.data["data"]["index"] for f in of_type(fast.frames, "pad")]
    assert len(indexes) == total
    reader.cancel()
    slow.close()
    fast.close()


async def test_no_subscriber_left_after_100_cycles(stream, services):
    def streams() -> int:
        return sum(isinstance(s, StreamSubscriber) for s in services.bus.subscribers())

    before = streams()
    for _ in range(100):
        conn = await stream("logs,hardware")
        assert conn.status == 200
        conn.close()
    await wait_for(lambda: streams() == before == 0)


async def test_stream_refuses_bad_requests(stream):
    anonymous = await stream("logs", auth=False)
    assert anonymous.status == 403
    anonymous.close()
    unknown = await stream("logs,nope")
    assert unknown.status == 400
    unknown.close()
    bad_id = await stream("logs", last_event_id=None, query="&last_event_id=abc")
    assert bad_id.status == 400
    bad_id.close()


async def test_max_hz_coalesces_samples_but_keeps_every_durable_event(api, stream):
    conn = await stream("hardware", query="&max_hz=2")
    await conn.read_for(0.2)
    for _ in range(20):
        await publish(api, topic="hardware", count=1, type="sample", replay=False)
        await publish(api, topic="hardware", count=1, type="durable")
        await asyncio.sleep(0.01)
    await wait_for(lambda: len(of_type(conn.frames, "durable")) == 20, conn=conn)
    await conn.read_for(0.7)
    samples = of_type(conn.frames, "sample")
    assert 1 <= len(samples) < 10
    conn.close()


def test_logs_topic_resumes_exactly_after_a_server_restart(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root).start()
    try:
        async def scenario() -> None:
            path = f"{server.base_url}notebench/api/stream?topics=logs"
            auth = {"Authorization": f"token {server.token}"}
            conn = await open_sse(server.port, path, headers=auth)
            server.request("POST", "_test/log", {"message": "before", "count": 5})

            def befores() -> list[Any]:
                return [f for f in conn.frames if "before" in f.data["data"]["message"]]

            await wait_for(lambda: len(befores()) == 5, timeout=20, conn=conn)
            last_id = max(f.id for f in befores())
            conn.close()
            server.request("POST", "_test/log", {"message": "unseen", "count": 4})
            server.kill()
            server.start()
            server.request("POST", "_test/log", {"message": "after", "count": 3})
            resume = {**auth, "Last-Event-ID": str(last_id)}
            again = await open_sse(server.port, path, headers=resume)

            def ours() -> list[str]:
                messages = [f.data["data"]["message"] for f in again.frames]
                return [m for m in messages if m.split()[0] in ("before", "unseen", "after")]

            await wait_for(lambda: len(ours()) >= 7, timeout=20, conn=again)
            await again.read_for(0.5)  # nothing more may follow
            ours = ours()
            assert ours == [f"unseen {i}" for i in range(4)] + [f"after {i}" for i in range(3)]
            ids = [f.id for f in again.frames]
            assert ids == sorted(set(ids)) and min(ids) > last_id
            again.close()

        asyncio.run(scenario())
    finally:
        server.stop()


async def test_http10_client_gets_the_unchunked_fallback(api, jp_http_port, jp_base_url,
                                                         jp_auth_header, http_server_client):
    """Without chunked encoding the writer takes Tornado's own path; events still arrive."""
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    request = (f"GET {jp_base_url}notebench/api/stream?topics=hardware HTTP/1.0\r\n"
               f"Authorization: {jp_auth_header['Authorization']}\r\n\r\n")
    writer.write(request.encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    assert b" 200 " in head.split(b"\r\n")[0]
    assert b"chunked" not in head.lower()
    await publish(api, topic="hardware", count=3, type="plain")
    received = b""
    while received.count(b"event: plain") < 3:
        received += await asyncio.wait_for(reader.read(65536), 20)
    assert b"\r\n" not in received.split(b"\n\n", 1)[1], "chunk framing leaked into the body"
    writer.close()
