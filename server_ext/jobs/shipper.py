"""``FileShipper``: a remote job's whole files, each version once, to the server.

Small files go in checksummed chunks with ``PUT ingest/files/<rel>``; files larger than
``upload_threshold`` through the resumable upload protocol under the job's ingest routes
(``POST ingest/uploads``, ``PATCH`` chunks at ``Upload-Offset``, ``POST .../complete``):
after a broken request the shipper asks ``HEAD`` where the server's copy stands and goes
on from there, an upload the server no longer knows (404) starts again, and the file
counts as sent only once ``complete`` succeeded. All of it blocking, on the forwarder's
thread, within a budget of requests and hashed bytes per poll.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ApiError
from .ingest import check_relative
from .ingest_client import IngestError

log = logging.getLogger("notebench.jobs")

#: per poll at most: file requests, file bytes hashed (so heartbeats keep their pace while
#: a large file goes)
_FILE_REQUESTS = 4
_HASH_BYTES = 64 * 1024 * 1024
#: failed uploads of one version of a file before it is left out
_FILE_ATTEMPTS = 3
#: files larger than this go through the resumable upload protocol (8 MiB)
UPLOAD_THRESHOLD = 8 << 20


def _count(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


Stat = tuple[int, int]  # (size, mtime_ns)
#: one request to the server: (an ``IngestClient`` method's name, its arguments) -> the
#: answer (through the forwarder, which turns ``job_ended`` into its end)
Ask = Callable[..., Any]


@dataclass
class _Upload:
    """A whole file being sent: hashed first, then sent chunk by chunk."""

    rel: str
    stat: Stat
    hasher: Any = field(default_factory=hashlib.sha256)
    hashed: int = 0
    sha256: str | None = None
    offset: int = 0
    #: the server's resumable upload of a large file (None: not started)
    uid: str | None = None
    #: a request of that upload broke: ask the server's offset (HEAD) before going on
    unsure: bool = False


class FileShipper:
    """Sends the job directory's whole files, each version once, within a budget per poll.

    Forwarded: regular files whose path the server takes (``ingest.check_relative``:
    nothing hidden, not a stream file or a file the server wrote). A file is sent once
    its (size, mtime) stayed the same for one look (at the final flush: at once),
    smallest first; its sha256 is computed first, then its chunks go with
    ``PUT ingest/files``, or through a resumable upload when it is larger than
    ``upload_threshold`` (module docstring). A file that changes meanwhile waits for its
    next version (its unfinished upload is deleted on the server).
    """

    def __init__(self, job_dir: Path, job_id: str, chunk_bytes: int,
                 upload_threshold: int = UPLOAD_THRESHOLD) -> None:
        self.job_dir = job_dir
        self.job_id = job_id
        self.chunk_bytes = chunk_bytes
        self.upload_threshold = upload_threshold
        self._abandoned: list[str] = []  # uploads of versions given up: to delete
        self._wait = False  # the server holds too many uploads: try at the next poll
        self._seen: dict[str, Stat] = {}
        self._stable: set[str] = set()
        self._sent: dict[str, Stat] = {}
        self._refused: dict[str, Stat] = {}  # versions the server will not take
        self._attempts: dict[tuple[str, Stat], int] = {}
        self._upload: _Upload | None = None
        self._shipped: dict[str, Stat] = {}

    def look(self) -> None:
        """Scan the directory; what kept its (size, mtime) since the last look is stable."""
        now: dict[str, Stat] = {}
        for root, dirs, names in os.walk(self.job_dir):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in names:
                rel = Path(root, name).relative_to(self.job_dir).as_posix()
                with contextlib.suppress(OSError, ApiError):
                    check_relative(rel)
                    st = Path(root, name).stat()
                    if stat.S_ISREG(st.st_mode):
                        now[rel] = (st.st_size, st.st_mtime_ns)
        self._stable = {rel for rel, st in now.items() if self._seen.get(rel) == st}
        self._seen = now

    def came_from_server(self) -> None:
        """The files here now were shipped with the job (its inputs): not sent back
        unless they change."""
        self.look()
        self._sent.update(self._seen)
        self._shipped = dict(self._seen)

    def unsent_bytes(self) -> int:
        return sum(st[0] for rel, st in self._seen.items() if self._due(rel, st))

    def server_has(self, files: Any) -> None:
        """The server's complete files (``GET ingest``): what it lost is sent again."""
        files = files if isinstance(files, dict) else {}
        for rel in list(self._sent):
            known = files.get(rel)
            if self._shipped.get(rel) == self._sent[rel]:
                continue  # the server's own file, as shipped
            if not isinstance(known, dict) or known.get("size") != self._sent[rel][0]:
                del self._sent[rel]

    def ship(self, ask: Ask, final: bool) -> bool:
        """Hash and send within this poll's budget; True when work is left."""
        requests = hashed = 0
        while requests < _FILE_REQUESTS and hashed < _HASH_BYTES:
            if self._wait:
                self._wait = False
                return True
            if self._abandoned:
                requests += 1
                self._delete_abandoned(ask)
                continue
            upload = self._upload
            if upload is None:
                pending = sorted((rel for rel, st in self._seen.items() if self._due(rel, st)
                                  and (final or rel in self._stable)),
                                 key=lambda rel: (self._seen[rel][0], rel))
                if not pending:
                    return False
                upload = self._upload = _Upload(pending[0], self._seen[pending[0]])
            try:
                if self._stat(upload.rel) != upload.stat:
                    raise FileNotFoundError(upload.rel)
                if upload.sha256 is None:
                    hashed += self._hash_some(upload, _HASH_BYTES - hashed)
                else:
                    requests += 1
                    if upload.stat[0] > self.upload_threshold:
                        self._send_large(ask, upload)
                    else:
                        self._send_chunk(ask, upload)
            except ConnectionError:
                upload.unsure = upload.uid is not None  # did the request arrive? HEAD tells
                raise
            except OSError:  # changed or gone under us: its next version, once stable
                self._upload = None
                if upload.uid is not None:
                    self._abandoned.append(upload.uid)
                current = self._stat(upload.rel)
                if current is None:
                    self._seen.pop(upload.rel, None)
                else:
                    self._seen[upload.rel] = current
                self._stable.discard(upload.rel)
                requests += 1  # bounds a file that changes at every look
        return True

    def _due(self, rel: str, st: Stat) -> bool:
        return self._sent.get(rel) != st and self._refused.get(rel) != st

    def _stat(self, rel: str) -> Stat | None:
        try:
            st = (self.job_dir / rel).stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _hash_some(self, upload: _Upload, budget: int) -> int:
        with (self.job_dir / upload.rel).open("rb") as handle:
            handle.seek(upload.hashed)
            data = handle.read(min(budget, upload.stat[0] - upload.hashed))
        upload.hasher.update(data)
        upload.hashed += len(data)
        if upload.hashed >= upload.stat[0] or not data:
            upload.sha256 = upload.hasher.hexdigest()
        return max(1, len(data))

    def _send_chunk(self, ask: Ask, upload: _Upload) -> None:
        total = upload.stat[0]
        assert upload.sha256 is not None
        with (self.job_dir / upload.rel).open("rb") as handle:
            handle.seek(upload.offset)
            data = handle.read(min(self.chunk_bytes, total - upload.offset))
        try:
            answer = ask("put", upload.rel, upload.offset, total, upload.sha256, data)
        except IngestError as exc:
            if exc.status not in (400, 409, 413, 507) or exc.code == "not_remote":
                raise  # not about this file
            self._failed(upload, exc)
            return
        upload.offset = _count(answer.get("size"), upload.offset + len(data))
        if answer.get("complete") or upload.offset >= total:
            self._sent[upload.rel] = upload.stat
            self._upload = None

    def _failed(self, upload: _Upload, exc: IngestError) -> None:
        """409: go on from the server's part; else give this version a few tries."""
        if exc.code == "offset_mismatch" and exc.size is not None and (
                0 <= exc.size <= upload.stat[0]):
            upload.offset = exc.size
            return
        self._upload = None
        key = (upload.rel, upload.stat)
        self._attempts[key] = self._attempts.get(key, 0) + 1
        if exc.code not in ("checksum_mismatch", "digest_mismatch") or (
                self._attempts[key] >= _FILE_ATTEMPTS):
            log.warning("job %s: the server does not take %s: %s", self.job_id, upload.rel,
                        exc)
            self._refused[upload.rel] = upload.stat

    # -- large files: the resumable upload protocol ---

    def _send_large(self, ask: Ask, upload: _Upload) -> None:
        """One request of a large file's upload: start it, ask its offset after a broken
        request, send the next chunk, or complete it."""
        total = upload.stat[0]
        assert upload.sha256 is not None
        try:
            if upload.uid is None:
                answer = ask("upload_create", upload.rel, total, upload.sha256)
                upload.uid, upload.offset = str(answer["id"]), _count(answer.get("offset"))
            elif upload.unsure:
                upload.offset = ask("upload_offset", upload.uid)
                upload.unsure = False
            elif upload.offset >= total:
                ask("upload_complete", upload.uid)
                self._sent[upload.rel] = upload.stat  # sent once complete succeeded
                self._upload = None
            else:
                with (self.job_dir / upload.rel).open("rb") as handle:
                    handle.seek(upload.offset)
                    data = handle.read(min(self.chunk_bytes, total - upload.offset))
                answer = ask("upload_patch", upload.uid, upload.offset, data)
                upload.offset = _count(answer.get("offset"), upload.offset + len(data))
        except IngestError as exc:
            self._large_failed(ask, upload, exc)

    def _large_failed(self, ask: Ask, upload: _Upload, exc: IngestError) -> None:
        offset = exc.details.get("offset")
        if exc.code == "not_remote":
            raise exc
        if exc.code in ("offset_mismatch", "incomplete") and isinstance(offset, int):
            upload.offset = offset  # go on from the server's offset
        elif exc.code == "upload_busy":
            upload.unsure = True  # a cut-off chunk is still being released
        elif exc.code == "too_many_uploads":
            self._wait = True
        elif exc.status == 404 and upload.uid is not None:
            if upload.offset >= upload.stat[0] and self._server_holds(ask, upload):
                self._sent[upload.rel] = upload.stat  # completed; its answer was lost
                self._upload = None
            else:  # the server no longer knows the upload: start it again
                upload.uid, upload.offset, upload.unsure = None, 0, False
        elif exc.code == "digest_mismatch" or exc.status in (400, 409, 413, 507):
            if upload.uid is not None and exc.code != "digest_mismatch":
                self._abandoned.append(upload.uid)
            upload.uid = None
            self._failed(upload, exc)
        else:
            raise exc  # not about this file

    def _server_holds(self, ask: Ask, upload: _Upload) -> bool:
        """Whether the server's copy of the file is this very version (``GET ingest``)."""
        files = ask("state").get("files")
        entry = files.get(upload.rel) if isinstance(files, dict) else None
        return entry == {"size": upload.stat[0], "sha256": upload.sha256}

    def _delete_abandoned(self, ask: Ask) -> None:
        """Delete an upload the shipper gave up (best effort: the job's end clears it)."""
        uid = self._abandoned[0]
        with contextlib.suppress(IngestError):
            ask("upload_delete", uid)
        self._abandoned.pop(0)
