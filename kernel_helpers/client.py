"""Client of the notebench server API, usable from a kernel, a script or the CLI.

``Client`` calls the REST API under ``{base_url}notebench/api/`` of the server that
``discover_server`` finds, and follows its Server-Sent Events stream, reconnecting with
``Last-Event-ID`` when the connection drops.
"""

from __future__ import annotations

import contextlib
import http.client
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

import orjson

from .discovery import ServerInfo, ServerNotFound, discover_server
from .sse import Event, SSEParser, _read_events

__all__ = [
    "ApiError",
    "Client",
    "Event",
    "SSEParser",
    "ServerInfo",
    "ServerNotFound",
    "discover_server",
]

API_PREFIX = "notebench/api/"
DEFAULT_RETRY_MS = 1000  # SSE reconnection delay until the server sends ``retry:``
MAX_BACKOFF_S = 30.0


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




class Client:
    """Talk to the notebench server API.

    >>> c = Client()                       # discovered from the kernel's environment
    >>> c.get("info")
    >>> for ev in c.stream(["logs", "hardware"]): ...

    A discovered token is sent only to the server it belongs to: ``Client(url=...)`` of
    another server sends no ``Authorization`` header unless ``token`` is given. Inside a
    job nothing is discovered but the server's URL: pass your own ``token``.
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
