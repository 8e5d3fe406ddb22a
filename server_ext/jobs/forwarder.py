"""The worker side of a remote job: ``Forwarder`` ships its files to the server.

A job that runs on a Dask worker writes its job directory there; the forwarder thread
sends what it writes to the server's ingest routes (``IngestClient``), where the server's
tailer reads it as it reads a local job's:

* the three stream files (``events.jsonl``, ``runner.jsonl``, ``papermill.log``): their
  new bytes from the server's sizes on, in chunks; the server ignores bytes it holds and
  answers an offset past its size with that size, so every byte arrives exactly once;
* whole files (the autosaved output notebook, checkpoints, models, artifacts) once their
  size and mtime stayed the same for one poll (``shipper.FileShipper``; files larger than
  ``upload_threshold_bytes`` through the resumable upload protocol);
* a heartbeat (worker, host, GPUs, runner pid) at least every ``heartbeat_seconds``.

Every answer carries the job's control, which ``RunnerControl`` applies to the runner's
processes. The server unreachable for ``grace_seconds`` stops the job (``control.json``,
then SIGTERM after ``term_after_seconds``); more than ``buffer_bytes`` not yet sent
pauses it until the server caught up; ``409 job_ended`` kills it. Once told the runner
ended, the forwarder sends what is left and returns. All of it is blocking I/O on the
forwarder's own thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from notebench.jobprotocol import CONTROL_FILE, RUNNER_FILE, write_json_atomic

from .executor import Executor
from .ingest import MAX_INGEST_CHUNK, STREAMS
from .ingest_client import IngestClient, IngestError
from .shipper import UPLOAD_THRESHOLD, FileShipper

log = logging.getLogger("notebench.jobs")

#: stream requests per file and poll at most (so heartbeats keep their pace)
_STREAM_REQUESTS = 8
_MAX_BACKOFF = 5.0


@dataclass
class ForwarderSettings:
    """How often and how patiently a forwarder works (``spec["settings"]``)."""

    heartbeat_seconds: float = 1.0
    grace_seconds: float = 60.0
    buffer_bytes: int = 1 << 30
    poll_seconds: float = 0.2
    term_after_seconds: float = 30.0
    chunk_bytes: int = MAX_INGEST_CHUNK
    #: files larger than this go through the resumable upload protocol (8 MiB)
    upload_threshold_bytes: int = UPLOAD_THRESHOLD

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ForwarderSettings:
        """The known keys of ``values`` (others ignored), each cast to its field's type."""
        out = cls()
        for item in fields(cls):
            value = (values or {}).get(item.name)
            if value is not None:
                setattr(out, item.name, type(getattr(out, item.name))(value))
        return out


class JobEnded(Exception):
    """The server answered ``409 job_ended``: nothing more is wanted of this job."""


def host_name() -> str:
    return socket.gethostname()


def _count(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# -- the runner's processes ------------------------------------------------------------------


class RunnerControl:
    """Applies the server's ``CONTROL`` and the forwarder's own limits to the runner's
    processes, through the executor that started it (its pause, resume, terminate and
    kill reach the runner's process group and every process it recorded)."""

    def __init__(self, executor: Executor, job_id: str, job_dir: Path) -> None:
        self.executor = executor
        self.job_id = job_id
        self.job_dir = job_dir
        self._records_at = 0  # how far runner.jsonl was read for process records
        self._stop_written: Any = None
        self._server_paused = False
        self._buffer_full = False
        self._frozen = False
        self._signal_done: str | None = None

    def apply(self, control: Any) -> None:
        """``stop`` -> ``control.json``; ``paused`` -> freeze or continue; ``signal``
        term|kill -> SIGTERM|SIGKILL (each once)."""
        if not isinstance(control, dict):
            return
        stop = control.get("stop")
        if stop and stop != self._stop_written:
            self.write_stop(stop if isinstance(stop, dict) else {"stop": True})
            self._stop_written = stop
        self._server_paused = bool(control.get("paused"))
        self._freeze()
        signal_name = control.get("signal")
        if signal_name in ("term", "kill") and signal_name != self._signal_done:
            self._signal_done = signal_name
            if signal_name == "term":
                self.terminate()
            else:
                self.kill()

    def buffer_full(self, full: bool) -> None:
        """Too much not sent yet: frozen until the server caught up."""
        if full != self._buffer_full:
            log.info("job %s: %s", self.job_id, "too much not sent yet: paused" if full
                     else "the server caught up: continued")
            self._buffer_full = full
            self._freeze()

    def write_stop(self, value: dict[str, Any]) -> None:
        write_json_atomic(self.job_dir / CONTROL_FILE, value)

    def terminate(self) -> None:
        self.executor.terminate(self.job_id)
        self._frozen = False  # terminate continues frozen processes

    def kill(self) -> None:
        self.executor.kill(self.job_id)
        self._frozen = False

    def runner_pid(self) -> int | None:
        return (self.executor.processes(self.job_id).get("runner") or {}).get("pid")

    def read_records(self) -> None:
        """The ``runner`` and ``kernel`` records of ``runner.jsonl``: what to signal."""
        try:
            with (self.job_dir / RUNNER_FILE).open("rb") as handle:
                handle.seek(self._records_at)
                data = handle.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self._records_at += end
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("kind") in ("runner", "kernel"):
                    self.executor.note_process(self.job_id, record["kind"], record)

    def _freeze(self) -> None:
        want = self._server_paused or self._buffer_full
        if want != self._frozen:
            if want:
                self.executor.pause(self.job_id)
            else:
                self.executor.resume(self.job_id)
            self._frozen = want


# -- the forwarder -------------------------------------------------------------------------


class Forwarder(threading.Thread):
    """Ships one job's directory to the server and applies its control (module docstring).

    ``forward`` False (a shared file system) sends nothing but heartbeats. ``sync(state)``
    takes the answer of a ``GET ingest`` made before the thread starts; ``runner_exited``
    starts the final flush. After the thread ended: ``flushed`` (everything arrived),
    ``ended_by_server`` (``409 job_ended``), ``error`` (an unexpected exception).
    """

    def __init__(self, *, job_dir: Path, client: IngestClient, executor: Executor,
                 job_id: str, settings: ForwarderSettings, placement: Mapping[str, Any],
                 forward: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name=f"notebench-forwarder-{job_id}", daemon=True)
        self.job_dir = job_dir
        self.client = client
        self.job_id = job_id
        self.settings = settings
        self.placement = dict(placement)
        self.forward = forward
        self.clock = clock
        self.runner = RunnerControl(executor, job_id, job_dir)
        self.files = FileShipper(job_dir, job_id, settings.chunk_bytes,
                                 settings.upload_threshold_bytes)
        self.flushed = False
        self.ended_by_server = False
        self.error: BaseException | None = None
        self._runner_ended = threading.Event()
        self._wake = threading.Event()
        self._server: dict[str, int] | None = None  # the server's stream sizes (None: ask)
        self._failing_since: float | None = None
        self._failures = 0
        self._grace_stopped = self._grace_termed = False
        self._last_heartbeat: float | None = None
        #: what happened to the job here, for the server's log and ``jobs`` topic; sent
        #: with the next heartbeat that gets through
        self.notes: list[dict[str, Any]] = []
        self._buffer_noted = False

    def note(self, kind: str, **fields: Any) -> None:
        """Record a fault (or its end) to report to the server."""
        self.notes.append({"kind": kind, **fields})
        self._last_heartbeat = None  # report it at the next exchange

    def runner_exited(self) -> None:
        """The runner ended (from any thread): send what is left, then end."""
        self._runner_ended.set()
        self._wake.set()

    def sync(self, state: Mapping[str, Any]) -> None:
        """Take the server's view (``GET ingest``): stream sizes, files, control."""
        streams = state.get("streams")
        streams = streams if isinstance(streams, dict) else {}
        self._server = {name: _count(streams.get(name)) for name in STREAMS}
        self.files.server_has(state.get("files"))
        self.runner.apply(state.get("control"))

    def unsent_bytes(self) -> int:
        """Bytes written here that the server does not hold yet (streams and files)."""
        if not self.forward:
            return 0
        total = self.files.unsent_bytes()
        for name in STREAMS:
            with contextlib.suppress(OSError):
                size = (self.job_dir / name).stat().st_size
                total += max(0, size - (self._server or {}).get(name, 0))
        return total

    # -- the loop ---

    def run(self) -> None:
        try:
            while not self._cycle():
                pass
        except BaseException as exc:  # the caller kills the runner and reports it
            log.exception("job %s: the forwarder failed", self.job_id)
            self.error = exc
        finally:
            self.client.close()

    def _cycle(self) -> bool:
        """One poll; True when the forwarder is done."""
        final = self._runner_ended.is_set()  # read first: this pass then sees every byte
        self.runner.read_records()
        if self.forward:
            self.files.look()
        try:
            busy = self._exchange(final)
        except JobEnded:
            log.info("job %s ended on the server: killing its runner", self.job_id)
            self.ended_by_server = True
            self.runner.kill()
            return True
        except (ConnectionError, IngestError) as exc:  # down, restarting, refusing: wait
            self._failed(exc)
            if final and self.clock() - (self._failing_since or 0) >= (
                    self.settings.grace_seconds):
                log.warning("job %s: the server stayed unreachable; %d bytes not sent",
                            self.job_id, self.unsent_bytes())
                return True
            self._check_buffer()
            self._wait(min(self.settings.poll_seconds * 2 ** self._failures, _MAX_BACKOFF))
            return False
        if self._failing_since is not None:
            log.info("job %s: the server is reachable again", self.job_id)
            self.note("reconnected", after_seconds=round(self.clock() - self._failing_since, 1),
                      unsent_bytes=self.unsent_bytes())
        self._failing_since, self._failures = None, 0
        self._check_buffer()
        if final and not busy:
            self.flushed = True
            return True
        if not busy:
            self._wait(self.settings.poll_seconds)
        return False

    def _check_buffer(self) -> None:
        """Freeze the job while more than ``buffer_bytes`` wait to be sent."""
        full = self.unsent_bytes() > self.settings.buffer_bytes
        self.runner.buffer_full(full)
        if full != self._buffer_noted:
            self._buffer_noted = full
            self.note("buffer_full" if full else "buffer_drained",
                      limit_bytes=self.settings.buffer_bytes)

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _exchange(self, final: bool) -> bool:
        """Talk to the server; True when work is left for the next poll right away."""
        if self._server is None:
            self.sync(self._ask(self.client.state))
        busy = False
        if self.forward:
            for name in STREAMS:
                if self._server is None:  # lost track of the server's sizes: ask again
                    return True
                busy = self._send_stream(name) or busy
            busy = self.files.ship(
                lambda name, *args: self._ask(getattr(self.client, name), *args),
                final) or busy
        if self._last_heartbeat is None or (
                self.clock() - self._last_heartbeat >= self.settings.heartbeat_seconds):
            notes, self.notes = self.notes, []
            info = {**self.placement, "pid": self.runner.runner_pid(),
                    **({"notes": notes} if notes else {})}
            try:
                answer = self._ask(self.client.heartbeat, info)
            except BaseException:
                self.notes[:0] = notes  # not delivered: with the next heartbeat
                raise
            self.runner.apply(answer.get("control"))
            self._last_heartbeat = self.clock()
        return busy

    def _ask(self, call: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        """One request; ``job_ended`` becomes ``JobEnded``, a broken connection makes the
        next poll ask where the server stands."""
        try:
            return call(*args)
        except IngestError as exc:
            if exc.code == "job_ended":
                raise JobEnded() from exc
            raise
        except ConnectionError:
            self._server = None
            raise

    def _send_stream(self, name: str) -> bool:
        """New bytes of a stream file from the server's size on; True when more is left."""
        path = self.job_dir / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        for _ in range(_STREAM_REQUESTS):
            assert self._server is not None
            offset = self._server[name]
            if offset >= size:
                return False
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read(min(self.settings.chunk_bytes, size - offset))
            try:
                answer = self._ask(self.client.append, name, offset, data)
            except IngestError as exc:
                if exc.code != "offset_mismatch":
                    raise
                if exc.size is None:
                    self._server = None
                    return True
                self._server[name] = exc.size  # it lost bytes: go on from its size
                continue
            self._server[name] = _count(answer.get("size"), offset + len(data))
            self.runner.apply(answer.get("control"))
        return self._server is None or self._server[name] < size

    def _failed(self, exc: Exception) -> None:
        """A failed exchange: past the grace, stop the job; later, terminate it."""
        now = self.clock()
        if self._failing_since is None:
            log.warning("job %s: cannot reach the server: %s", self.job_id, exc)
            self._failing_since = now
        self._failures += 1
        waited = now - self._failing_since
        if waited >= self.settings.grace_seconds and not self._grace_stopped:
            self._grace_stopped = True
            log.warning("job %s: the server was unreachable for %.0f s: stopping the job",
                        self.job_id, waited)
            self.runner.write_stop({"stop": True, "requested_at": time.time(),
                                    "reason": "server unreachable"})
            self.note("grace_stop", after_seconds=round(waited, 1))
        if (waited >= self.settings.grace_seconds + self.settings.term_after_seconds
                and not self._grace_termed):
            self._grace_termed = True
            self.runner.terminate()
