"""A stand-in for the server's ingest routes, for worker-side tests without a server.

``IngestStandIn`` answers ``lifecycle/jobs/<id>/ingest`` (GET), ``.../streams/<name>``
(POST), ``.../files/<rel>`` (PUT), ``.../heartbeat`` (POST) and the resumable uploads
(``.../uploads`` POST, ``.../uploads/<uid>`` PATCH/HEAD/DELETE, ``.../complete`` POST) as
docs/jobs.md describes them, keeps what arrived in memory, and can misbehave on demand:
``cut()`` drops every connection until ``restore()``, ``fail_with(503)`` answers errors,
``drop_answers(n)`` handles the next ``n`` writes but never answers them, ``truncate``
forgets the tail of a stream, ``lose_part_after(n)`` a file's part after ``n`` more
chunks (a server that lost bytes), ``cut_next_patch(n)`` keeps ``n`` bytes of the next
upload chunk and drops its connection, ``forget_uploads()`` loses every upload. Its
rules are the ingest sink's (``ingest.py``): a chunk past the end is refused with the
size, bytes it holds are not written twice, a file's chunk at offset 0 starts its part
anew; an upload chunk must start at the offset reached (409 with it otherwise).
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from notebench.server.errors import ApiError
from notebench.server.jobs.ingest import MAX_INGEST_CHUNK, STREAMS, check_relative


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    standin: IngestStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.standin.handle(self)

    do_POST = do_PUT = do_PATCH = do_HEAD = do_DELETE = do_GET


class IngestStandIn:
    """The ingest routes of one job (see the module docstring)."""

    def __init__(self, job_id: str, token: str = "nbj_test-token") -> None:
        self.job_id = job_id
        self.token = token
        self.streams: dict[str, bytearray] = {name: bytearray() for name in STREAMS}
        self.files: dict[str, bytes] = {}
        self.parts: dict[str, bytearray] = {}
        #: resumable uploads: uid -> {"name", "size", "sha256", "data"}
        self.uploads: dict[str, dict[str, Any]] = {}
        self._cut_patch: int | None = None
        self._forget_at_cut = False
        self.control: dict[str, Any] = {"stop": None, "paused": False, "signal": None}
        self.ended = False
        self.heartbeats: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, route, query
        self.refused = 0  # requests dropped or failed on purpose
        self.mismatches = 0  # 409 offset_mismatch answers
        self._cut = False
        self._fail_status: int | None = None
        self._unanswered = 0
        self._lose_part_in: int | None = None
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.standin = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL (the API is under ``notebench/api/``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> IngestStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- misbehaving ---

    def cut(self) -> None:
        """Drop every connection without an answer until ``restore``."""
        self._cut = True

    def fail_with(self, status: int) -> None:
        """Answer every request with ``status`` until ``restore``."""
        self._fail_status = status

    def restore(self) -> None:
        self._cut, self._fail_status = False, None

    def drop_answers(self, count: int) -> None:
        """Handle the next ``count`` stream or file writes, then drop their answers."""
        self._unanswered = count

    def lose_part_after(self, chunks: int) -> None:
        """Forget a file's part once ``chunks`` more file chunks were written."""
        self._lose_part_in = chunks

    def cut_next_patch(self, keep: int, forget: bool = False) -> None:
        """Keep ``keep`` bytes of the next upload chunk, then drop its connection (and,
        ``forget``: lose every upload, as a server that lost its state)."""
        self._cut_patch = keep
        self._forget_at_cut = forget

    def forget_uploads(self) -> None:
        with self._lock:
            self.uploads.clear()

    def truncate(self, name: str, size: int) -> None:
        with self._lock:
            del self.streams[name][size:]

    def routes(self, method: str, prefix: str) -> list[dict[str, str]]:
        """The queries of the requests made to a route (``"/files/x"``: that file)."""
        return [q for m, r, q in list(self.requests) if m == method and r.startswith(prefix)]

    # -- answering ---

    def handle(self, request: _Handler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if self._cut:
            self.refused += 1
            request.close_connection = True  # no answer at all: a broken connection
            return
        if self._fail_status is not None:
            self.refused += 1
            return self._answer(request, self._fail_status,
                                _error("unavailable", "the stand-in is failing"))
        base = f"/notebench/api/lifecycle/jobs/{self.job_id}/ingest"
        if request.headers.get("Authorization") != f"token {self.token}":
            return self._answer(request, 403, _error("forbidden", "not this job's token"))
        if not url.path.startswith(base):
            return self._answer(request, 404, _error("not_found", url.path))
        route = urllib.parse.unquote(url.path[len(base):])
        self.requests.append((request.command, route, query))
        if self.ended:
            return self._answer(request, 409, _error("job_ended", "the job ended"))
        if request.command == "PATCH" and self._cut_patch is not None:
            keep, self._cut_patch = self._cut_patch, None
            with self._lock:
                self._patch(route, request.headers, body[:keep])
                if self._forget_at_cut:
                    self.uploads.clear()
            self.refused += 1
            request.close_connection = True  # cut off mid-chunk: no answer
            return
        with self._lock:
            status, answer = self._route(request.command, route, query, body,
                                         request.headers)
        if request.command == "HEAD":
            return self._answer_head(request, status, answer)
        if status == 200 and self._unanswered and request.command in (
                "POST", "PUT", "PATCH") and route != "/heartbeat":
            self._unanswered -= 1
            self.refused += 1
            request.close_connection = True  # written, but the answer is lost
            return
        self._answer(request, status, answer)

    def _route(self, method: str, route: str, query: dict[str, str], body: bytes,
               headers: Any) -> tuple[int, dict[str, Any]]:
        if method == "GET" and route == "":
            return 200, {"streams": {n: len(b) for n, b in self.streams.items()},
                         "files": {rel: {"size": len(data),
                                         "sha256": hashlib.sha256(data).hexdigest()}
                                   for rel, data in self.files.items()},
                         "control": dict(self.control)}
        if method == "POST" and route == "/heartbeat":
            self.heartbeats.append(json.loads(body or b"{}"))
            return 200, {"control": dict(self.control)}
        if method == "POST" and route.startswith("/streams/"):
            return self._append(route[len("/streams/"):], query, body)
        if method == "PUT" and route.startswith("/files/"):
            return self._put(route[len("/files/"):], query, body)
        if route.startswith("/uploads"):
            return self._upload_route(method, route, headers, body)
        return 404, _error("not_found", route)

    # -- resumable uploads ---

    def _upload_route(self, method: str, route: str, headers: Any, body: bytes
                      ) -> tuple[int, dict[str, Any]]:
        if method == "POST" and route == "/uploads":
            request = json.loads(body)
            try:
                check_relative(request["name"])
            except ApiError as exc:
                return 400, _error(exc.code, exc.message)
            uid = uuid.uuid4().hex
            self.uploads[uid] = {"name": request["name"], "size": request["size"],
                                 "sha256": request["sha256"], "data": bytearray()}
            return 201, self._upload_status(uid)
        uid, _, action = route[len("/uploads/"):].partition("/")
        if uid not in self.uploads:
            return 404, _error("unknown_upload", uid)
        upload = self.uploads[uid]
        if method == "PATCH":
            return self._patch(route, headers, body)
        if method in ("HEAD", "GET"):
            return 200, self._upload_status(uid)
        if method == "DELETE":
            del self.uploads[uid]
            return 200, {"id": uid, "state": "aborted"}
        if method == "POST" and action == "complete":
            data = bytes(upload["data"])
            if len(data) != upload["size"]:
                return 409, _error("incomplete", "not all there", offset=len(data))
            del self.uploads[uid]
            if hashlib.sha256(data).hexdigest() != upload["sha256"]:
                return 400, _error("digest_mismatch", "sha256 differs")
            self.files[upload["name"]] = data
            return 200, {"name": upload["name"], "size": len(data), "complete": True,
                         "sha256": upload["sha256"], "control": dict(self.control)}
        return 404, _error("not_found", route)

    def _patch(self, route: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        upload = self.uploads.get(route[len("/uploads/"):])
        if upload is None:
            return 404, _error("unknown_upload", route)
        offset = int(headers["Upload-Offset"])
        if offset != len(upload["data"]):
            self.mismatches += 1
            return 409, _error("offset_mismatch", "wrong offset", offset=len(upload["data"]))
        if offset + len(body) > upload["size"]:
            return 413, _error("too_large", "past the size")
        upload["data"] += body
        return 200, self._upload_status(route[len("/uploads/"):])

    def _upload_status(self, uid: str) -> dict[str, Any]:
        upload = self.uploads[uid]
        return {"id": uid, "name": upload["name"], "size": upload["size"],
                "offset": len(upload["data"]), "sha256": upload["sha256"],
                "control": dict(self.control)}

    def _append(self, name: str, query: dict[str, str], body: bytes
                ) -> tuple[int, dict[str, Any]]:
        if name not in self.streams:
            return 400, _error("invalid_stream", name)
        if len(body) > MAX_INGEST_CHUNK:
            return 413, _error("too_large", "chunk too large")
        stream = self.streams[name]
        offset = int(query["offset"])
        if offset > len(stream):
            return self._mismatch(len(stream))
        if offset + len(body) > len(stream):
            stream += body[len(stream) - offset:]
        return 200, {"size": len(stream), "control": dict(self.control)}

    def _put(self, rel: str, query: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            check_relative(rel)
        except ApiError as exc:
            return 400, _error(exc.code, exc.message)
        offset, total, sha = int(query["offset"]), int(query["total"]), query["sha256"]
        if offset + len(body) > total:
            return 400, _error("invalid_range", "past the total")
        done = self.files.get(rel)
        if done is not None and len(done) == total and hashlib.sha256(done).hexdigest() == sha:
            return 200, {"size": total, "complete": True}  # this version is in place
        if offset == 0:
            self.parts[rel] = bytearray()
        part = self.parts.get(rel)
        if part is None or offset > len(part):
            return self._mismatch(0 if part is None else len(part))
        part += body[len(part) - offset:]
        if self._lose_part_in is not None:
            self._lose_part_in -= 1
            if self._lose_part_in <= 0:
                self._lose_part_in = None
                del self.parts[rel]
        if len(part) < total:
            return 200, {"size": len(part), "complete": False}
        self.parts.pop(rel, None)
        if hashlib.sha256(part).hexdigest() != sha:
            return 400, _error("checksum_mismatch", "sha256 differs")
        self.files[rel] = bytes(part)
        return 200, {"size": total, "complete": True}

    def _mismatch(self, size: int) -> tuple[int, dict[str, Any]]:
        self.mismatches += 1
        return 409, {**_error("offset_mismatch", f"send from offset {size}", size=size),
                     "size": size}

    @staticmethod
    def _answer_head(request: _Handler, status: int, answer: dict[str, Any]) -> None:
        request.send_response(status)
        if status == 200:
            request.send_header("Upload-Offset", str(answer["offset"]))
            request.send_header("Upload-Length", str(answer["size"]))
        request.send_header("Content-Length", "0")
        request.end_headers()

    @staticmethod
    def _answer(request: _Handler, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


def _error(code: str, message: str, **details: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}
