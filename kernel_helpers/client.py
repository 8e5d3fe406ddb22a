"""Client of the notebench server API, usable from a kernel, a script or the CLI.

``discover_server`` finds the Jupyter server that runs notebench (explicit
arguments, then the environment the extension gives its kernels, then Jupyter's
runtime file of an ancestor process). ``Client`` calls the REST API under
``{base_url}notebench/api/`` and follows its Server-Sent Events stream, reconnecting
with ``Last-Event-ID`` when the connection drops.

Only the standard library and orjson are used; ``jupyter_core`` and ``psutil`` are
imported lazily, when discovery needs them.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "ApiError",
    "Client",
    "Event",
    "SSEParser",
    "ServerInfo",
    "ServerNotFound",
    "discover_server",
]

ENV_URL = "NOTEBENCH_SERVER_URL"
ENV_TOKEN = "NOTEBENCH_SERVER_TOKEN"
ENV_WORKSPACE = "NOTEBENCH_WORKSPACE"
ENV_HUB_TOKEN = "JUPYTERHUB_API_TOKEN"

API_PREFIX = "notebench/api/"
ANCESTOR_LEVELS = 6  # how many ancestor processes to look for a runtime file
DEFAULT_RETRY_MS = 1000  # SSE reconnection delay until the server sends ``retry:``
MAX_BACKOFF_S = 30.0

_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


# --------------------------------------------------------------------------- errors


class ServerNotFound(RuntimeError):
    """No notebench/Jupyter server could be found."""


class ApiError(RuntimeError):
    """An HTTP error answered by the server (``status``, ``code``, ``message``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def from_response(cls, status: int, body: bytes | str | None) -> ApiError:
        """Build the error from a response body.

        Understands notebench's ``{"error": {"code", "message"}}``, Jupyter's
        ``{"message", "reason"}`` and falls back to the text of the body.
        """
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "HTTP error"
        default_code = phrase.lower().replace(" ", "_").replace("-", "_")
        raw = body.encode() if isinstance(body, str) else (body or b"")
        try:
            payload = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict):
            err = payload.get("error")
            if isinstance(err, dict):
                return cls(
                    status,
                    str(err.get("code") or default_code),
                    str(err.get("message") or phrase),
                )
            if isinstance(err, str):
                return cls(status, default_code, err)
            if payload.get("message"):
                reason = payload.get("reason")
                code = str(reason) if isinstance(reason, str) and reason else default_code
                return cls(status, code, str(payload["message"]))
        text = raw.decode("utf-8", "replace").strip()
        if text.startswith("<"):  # an HTML error page says nothing more than the status
            text = ""
        return cls(status, default_code, text[:500] or phrase)


# ------------------------------------------------------------------------ discovery


@dataclass
class ServerInfo:
    """Where the server is and how to authenticate to it."""

    url: str  # base URL of the Jupyter server, with base_url and a trailing slash
    token: str
    source: str  # "explicit" | "environment" | "runtime-file"
    root_dir: str | None = None
    workspace: str | None = None  # notebench workspace folder, when known


def _normalize_url(url: str) -> str:
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    return url if url.endswith("/") else url + "/"


def _ancestor_pids(pid: int, levels: int) -> list[int]:
    """``pid`` followed by its parent, grandparent... (``levels`` pids at most)."""
    pids: list[int] = []
    while pid > 0 and len(pids) < levels and pid not in pids:  # pid 1: a container's server
        pids.append(pid)
        parent = _parent_pid(pid)
        if parent is None:
            break
        pid = parent
    return pids


def _parent_pid(pid: int) -> int | None:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return psutil.Process(pid).ppid()
        except Exception:
            return None
    try:  # Linux without psutil
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _url_from_runtime_info(info: Mapping[str, Any]) -> str | None:
    """Connectable URL of a ``jpserver-<pid>.json`` (None for unix sockets)."""
    if info.get("sock"):
        return None
    url = info.get("url")
    if not url:
        port = info.get("port")
        if not port:
            return None
        scheme = "https" if info.get("secure") else "http"
        url = f"{scheme}://localhost:{port}{info.get('base_url') or '/'}"
    parts = urllib.parse.urlsplit(url)
    hostname = str(info.get("hostname", ""))
    if hostname in _WILDCARD_HOSTS:
        # Bound to every interface: the URL names the machine's hostname, which may
        # not resolve inside a container; loopback always works for a local process.
        loopback = "[::1]" if ":" in hostname else "127.0.0.1"
        parts = parts._replace(netloc=f"{loopback}:{parts.port or info.get('port')}")
    return _normalize_url(urllib.parse.urlunsplit(parts))


def _read_runtime_file(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def discover_server(
    url: str | None = None,
    token: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    runtime_dir: str | os.PathLike[str] | None = None,
    ppid: int | None = None,
) -> ServerInfo:
    """Find the server to talk to.

    Order: the explicit ``url``; ``NOTEBENCH_SERVER_URL`` (set by the extension in
    every kernel it starts); the ``jpserver-<pid>.json`` runtime file of the parent
    process or one of its ancestors (a papermill-run kernel's parent is papermill).
    Without a token, ``JUPYTERHUB_API_TOKEN`` is used. Raises ``ServerNotFound``.
    """
    hub_token = environ.get(ENV_HUB_TOKEN) or ""
    workspace = environ.get(ENV_WORKSPACE) or None
    if url:
        tok = token if token is not None else (environ.get(ENV_TOKEN) or hub_token)
        return ServerInfo(_normalize_url(url), tok, "explicit", None, workspace)

    tried = ["no explicit url"]
    env_url = environ.get(ENV_URL)
    if env_url:
        tok = token if token is not None else (environ.get(ENV_TOKEN) or hub_token)
        return ServerInfo(_normalize_url(env_url), tok, "environment", None, workspace)
    tried.append(f"${ENV_URL} not set")

    if runtime_dir is None:
        try:
            from jupyter_core.paths import jupyter_runtime_dir

            runtime_dir = jupyter_runtime_dir()
        except ImportError:
            runtime_dir = None
    if runtime_dir is None:
        tried.append("jupyter_core not installed: no runtime dir")
    else:
        start = os.getppid() if ppid is None else ppid
        pids = _ancestor_pids(start, ANCESTOR_LEVELS)
        for pid in pids:
            path = Path(runtime_dir) / f"jpserver-{pid}.json"
            info = _read_runtime_file(path)
            if info is None:
                continue
            found = _url_from_runtime_info(info)
            if found is None:
                tried.append(f"{path} serves a unix socket (unsupported)")
                continue
            tok = token if token is not None else (str(info.get("token") or "") or hub_token)
            root = info.get("root_dir")
            return ServerInfo(found, tok, "runtime-file", str(root) if root else None, workspace)
        tried.append(f"no jpserver-<pid>.json in {runtime_dir} for ancestor pids {pids}")
    raise ServerNotFound(
        "No notebench server found (" + "; ".join(tried) + "). Pass url= and token=, "
        f"or set {ENV_URL} and {ENV_TOKEN}."
    )


# ------------------------------------------------------------------------------ SSE


@dataclass
class Event:
    """One Server-Sent Event; ``data`` is JSON-decoded when it is JSON."""

    id: int | None
    event: str
    data: Any
    topic: str | None = None


def _make_event(event_id: int | None, event: str, data: Any) -> Event:
    topic = data.get("topic") if isinstance(data, dict) else None
    return Event(event_id, event, data, topic if isinstance(topic, str) else None)


class SSEParser:
    """Incremental ``text/event-stream`` parser: feed bytes, get complete events.

    Follows the HTML spec's field rules: ``data`` lines joined with newlines,
    ``:`` comments ignored, ``retry`` in ms, the ``id`` of the last complete block
    kept for reconnection; CRLF, LF or CR line ends, split anywhere across chunks.
    A block that names an ``event`` but has no ``data`` is still dispatched, with
    data None.
    """

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id  # value to send as Last-Event-ID
        self.retry_ms: int | None = None
        self._buf = b""
        self._bom_checked = False
        self._reset_block()

    def _reset_block(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None  # id field of the block being read

    def feed(self, chunk: bytes) -> list[Event]:
        """Consume ``chunk``; return the events it completes."""
        self._buf += chunk
        if not self._bom_checked:
            if len(self._buf) < 3 and b"\xef\xbb\xbf".startswith(self._buf):
                return []
            self._bom_checked = True
            self._buf = self._buf.removeprefix(b"\xef\xbb\xbf")
        events: list[Event] = []
        buf = self._buf
        start = 0
        n = len(buf)
        while start < n:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, lf if lf >= 0 else n)
            if cr >= 0:
                if cr == n - 1:
                    break  # a CR at the end: the LF of a CRLF may follow
                end, nxt = cr, cr + (2 if buf[cr + 1 : cr + 2] == b"\n" else 1)
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            event = self._line(buf[start:end].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            start = nxt
        self._buf = buf[start:]
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / heartbeat
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        data_lines, event, raw_id = self._data, self._event, self._id
        self._reset_block()
        if raw_id is not None:  # committed only once the block is complete
            self.last_event_id = raw_id or None
        if not data_lines and not event:
            return None  # only id/retry fields (or nothing): no event
        text = "\n".join(data_lines)
        data: Any = None
        if data_lines:
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                data = text
        event_id = int(raw_id) if raw_id and raw_id.isdigit() else None
        return _make_event(event_id, event or "message", data)


# --------------------------------------------------------------------------- client


class Client:
    """Talk to the notebench server API.

    >>> c = Client()                       # discovered from the kernel's environment
    >>> c.get("info")
    >>> for ev in c.stream(["logs", "hardware"]): ...
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30):
        self.server = discover_server(url, token)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, source={self.server.source!r})"

    @property
    def url(self) -> str:
        """Base URL of the Jupyter server (with base_url and a trailing slash)."""
        return self.server.url

    @property
    def api_url(self) -> str:
        """Base URL of the notebench API."""
        return self.url + API_PREFIX

    # ------------------------------------------------------------------ plumbing

    def _target(self, path: str, params: Mapping[str, Any] | None) -> tuple[str, str, str]:
        """(scheme, netloc, path+query) for an API path."""
        full = urllib.parse.urlsplit(self.api_url + path.lstrip("/"))
        query = full.query
        if params:
            extra = urllib.parse.urlencode(_query_items(params), doseq=True)
            query = f"{query}&{extra}" if query else extra
        target = full.path + (f"?{query}" if query else "")
        return full.scheme, full.netloc, target

    def _headers(self, method: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "notebench-client"}
        if self.server.token:
            headers["Authorization"] = f"token {self.server.token}"
        if method.upper() not in ("GET", "HEAD", "OPTIONS"):
            # Token-authenticated requests skip Jupyter's XSRF check; a server
            # without a token still wants a matching cookie/header pair.
            xsrf = secrets.token_hex(16)
            headers["Cookie"] = f"_xsrf={xsrf}"
            headers["X-XSRFToken"] = xsrf
        if extra:
            headers.update(extra)
        return headers

    def _connect(
        self, scheme: str, netloc: str, timeout: float | None
    ) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=timeout)
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=timeout)
        raise ValueError(f"unsupported URL scheme {scheme!r} in {self.url}")

    def _open(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a request; return the open connection and response (status < 400)."""
        scheme, netloc, target = self._target(path, params)
        conn = self._connect(scheme, netloc, self.timeout)
        try:
            conn.request(method.upper(), target, body=body, headers=self._headers(method, headers))
            resp = conn.getresponse()
            if resp.status >= 400:
                raise ApiError.from_response(resp.status, resp.read())
        except BaseException:
            conn.close()
            raise
        return conn, resp

    # ------------------------------------------------------------------ REST

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Call ``{api_url}{path}``; return the decoded JSON (None when empty).

        Raises ``ApiError`` for an HTTP error and ``ConnectionError`` (an OSError)
        when the server cannot be reached. Non-JSON bodies come back as text, or
        bytes when they are not text.
        """
        hdrs = dict(headers or {})
        body: bytes | None = None
        if json is not None:
            body = orjson.dumps(json, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
            hdrs.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
            hdrs.setdefault("Content-Type", "application/octet-stream")
        conn, resp = self._open(method, path, params=params, body=body, headers=hdrs)
        try:
            raw = resp.read()
            ctype = (resp.getheader("Content-Type") or "").lower()
        finally:
            conn.close()
        if not raw:
            return None
        if "json" in ctype or not ctype:
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                if "json" in ctype:
                    raise
        if ctype.startswith("text/") or not ctype:
            return raw.decode("utf-8", "replace")
        return raw

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def info(self) -> Any:
        """``GET info``: server/extension information."""
        return self.get("info")

    def hardware(self) -> Any:
        """``GET hardware``: the hardware profile seen by the server."""
        return self.get("hardware")

    def recommendations(self) -> Any:
        """``GET hardware/recommendations``: recommended training settings."""
        return self.get("hardware/recommendations")

    # ------------------------------------------------------------------ stream

    def stream(
        self,
        topics: Iterable[str] | str,
        *,
        last_event_id: int | str | None = None,
        max_hz: float | None = None,
        reconnect: bool = True,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Iterator[Event]:
        """Follow ``stream?topics=...``, yielding ``Event`` objects.

        With ``reconnect`` a dropped connection is reopened (after the server's
        ``retry`` delay, doubled per failed attempt up to 30 s) with the id of the
        last event seen as ``Last-Event-ID``; an ``Event("reconnecting", data=
        {"attempt", "error", "delay"})`` is yielded before each try. Errors of the
        first connection and HTTP 4xx answers are raised. ``timeout`` is the most
        seconds to wait for bytes (heartbeats included) before treating the
        connection as dead. Closing the generator closes the connection.
        """
        names = [topics] if isinstance(topics, str) else list(topics)
        params: dict[str, Any] = {"topics": ",".join(names)}
        if max_hz is not None:
            params["max_hz"] = max_hz
        last_id = None if last_event_id is None else str(last_event_id)
        retry_ms = DEFAULT_RETRY_MS
        attempt = 0
        connected_once = False
        while True:
            parser = SSEParser(last_id)
            try:
                conn, resp = self._open_stream(params, last_id, timeout)
                connected_once = True
                try:
                    for event in _read_events(resp, parser):
                        attempt = 0
                        yield event
                finally:
                    with contextlib.suppress(Exception):
                        resp.close()
                    conn.close()
                error = "server closed the stream"
            except ApiError as exc:
                if exc.status < 500 or not (reconnect and connected_once):
                    raise
                error = str(exc)
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout...
                if not (reconnect and connected_once):
                    raise
                error = f"{type(exc).__name__}: {exc}"
            finally:
                last_id = parser.last_event_id
                if parser.retry_ms is not None:
                    retry_ms = parser.retry_ms
            if not reconnect:
                return
            attempt += 1
            if max_retries is not None and attempt > max_retries:
                raise ConnectionError(f"stream lost after {max_retries} retries: {error}")
            delay = min(max(retry_ms, 10) / 1000 * 2 ** (attempt - 1), MAX_BACKOFF_S)
            yield Event(None, "reconnecting", {"attempt": attempt, "error": error, "delay": delay})
            time.sleep(delay)

    def _open_stream(
        self, params: Mapping[str, Any], last_id: str | None, timeout: float | None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        conn, resp = self._open("GET", "stream", params=params, headers=headers)
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, resp


def _read_events(resp: http.client.HTTPResponse, parser: SSEParser) -> Iterator[Event]:
    """Events of one response until it ends (errors propagate)."""
    while True:
        try:
            chunk = resp.read1(65536)
        except http.client.IncompleteRead as exc:
            raise ConnectionError("stream cut in the middle of a chunk") from exc
        if not chunk:
            return
        yield from parser.feed(chunk)


def _query_items(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Query pairs: None dropped, booleans as true/false, sequences repeated."""
    items: list[tuple[str, Any]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            items.append((key, ("true" if v else "false") if isinstance(v, bool) else v))
    return items
