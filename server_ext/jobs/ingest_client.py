"""``IngestClient``: a worker's blocking calls to one job's ingest routes on the server.

The routes (docs/jobs.md "Jobs on a Dask cluster") live under
``<server>/notebench/api/lifecycle/jobs/<id>/ingest`` and take the job's own token
(``Authorization: token nbj_...``). Errors keep their extra fields (the ``size`` of a
``409 offset_mismatch``), which the forwarder resumes from.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from notebench.client import API_PREFIX, ApiError

from ..resumable import OFFSET_HEADER


class IngestError(ApiError):
    """An error answer of an ingest route; ``details`` holds its extra fields (``size``)."""

    def __init__(self, status: int, code: str, message: str,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(status, code, message)
        self.details = dict(details or {})

    @classmethod
    def from_answer(cls, status: int, body: bytes) -> IngestError:
        error = ApiError.from_response(status, body)
        details: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            payload = json.loads(body)
            if isinstance(payload, dict):
                inner = payload.get("error")
                inner = inner if isinstance(inner, dict) else {}
                for source in (payload, inner, inner.get("details")):
                    if isinstance(source, dict):
                        details.update({k: v for k, v in source.items() if k != "error"})
        return cls(status, error.code, error.message, details)

    @property
    def size(self) -> int | None:
        """The server's size of the file an ``offset_mismatch`` is about."""
        size = self.details.get("size")
        return size if isinstance(size, int) and not isinstance(size, bool) else None


class IngestClient:
    """Blocking calls to one job's ingest routes, on one kept-alive connection.

    Errors: ``IngestError`` for an error answer, ``ConnectionError`` when the server
    cannot be reached or the connection broke (the request may or may not have arrived:
    the routes make a resend harmless).
    """

    def __init__(self, server_url: str, job_id: str, token: str, timeout: float = 30.0) -> None:
        base = server_url.rstrip("/") + "/" + API_PREFIX
        url = urllib.parse.urlsplit(base + f"lifecycle/jobs/{urllib.parse.quote(job_id)}/ingest")
        if url.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {url.scheme!r} in {server_url}")
        self.scheme, self.netloc, self.path = url.scheme, url.netloc, url.path
        self.timeout = timeout
        self._headers = {"Authorization": f"token {token}", "Accept": "application/json",
                         "User-Agent": "notebench-forwarder"}
        self._conn: http.client.HTTPConnection | None = None

    def state(self) -> dict[str, Any]:
        """``GET ingest``: the server's stream sizes, complete files and the control."""
        return self._call("GET", "", {}, None)

    def append(self, name: str, offset: int, data: bytes) -> dict[str, Any]:
        """``POST ingest/streams/<name>?offset=N``: bytes ``[N, N+len)`` of a stream file."""
        return self._call("POST", f"/streams/{name}", {"offset": offset}, data)

    def put(self, rel: str, offset: int, total: int, sha256: str, data: bytes
            ) -> dict[str, Any]:
        """``PUT ingest/files/<rel>?offset=N&total=T&sha256=H``: one chunk of a file."""
        return self._call("PUT", "/files/" + urllib.parse.quote(rel),
                          {"offset": offset, "total": total, "sha256": sha256}, data)

    def upload_create(self, rel: str, size: int, sha256: str) -> dict[str, Any]:
        """``POST ingest/uploads``: a resumable upload of a large file; its status."""
        body = json.dumps({"name": rel, "size": size, "sha256": sha256}).encode()
        return self._call("POST", "/uploads", {}, body, "application/json")

    def upload_patch(self, uid: str, offset: int, data: bytes) -> dict[str, Any]:
        """``PATCH ingest/uploads/<uid>`` with ``Upload-Offset``: the next chunk."""
        return self._call("PATCH", f"/uploads/{uid}", {}, data,
                          "application/offset+octet-stream", {OFFSET_HEADER: str(offset)})

    def upload_offset(self, uid: str) -> int:
        """``HEAD ingest/uploads/<uid>``: the offset the server's copy reached."""
        _, headers, _ = self._request("HEAD", f"/uploads/{uid}", {}, None)
        try:
            return int(headers.get(OFFSET_HEADER) or "")
        except ValueError:
            raise ConnectionError(f"HEAD /uploads/{uid}: no {OFFSET_HEADER}") from None

    def upload_complete(self, uid: str) -> dict[str, Any]:
        """``POST ingest/uploads/<uid>/complete``: check and put the file in place."""
        return self._call("POST", f"/uploads/{uid}/complete", {}, b"")

    def upload_delete(self, uid: str) -> dict[str, Any]:
        """``DELETE ingest/uploads/<uid>``: abort an upload."""
        return self._call("DELETE", f"/uploads/{uid}", {}, None)

    def heartbeat(self, info: Mapping[str, Any]) -> dict[str, Any]:
        """``POST ingest/heartbeat``: where the job runs; answers the control."""
        return self._call("POST", "/heartbeat", {}, json.dumps(dict(info)).encode(),
                          "application/json")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _call(self, method: str, suffix: str, query: dict[str, Any], body: bytes | None,
              content_type: str = "application/octet-stream",
              extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        _, _, raw = self._request(method, suffix, query, body, content_type, extra)
        target = self.path + suffix
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise ConnectionError(f"{method} {target}: not JSON: {raw[:200]!r}") from exc
        return answer if isinstance(answer, dict) else {}

    def _request(self, method: str, suffix: str, query: dict[str, Any], body: bytes | None,
                 content_type: str = "application/octet-stream",
                 extra: Mapping[str, str] | None = None
                 ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request: its status, headers and body (``IngestError`` for an error)."""
        target = self.path + suffix + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {**self._headers, **(extra or {})}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            conn = self._connection()
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ConnectionError(f"{method} {target}: {type(exc).__name__}: {exc}") from exc
        if response.status >= 400:
            raise IngestError.from_answer(response.status, raw)
        return response.status, response.headers, raw

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            kind = (http.client.HTTPSConnection if self.scheme == "https"
                    else http.client.HTTPConnection)
            self._conn = kind(self.netloc, timeout=self.timeout)
        return self._conn
