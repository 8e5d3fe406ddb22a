"""notebench.client: server discovery, SSE parsing, API errors, reconnection."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from notebench.client import (
    ApiError,
    Client,
    Event,
    ServerInfo,
    ServerNotFound,
    SSEParser,
    discover_server,
)

NO_PID = 2**22 + 12345  # above Linux's pid_max: never a live process


def write_runtime(runtime: Path, pid: int, **info) -> Path:
    data = {
        "url": "http://localhost:8899/a%40b/",
        "hostname": "localhost",
        "port": 8899,
        "sock": "",
        "secure": False,
        "base_url": "/a%40b/",
        "token": "filetoken",
        "root_dir": "/srv/root",
        "password": False,
        "pid": pid,
        "version": "2.21.0",
    }
    data.update(info)
    path = runtime / f"jpserver-{pid}.json"
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------ discovery


def test_explicit_url_wins_over_environment(tmp_path: Path) -> None:
    env = {"NOTEBENCH_SERVER_URL": "http://env:1/", "NOTEBENCH_SERVER_TOKEN": "envtok"}
    write_runtime(tmp_path, 4242)
    info = discover_server("http://h:2/base", "tok", environ=env, runtime_dir=tmp_path, ppid=4242)
    assert info == ServerInfo("http://h:2/base/", "tok", "explicit", None)


def test_explicit_url_token_from_env_then_hub_for_the_same_server(tmp_path: Path) -> None:
    env = {"NOTEBENCH_SERVER_URL": "http://h:3/", "NOTEBENCH_SERVER_TOKEN": "envtok",
           "JUPYTERHUB_API_TOKEN": "hub"}
    assert discover_server("h:3", environ=env, runtime_dir=tmp_path).token == "envtok"
    env = {"NOTEBENCH_SERVER_URL": "http://h:3/", "JUPYTERHUB_API_TOKEN": "hub"}
    info = discover_server("h:3", environ=env, runtime_dir=tmp_path)
    assert (info.url, info.token, info.source) == ("http://h:3/", "hub", "explicit")
    assert discover_server("http://h:3/", environ={}, runtime_dir=tmp_path).token == ""


def test_explicit_url_of_another_server_gets_no_discovered_token(tmp_path: Path) -> None:
    # the environment's and the hub's tokens belong to the environment's server only
    env = {"NOTEBENCH_SERVER_URL": "http://127.0.0.1:8888/base/",
           "NOTEBENCH_SERVER_TOKEN": "envtok", "JUPYTERHUB_API_TOKEN": "hub"}
    for other in ("http://elsewhere:8888/base/", "http://127.0.0.1:8889/base/",
                  "https://127.0.0.1:8888/base/", "http://127.0.0.1:8888/other/",
                  "http://127.0.0.1:8888/", "http://127.0.0.1:8888@evil/base/"):
        assert discover_server(other, environ=env, runtime_dir=tmp_path).token == "", other
    for same in ("127.0.0.1:8888/base", "http://localhost:8888/base/",
                 "HTTP://127.0.0.1:8888/base"):
        assert discover_server(same, environ=env, runtime_dir=tmp_path).token == "envtok"
    # without a server of their own, tokens of the environment go nowhere
    loose = {"NOTEBENCH_SERVER_TOKEN": "envtok", "JUPYTERHUB_API_TOKEN": "hub"}
    assert discover_server("h:3", environ=loose, runtime_dir=tmp_path, ppid=NO_PID).token == ""
    # an explicit token goes wherever it is sent
    assert discover_server("http://elsewhere/", "mine", environ=env).token == "mine"


def test_environment_before_runtime_file(tmp_path: Path) -> None:
    write_runtime(tmp_path, 4242)
    env = {
        "NOTEBENCH_SERVER_URL": "http://127.0.0.1:8888/a%40b/",
        "NOTEBENCH_SERVER_TOKEN": "envtok",
        "NOTEBENCH_WORKSPACE": "/srv/root/notebench",
    }
    info = discover_server(environ=env, runtime_dir=tmp_path, ppid=4242)
    assert info.source == "environment"
    assert info.url == "http://127.0.0.1:8888/a%40b/"
    assert info.token == "envtok"
    assert info.workspace == "/srv/root/notebench"
    # an explicit token overrides the environment's
    assert discover_server(token="x", environ=env).token == "x"


def test_environment_without_token_uses_hub_token() -> None:
    env = {"NOTEBENCH_SERVER_URL": "http://127.0.0.1:1/user/a", "JUPYTERHUB_API_TOKEN": "hub"}
    info = discover_server(environ=env)
    assert (info.url, info.token) == ("http://127.0.0.1:1/user/a/", "hub")


def test_runtime_file_of_parent(tmp_path: Path) -> None:
    write_runtime(tmp_path, 4242)
    info = discover_server(environ={}, runtime_dir=tmp_path, ppid=4242)
    assert info == ServerInfo(
        "http://localhost:8899/a%40b/", "filetoken", "runtime-file", "/srv/root"
    )


def test_runtime_file_wildcard_host_becomes_loopback(tmp_path: Path) -> None:
    write_runtime(tmp_path, 4242, url="http://myhost:9000/", hostname="0.0.0.0", port=9000)
    info = discover_server(environ={}, runtime_dir=tmp_path, ppid=4242)
    assert info.url == "http://127.0.0.1:9000/"
    write_runtime(tmp_path, 4242, url="http://myhost:9000/", hostname="::", port=9000)
    assert discover_server(environ={}, runtime_dir=tmp_path, ppid=4242).url == "http://[::1]:9000/"


def test_runtime_file_without_token_uses_hub_token(tmp_path: Path) -> None:
    write_runtime(tmp_path, 4242, token="")
    info = discover_server(environ={"JUPYTERHUB_API_TOKEN": "hub"}, runtime_dir=tmp_path, ppid=4242)
    assert info.token == "hub"


def test_runtime_file_of_an_ancestor(tmp_path: Path) -> None:
    # Start the walk at this process: the file belongs to its parent, one level up
    # (like a papermill kernel whose parent is papermill, started by the server).
    write_runtime(tmp_path, os.getppid(), url="http://localhost:7777/")
    info = discover_server(environ={}, runtime_dir=tmp_path, ppid=os.getpid())
    assert (info.url, info.source) == ("http://localhost:7777/", "runtime-file")


def test_unix_socket_server_is_skipped(tmp_path: Path) -> None:
    write_runtime(tmp_path, 4242, sock="/tmp/jp.sock", url="http+unix://%2Ftmp%2Fjp.sock/")
    with pytest.raises(ServerNotFound, match="unix socket"):
        discover_server(environ={}, runtime_dir=tmp_path, ppid=4242)


def test_not_found_says_what_was_tried(tmp_path: Path) -> None:
    write_runtime(tmp_path, 4242)  # someone else's server
    with pytest.raises(ServerNotFound) as err:
        discover_server(environ={}, runtime_dir=tmp_path, ppid=NO_PID)
    msg = str(err.value)
    assert "NOTEBENCH_SERVER_URL" in msg
    assert str(tmp_path) in msg
    assert isinstance(err.value, RuntimeError)


def test_runtime_file_token_only_for_its_server(tmp_path: Path) -> None:
    write_runtime(tmp_path, 4242)
    same = discover_server("http://localhost:8899/a@b", environ={}, runtime_dir=tmp_path,
                           ppid=4242)
    assert same.token == "filetoken"
    other = discover_server("http://evil:8899/a%40b/", environ={}, runtime_dir=tmp_path,
                            ppid=4242)
    assert other.token == ""


def test_interactive_kernel_takes_the_token_of_its_servers_runtime_file(tmp_path: Path) -> None:
    # the extension puts only the URL into a kernel's environment, not its token
    write_runtime(tmp_path, 4242)
    env = {"NOTEBENCH_SERVER_URL": "http://127.0.0.1:8899/a%40b/"}
    info = discover_server(environ=env, runtime_dir=tmp_path, ppid=4242)
    assert (info.url, info.token, info.source) == (
        "http://127.0.0.1:8899/a%40b/", "filetoken", "environment")
    # a server bound to every interface: its URL names the host, the file's too
    write_runtime(tmp_path, 4242, url="http://myhost:9000/", hostname="0.0.0.0", port=9000)
    env = {"NOTEBENCH_SERVER_URL": "http://myhost:9000/"}
    assert discover_server(environ=env, runtime_dir=tmp_path, ppid=4242).token == "filetoken"
    # the runtime file of another server lends its token to nobody
    env = {"NOTEBENCH_SERVER_URL": "http://127.0.0.1:7000/"}
    assert discover_server(environ=env, runtime_dir=tmp_path, ppid=4242).token == ""


def job_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"NOTEBENCH_JOB_DIR": str(tmp_path / "job"), **extra}


def test_job_never_reads_the_servers_runtime_file_and_uses_the_token_it_is_given(
        tmp_path: Path) -> None:
    write_runtime(tmp_path, 4242)  # the server's file, with the owner's token
    env = job_env(tmp_path, NOTEBENCH_SERVER_URL="http://localhost:8899/a%40b/")
    with pytest.raises(ServerNotFound) as err:
        discover_server(environ=env, runtime_dir=tmp_path, ppid=4242)
    assert "token=" in str(err.value) and "NOTEBENCH_SERVER_TOKEN" in str(err.value)
    with pytest.raises(ServerNotFound, match="runtime file is not read"):
        discover_server(environ=job_env(tmp_path), runtime_dir=tmp_path, ppid=4242)
    # an explicit URL of the same server: no token either
    explicit = discover_server("http://localhost:8899/a%40b/", environ=env,
                               runtime_dir=tmp_path, ppid=4242)
    assert explicit.token == ""
    # what the job is given explicitly it uses
    info = discover_server(token="mine", environ=env, runtime_dir=tmp_path, ppid=4242)
    assert (info.url, info.token, info.source) == (
        "http://localhost:8899/a%40b/", "mine", "environment")
    env["NOTEBENCH_SERVER_TOKEN"] = "viewer"  # set in the job by its notebook
    assert discover_server(environ=env, runtime_dir=tmp_path, ppid=4242).token == "viewer"
    # a server without authentication: an empty token, given explicitly
    assert discover_server(token="", environ=job_env(
        tmp_path, NOTEBENCH_SERVER_URL="http://h:1/"), runtime_dir=tmp_path).token == ""


def test_same_server() -> None:
    from notebench.discovery import same_server

    assert same_server("http://localhost:80/", "127.0.0.1")
    assert same_server("https://h/b%40c", "https://H:443/b@c/")
    assert not same_server("http://h:1/", "https://h:1/")
    assert not same_server("http://h:1/a/", "http://h:1/a/b/")
    assert not same_server("http://h:1/", "http://h:x/")


def test_client_urls() -> None:
    c = Client("http://127.0.0.1:1/a%40b", "t")
    assert c.url == "http://127.0.0.1:1/a%40b/"
    assert c.api_url == "http://127.0.0.1:1/a%40b/notebench/api/"
    assert c.server.source == "explicit"


# ------------------------------------------------------------------- ApiError


def test_api_error_from_notebench_body() -> None:
    body = b'{"error": {"code": "job_not_found", "message": "no job 7"}}'
    err = ApiError.from_response(404, body)
    assert (err.status, err.code, err.message) == (404, "job_not_found", "no job 7")
    assert "job_not_found" in str(err)


def test_api_error_from_jupyter_and_text_bodies() -> None:
    err = ApiError.from_response(403, b'{"message": "Forbidden", "reason": null}')
    assert (err.status, err.code, err.message) == (403, "forbidden", "Forbidden")
    err = ApiError.from_response(502, b"<html>bad gateway</html>")
    assert (err.code, err.message) == ("bad_gateway", "Bad Gateway")
    err = ApiError.from_response(502, b"upstream down")
    assert (err.code, err.message) == ("bad_gateway", "upstream down")
    err = ApiError.from_response(500, b"")
    assert (err.code, err.message) == ("internal_server_error", "Internal Server Error")


# ------------------------------------------------------------------ SSE parser


def feed_all(chunks: list[bytes]) -> tuple[list[Event], SSEParser]:
    parser = SSEParser()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events, parser


STREAM = (
    b"\xef\xbb\xbfretry: 2500\r\n"
    b": heartbeat\r\n\r\n"
    b'id: 1\r\nevent: logs\r\ndata: {"topic": "logs", "line": "h\xc3\xa9"}\r\n\r\n'
    b"data: first line\ndata:second line\n\n"
    b'id: 2\nevent: hardware\ndata: {"topic": "hardware",\ndata:  "cpu": 5}\n\n'
    b": another comment\n"
    b"id: 3\n\n"  # id only: no event, but remembered
    b"event: reset\rdata: {}\r\r"
    b"data: 7\n\n"
    b"data: partial"  # incomplete: never dispatched
)

EXPECTED = [
    Event(1, "logs", {"topic": "logs", "line": "hé"}, "logs"),
    Event(None, "message", "first line\nsecond line", None),
    Event(2, "hardware", {"topic": "hardware", "cpu": 5}, "hardware"),
    Event(None, "reset", {}, None),
    Event(None, "message", 7, None),
]


def test_sse_parser_whole_stream() -> None:
    events, parser = feed_all([STREAM])
    assert events == EXPECTED
    assert parser.retry_ms == 2500
    assert parser.last_event_id == "3"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_sse_parser_split_across_chunks(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    events, parser = feed_all(chunks)
    assert events == EXPECTED
    assert (parser.retry_ms, parser.last_event_id) == (2500, "3")


def test_sse_parser_field_rules() -> None:
    events, parser = feed_all(
        [b"event: tick\n\n", b"data\n\n", b"retry: soon\nid: x\0y\nid: 9\ndata:{bad json\n\n"]
    )
    assert events == [
        Event(None, "tick", None, None),
        Event(None, "message", "", None),
        Event(9, "message", "{bad json", None),
    ]
    assert parser.retry_ms is None
    assert parser.last_event_id == "9"


# --------------------------------------------------- real HTTP: REST and reconnect


class FakeApi(BaseHTTPRequestHandler):
    """A stand-in notebench API: info, errors, echo, and a stream that drops."""

    server: FakeServer

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        prefix = "/base/notebench/api/"
        self.server.authorizations.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != "token sekret":
            return self._json(403, {"message": "Forbidden", "reason": None})
        path, _, query = self.path.partition("?")
        if path == prefix + "info":
            return self._json(200, {"name": "notebench", "query": query})
        if path == prefix + "stream":
            return self._stream(query)
        return self._json(404, {"error": {"code": "not_found", "message": path}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        xsrf_ok = self.headers.get("Cookie") == "_xsrf=" + self.headers.get("X-XSRFToken", "")
        self._json(201, {"got": body, "xsrf_ok": xsrf_ok})

    def _frame(self, n: int) -> bytes:
        return f'id: {n}\nevent: logs\ndata: {{"topic": "logs", "n": {n}}}\n\n'.encode()

    def _stream(self, query: str) -> None:
        srv = self.server
        with srv.lock:
            conn_no = len(srv.connections)
            srv.connections.append((self.headers.get("Last-Event-ID"), query))
        start = int(self.headers.get("Last-Event-ID") or 0) + 1
        chunked = srv.mode == "chunked"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()

        send(b"retry: 20\n: hello\n\n")
        for n in range(start, start + 3):
            send(self._frame(n))
        if srv.mode == "die":  # the server goes away for good (before this stream ends)
            srv.stop()
            self.close_connection = True
            return
        if conn_no == 0:
            # drop the connection in the middle of event 4 (and of a chunk)
            partial = self._frame(start + 3)[:12]
            self.wfile.write(b"%x\r\n%s" % (len(partial) + 10, partial) if chunked else partial)
            self.wfile.flush()
            self.close_connection = True
            return
        send(b"event: reset\ndata: {}\n\n")
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), FakeApi)
        self.mode = mode
        self.lock = threading.Lock()
        self.connections: list[tuple[str | None, str]] = []
        self.authorizations: list[str | None] = []

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture(params=["eof", "chunked"])
def fake_server(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    server = FakeServer(request.param)
    if request.param == "chunked":
        FakeApi.protocol_version = "HTTP/1.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        FakeApi.protocol_version = "HTTP/1.0"
        server.shutdown()
        server.server_close()


def client_for(server: FakeServer, token: str = "sekret") -> Client:
    return Client(f"http://127.0.0.1:{server.server_address[1]}/base/", token, timeout=5)


def test_rest_requests(fake_server: FakeServer) -> None:
    c = client_for(fake_server)
    assert c.info() == {"name": "notebench", "query": ""}
    got = c.get("info", params={"a": 1, "flag": True, "skip": None, "many": [1, 2]})
    assert got["query"] == "a=1&flag=true&many=1&many=2"
    assert c.post("jobs", json={"x": [1, 2]}) == {"got": {"x": [1, 2]}, "xsrf_ok": True}
    with pytest.raises(ApiError) as err:
        c.get("nope")
    assert (err.value.status, err.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as err:
        client_for(fake_server, token="wrong").info()
    assert (err.value.status, err.value.code) == (403, "forbidden")


def test_stream_reconnects_without_gap_or_duplicate(fake_server: FakeServer) -> None:
    c = client_for(fake_server)
    seen: list[Event] = []
    stream = c.stream(["logs", "hardware"], max_hz=4, timeout=5)
    for event in stream:
        seen.append(event)
        if event.event == "reset":
            break
    stream.close()
    kinds = [e.event for e in seen]
    assert kinds == ["logs"] * 3 + ["reconnecting"] + ["logs"] * 3 + ["reset"]
    assert [e.data["n"] for e in seen if e.event == "logs"] == [1, 2, 3, 4, 5, 6]
    assert [e.id for e in seen if e.event == "logs"] == [1, 2, 3, 4, 5, 6]
    assert all(e.topic == "logs" for e in seen if e.event == "logs")
    reconnecting = seen[3]
    assert reconnecting.id is None
    assert reconnecting.data["attempt"] == 1
    assert reconnecting.data["error"]
    assert reconnecting.data["delay"] == pytest.approx(0.02)  # the server's retry: 20
    assert [h for h, _ in fake_server.connections] == [None, "3"]
    assert fake_server.connections[0][1] == "topics=logs%2Chardware&max_hz=4"


def test_stream_without_reconnect_stops(fake_server: FakeServer) -> None:
    c = client_for(fake_server)
    events = []
    try:
        for event in c.stream("logs", last_event_id=10, reconnect=False, timeout=5):
            events.append(event)
    except OSError:
        assert fake_server.mode == "chunked"  # a torn chunk is an error, not an EOF
    else:
        assert fake_server.mode == "eof"
    assert [e.id for e in events] == [11, 12, 13]
    assert fake_server.connections == [("10", "topics=logs")]


def test_stream_gives_up_after_max_retries() -> None:
    server = FakeServer("die")
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        c = client_for(server)
        seen: list[Event] = []
        with pytest.raises(ConnectionError, match="after 2 retries"):
            for event in c.stream("logs", timeout=5, max_retries=2):
                seen.append(event)
    finally:
        server.stop()
    assert [e.id for e in seen[:3]] == [1, 2, 3]
    assert [(e.event, e.data["attempt"]) for e in seen[3:]] == [
        ("reconnecting", 1),
        ("reconnecting", 2),
    ]
    assert "Connection" in seen[4].data["error"]  # refused: nothing listens anymore
    assert seen[4].data["delay"] == pytest.approx(0.04)  # doubled


def test_stream_http_error_is_raised(fake_server: FakeServer) -> None:
    with pytest.raises(ApiError) as err:
        next(client_for(fake_server, token="wrong").stream("logs"))
    assert err.value.status == 403


def test_unreachable_server_raises_connection_error() -> None:
    c = Client("http://127.0.0.1:9/", "t", timeout=2)  # discard port: nothing listens
    with pytest.raises(ConnectionError):
        c.info()
    with pytest.raises(ConnectionError):
        next(c.stream("logs"))


def test_client_sends_a_discovered_token_only_to_its_server(
        fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    port = fake_server.server_address[1]
    monkeypatch.setenv("NOTEBENCH_SERVER_URL", f"http://127.0.0.1:{port}/base/")
    monkeypatch.setenv("NOTEBENCH_SERVER_TOKEN", "sekret")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hubsekret")
    monkeypatch.delenv("NOTEBENCH_JOB_DIR", raising=False)
    assert Client(timeout=5).info()["name"] == "notebench"  # its own server: the token
    assert fake_server.authorizations == ["token sekret"]
    # the same server under another local name is still its server
    assert Client(f"http://localhost:{port}/base", timeout=5).info()["name"] == "notebench"
    # another server (here: another base path of the same port) gets no token at all
    with pytest.raises(ApiError) as err:
        Client(f"http://127.0.0.1:{port}/other/", timeout=5).info()
    assert err.value.status == 403
    assert fake_server.authorizations[-1] is None
