"""Follows the files of active jobs and stores and publishes what they add.

One thread reads, off the event loop, from the byte offset last stored for each file:
``events.jsonl`` (metrics, checkpoints, the kernel's stop, hyperparameters),
``runner.jsonl`` (processes, cell progress, the failing cell, the outcome) and
``papermill.log`` (kernel output and papermill's cell log, into the one log store with
carriage-return progress lines collapsed). Only complete lines are consumed, known secret
values scrubbed (see ``scrubbing``). What a read finds is written in one store
transaction together with the new offsets, so after a crash the next server re-reads
exactly what was not stored: no metric is lost or stored twice. Events are published
after the write is queued (metric points batched, one event per read).

The same thread discovers interactive runs: a new ``r-*`` directory with a ``run.json``
under the runs directory is handed to the service to register.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from notebench.jobprotocol import (
    EVENTS_FILE,
    JOBS_TOPIC,
    NONFINITE,
    PAPERMILL_LOG,
    RUN_JSON,
    RUNNER_FILE,
    check_run_fields,
    headline,
    is_job_id,
    job_topic,
    nonfinite_kind,
    progress_fraction,
)

from ..logs.query import collapse_cr
from ..logs.text import printable
from ..scrubbing import scrubber
from . import store as jobstore
from .jobdir import read_json
from .live import Followed, LiveJobs
from .transitions import LIFECYCLE_SOURCE

log = logging.getLogger("notebench.jobs")

CHUNK = 256 * 1024  # bytes per file per read: bounds the work (and GIL) one read holds
MAX_RECORD = 64 * 1024 * 1024  # a record (line) of events.jsonl or runner.jsonl at most
MAX_LOG_LINE = 10_000
MAX_HPARAMS_WARNINGS = 3  # per job: further bad ``hparams`` events are ignored silently
FILES = (RUNNER_FILE, EVENTS_FILE, PAPERMILL_LOG)
OUTPUT_SOURCE = "papermill"


class Tailer:
    """The reading thread (start/stop); what it follows are the live jobs' records."""

    def __init__(self, store: Any, bus: Any, logs: Any, live: LiveJobs, *,
                 interval: float = 0.05, runs_dir: Path | None = None,
                 on_process: Callable[[str, str, dict[str, Any]], None] | None = None,
                 on_new_run: Callable[[Path, dict[str, Any]], None] | None = None) -> None:
        self.store = store
        self.bus = bus
        self.logs = logs
        self.interval = interval
        self.runs_dir = runs_dir
        self.on_process = on_process
        self.on_new_run = on_new_run
        self.known_runs: set[str] = set()
        self.live = live
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_scan = 0.0
        self.reads = 0

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="notebench-jobs-tailer",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Read now (a job was added)."""
        self._wake.set()

    def drain(self, job_id: str) -> Followed | None:
        """Read a job's files to their end now (blocking: call it off the loop)."""
        followed = self.live.followed_of(job_id)
        if followed is None:
            return None
        while self._poll(followed, wait=True):
            pass
        return followed

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            behind = False
            for followed in self.live.followed():
                try:
                    behind = (self._poll(followed) and followed.behind) or behind
                except Exception:
                    log.exception("reading the files of job %s failed", followed.job_id)
            now = time.monotonic()
            if self.runs_dir is not None and now - self._last_scan >= 1.0:
                self._last_scan = now
                try:
                    self._scan_runs()
                except Exception:
                    log.exception("looking for interactive runs failed")
            if behind:
                time.sleep(0.001)  # more is waiting: read on, letting other threads run
                continue
            self._wake.wait(self.interval)
            self._wake.clear()

    def _scan_runs(self) -> None:
        assert self.runs_dir is not None
        try:
            entries = list(os.scandir(self.runs_dir))
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if not name.startswith("r-") or name in self.known_runs or not is_job_id(name):
                continue
            run = read_json(Path(entry.path) / RUN_JSON)
            if not isinstance(run, dict):
                continue  # not written yet
            self.known_runs.add(name)
            if self.on_new_run is not None:
                self.on_new_run(Path(entry.path), run)

    # -- reading ------------------------------------------------------------------------------

    def _poll(self, f: Followed, wait: bool = False) -> bool:
        """One read of every file of a job; True when anything new was consumed.

        A read takes one of the job's ``MAX_IN_FLIGHT`` slots until the writer has run its
        write; without a free slot it waits (``wait``) or reads nothing now (the writer's
        release wakes the thread)."""
        if not f.in_flight.acquire(blocking=wait):
            return False
        handed_over = False
        try:
            with f.lock:
                found = _Batch()
                offsets: dict[str, int] = {}
                f.behind = False
                for name in FILES:
                    lines, offset = self._read_lines(f, name)
                    if offset == f.offsets.get(name, 0):
                        continue
                    offsets[name] = offset
                    if name == EVENTS_FILE:
                        self._events(f, lines, found)
                    elif name == RUNNER_FILE:
                        self._runner(f, lines, found)
                    else:
                        self._output(f, lines, found)
                if not offsets:
                    return False
                self.reads += 1
                self._commit(f, found, offsets)
                handed_over = True
                f.offsets.update(offsets)
                return True
        finally:
            if not handed_over:
                f.in_flight.release()

    def _read_lines(self, f: Followed, name: str) -> tuple[list[bytes], int]:
        offset = f.offsets.get(name, 0)
        path = f.job_dir / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return [], offset
        try:
            size = os.fstat(fd).st_size
            if size < offset:
                log.warning("%s of job %s shrank: reading it again from the start",
                            name, f.job_id)
                offset = 0
            if size == offset:
                return [], offset
            want = CHUNK
            while True:
                data = os.pread(fd, min(want, size - offset), offset)
                if (b"\n" in data or len(data) >= size - offset or name == PAPERMILL_LOG
                        or want >= MAX_RECORD):
                    break
                want *= 4  # one record longer than a chunk: read on to its end
            if size - offset > len(data):
                f.behind = True
        finally:
            os.close(fd)
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) >= CHUNK and name == PAPERMILL_LOG:
                # output without a newline for a whole chunk: a progress bar keeps only its
                # last state, anything else goes on as one (truncated) line
                cut = data.rfind(b"\r")
                if cut > 0:
                    return [], offset + cut
                return [scrubber.scrub_bytes(data)], offset + len(data)
            return [], offset
        # known secrets never reach the store, the bus or a job's row
        return scrubber.scrub_bytes(data[:end]).split(b"\n"), offset + end + 1

    def _events(self, f: Followed, lines: list[bytes], found: _Batch) -> None:
        for line in lines:
            record = _parse(f, line)
            if record is None:
                continue
            kind = record.get("kind")
            if kind == "metrics":
                self._metrics(f, record, found)
            elif kind == "checkpoint":
                found.checkpoints.append(record)
                if record.get("epoch") is not None:
                    f.progress["epoch"] = record.get("epoch")
                    found.progress_changed = True
            elif kind == "stopping":
                f.stopping_seen = True
                found.events.append(("stopping", {"t": record.get("t")}))
            elif kind == "run_end":
                f.run_end = record
            elif kind == "hparams":
                found.hparams_changed = self._hparams(f, record) or found.hparams_changed
            elif kind == "settings" and isinstance(record.get("settings"), dict):
                for name, setting in record["settings"].items():
                    if not isinstance(setting, dict) or "value" not in setting:
                        continue
                    known = f.auto.get(str(name)) or {}
                    if setting.get("source") == "given" and known.get("source") == "server":
                        continue  # the server resolved it: keep the server's reason
                    f.auto[str(name)] = {k: setting.get(k) for k in
                                         ("value", "source", "reason") if k in setting}
                found.auto_changed = True

    def _hparams(self, f: Followed, record: dict[str, Any]) -> bool:
        """Merge an ``hparams`` event into the job's (later names update earlier ones);
        one whose names or values, merged, break the bounds of a run's params
        (``check_run_fields``) is ignored with a warning in the job's log. True when
        the job's hparams changed."""
        try:
            given, _tags = check_run_fields(record.get("hparams"), None)
            merged, _tags = check_run_fields({**f.hparams, **given}, None)
        except ValueError as error:
            f.bad_hparams += 1
            if f.bad_hparams <= MAX_HPARAMS_WARNINGS:
                self.logs.append(logging.WARNING, LIFECYCLE_SOURCE, printable(
                    f"job {f.job_id}: an hparams event was ignored: {error}"),
                    job_id=f.job_id)
            return False
        if merged == f.hparams:
            return False
        f.hparams = merged
        return True

    def _metrics(self, f: Followed, record: dict[str, Any], found: _Batch) -> None:
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            return
        t = _number(record.get("t")) or time.time()
        step = record.get("step")
        step = step if isinstance(step, int) and not isinstance(step, bool) else None
        kept: dict[str, Any] = {}
        for name, raw in metrics.items():
            value, special = _metric_value(raw)
            if value is None and special is None:
                continue
            index = f.counters.get(name, 0)
            f.counters[name] = index + 1
            name = str(name)
            rows = found.series.get(name)
            if rows is None:
                rows = found.series[name] = []
            rows.append((f.job_id, name, index, step, t, value, special))
            kept[name] = value if special is None else {NONFINITE: special}
        if not kept:
            return
        f.latest.update(kept)
        f.metric_points += len(kept)
        f.last_metric_mono = time.monotonic()
        found.points.append({"t": t, "step": step, "total_steps": record.get("total_steps"),
                             "metrics": kept})
        if step is not None:
            f.progress["step"] = step
            found.progress_changed = True
        total = record.get("total_steps")
        if isinstance(total, int) and not isinstance(total, bool):
            f.progress["total_steps"] = total
            found.progress_changed = True
        epoch = kept.get("epoch")
        if isinstance(epoch, (int, float)):
            f.progress["epoch"] = int(epoch) if float(epoch).is_integer() else epoch
            found.progress_changed = True

    def _runner(self, f: Followed, lines: list[bytes], found: _Batch) -> None:
        for line in lines:
            record = _parse(f, line)
            if record is None:
                continue
            kind = record.get("kind")
            if kind in ("runner", "kernel"):
                info = {k: record.get(k) for k in ("pid", "pgid", "create_time")}
                f.processes[kind] = info
                found.processes_changed = True
                if self.on_process is not None:
                    self.on_process(f.job_id, kind, info)
            elif kind in ("cell_start", "cell_end"):
                f.progress["cell"] = record.get("index")
                f.progress["cells"] = record.get("count")
                f.progress["cell_state"] = ("running" if kind == "cell_start"
                                            else record.get("status", "ok"))
                found.progress_changed = True
                found.cell_changed = True
            elif kind == "error":
                f.error = {"cell_index": record.get("cell_index"),
                           "ename": record.get("ename"), "evalue": record.get("evalue"),
                           "traceback": record.get("traceback") or []}
                found.error = f.error
            elif kind == "finished":
                f.finished = record
            elif kind == "stop_seen":
                f.stopping_seen = True

    def _output(self, f: Followed, lines: list[bytes], found: _Batch) -> None:
        for raw in lines:
            text = collapse_cr(raw.decode("utf-8", errors="replace")).rstrip()
            if not text:
                continue
            if len(text) > MAX_LOG_LINE:
                text = text[:MAX_LOG_LINE] + " [truncated]"
            found.log_lines.append(text)

    # -- storing and publishing ---------------------------------------------------------

    def _commit(self, f: Followed, found: _Batch, offsets: dict[str, int]) -> None:
        job_id = f.job_id
        now = time.time()
        for line in found.log_lines:
            self.logs.append(logging.INFO, OUTPUT_SOURCE, line, job_id=job_id, ts=now)
        fields: dict[str, Any] = {}
        if found.series:
            fields["latest_metrics"] = dict(f.latest)
        if found.progress_changed:
            fields["progress"] = dict(f.progress)
        if found.error is not None:
            fields["error"] = found.error
        if found.processes_changed:
            fields["processes"] = dict(f.processes)
        if found.auto_changed:
            fields["auto"] = dict(f.auto)
        if found.hparams_changed:
            fields["hparams"] = dict(f.hparams)
        if fields:
            fields["updated"] = now
        series, checkpoints = found.series, found.checkpoints
        topic = job_topic(job_id)
        events: list[tuple[str, str, dict[str, Any]]] = []
        if found.points:
            # each metric's latest value rides along: followers need not walk the points
            events.append((topic, "metrics", {"job_id": job_id, "points": found.points,
                                              "latest": dict(f.latest),
                                              "headline": headline(f.latest)}))
        for record in checkpoints:
            events.append((topic, "checkpoint", {"job_id": job_id, **record}))
        if found.error is not None:
            events.append((topic, "error", {"job_id": job_id, "error": found.error}))
        if found.log_lines:
            events.append((topic, "log", {"job_id": job_id, "ts": now,
                                          "lines": found.log_lines}))
        for kind, data in found.events:
            events.append((topic, kind, {"job_id": job_id, **data}))
        if found.progress_changed:
            progress = {"job_id": job_id, "progress": {
                **f.progress, "fraction": progress_fraction(f.progress)}}
            events.append((topic, "progress", progress))
            # the all-jobs stream gets every cell change, step progress at most once a second
            mono = time.monotonic()
            if found.cell_changed or mono - f.progress_published >= 1.0:
                f.progress_published = mono
                events.append((JOBS_TOPIC, "progress", progress))
        bus = self.bus
        # The events go into the same transaction as the points and the offsets: after a
        # crash, what a client was sent and what the store holds agree, and re-reading
        # from the stored offset neither skips nor repeats an event.
        in_transaction = bus.durable

        def write(conn: Any) -> list[Any]:
            for name, rows in series.items():
                jobstore.insert_series(conn, job_id, name, rows)
            for record in checkpoints:
                jobstore.insert_checkpoint(conn, job_id, record)
            if fields:
                jobstore.update_job(conn, job_id, **fields)
            for name, offset in offsets.items():
                jobstore.set_offset(conn, job_id, name, offset)
            if not in_transaction:
                return []
            return [bus.append(conn, t, kind, now, data) for t, kind, data in events]

        def done(future: Any) -> None:
            """Writer thread, once the write is committed (or failed): publish, free the
            job's slot."""
            try:
                error = future.exception()
                if error is not None:
                    log.error("storing what job %s wrote failed: %s", job_id, error)
                else:
                    for event in future.result():
                        bus.deliver_soon(event)
            finally:
                f.in_flight.release()
                self._wake.set()

        self.store.submit(write).add_done_callback(done)
        if not in_transaction:
            for t, kind, data in events:
                bus.publish(t, kind, data)


@dataclass
class _Batch:
    series: dict[str, list[jobstore.MetricRow]] = field(default_factory=dict)  # by name
    points: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    progress_changed: bool = False
    cell_changed: bool = False
    processes_changed: bool = False
    auto_changed: bool = False
    hparams_changed: bool = False


def _parse(f: Followed, line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        f.bad_lines += 1
        if f.bad_lines <= 3:
            log.warning("job %s: a line of its files is not JSON: %r", f.job_id, line[:200])
        return None
    return record if isinstance(record, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _metric_value(raw: Any) -> tuple[float | None, str | None]:
    """(finite value, None) or (None, "nan"/"inf"/"-inf"); (None, None) to skip."""
    if isinstance(raw, bool):
        return float(raw), None
    if isinstance(raw, (int, float)):
        value = float(raw)
        special = nonfinite_kind(value)
        return (value, None) if special is None else (None, special)
    return None, nonfinite_kind(raw)


