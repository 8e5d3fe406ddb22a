"""Metrics from a training kernel: ``report()``, interactive runs (``start_run()``), history.

``report()`` appends one JSON line per call to ``events.jsonl`` in the job directory
(docs/job-directory.md). Lines are buffered in memory and written with one ``os.write``
when 50 ms have passed since the last write (checked at the next call), and at
``checkpoint()``, ``should_stop()``, the end of each IPython cell and exit: no background
thread competes with the training loop for the GIL. Outside any job or run the points stay
in memory (the latest 100,000, see ``history()``).

Non-finite values are written as ``{"nonfinite": "nan" | "inf" | "-inf"}`` (orjson would
write ``null``). Tensors on an accelerator are kept (detached) and converted when the
buffer is written, so ``report(loss=loss)`` does not synchronize the device every step.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import _jobdir
from .jobprotocol import RUN_JSON, check_run_fields, decode_number, encode_number, new_job_id

FLUSH_INTERVAL = 0.05  # seconds between writes while report() is called often
MEMORY_POINTS = 100_000  # points kept outside any job or run (the latest ones)

_dumps = orjson.dumps
_LINE = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
_time = time.time
_monotonic = time.monotonic
_INT_LIMIT = 2**63


class _Pending:
    """A metrics line holding device tensors, encoded when the buffer is written."""

    __slots__ = ("metrics", "step", "t", "total_steps")

    def __init__(self, t: float, step: int | None, total_steps: int | None,
                 metrics: dict[str, Any]) -> None:
        self.t, self.step, self.total_steps, self.metrics = t, step, total_steps, metrics

    def encode(self) -> bytes:
        values = {name: _number(name, value) for name, value in self.metrics.items()}
        return _metrics_line(self.t, self.step, self.total_steps, values)


class _FileSink:
    """Buffered ``O_APPEND`` writes of complete lines to one ``events.jsonl``."""

    memory = False

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.buf: list[bytes | _Pending] = []
        self.last_flush = -math.inf  # the first point is written at once
        self.pid = os.getpid()
        self._warned = False

    def flush(self) -> None:
        self.last_flush = _monotonic()
        buf = self.buf
        count = len(buf)
        if not count:
            return
        taken = buf[:count]
        del buf[:count]  # a line another thread appends meanwhile stays for the next write
        if os.getpid() != self.pid:  # a forked child (DataLoader worker): not its lines
            return
        try:
            data = b"".join(item if item.__class__ is bytes else item.encode()  # type: ignore[union-attr]
                            for item in taken)
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
        except (OSError, TypeError, ValueError) as error:
            if not self._warned:
                self._warned = True
                warnings.warn(f"notebench: metrics not written to {self.path}: {error}",
                              RuntimeWarning, stacklevel=3)

    def close(self) -> None:
        self.flush()
        if os.getpid() == self.pid:
            os.close(self.fd)


class _MemorySink:
    """Points kept in this process (no job, no run)."""

    memory = True

    def __init__(self) -> None:
        self.points: deque[dict[str, Any]] = deque(maxlen=MEMORY_POINTS)
        self.events: deque[dict[str, Any]] = deque(maxlen=1000)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


_sink: _FileSink | _MemorySink | None = None
_memory = _MemorySink()  # survives runs starting and ending, so history() keeps its points
_hooks_installed = False


# -- values -------------------------------------------------------------------------------


def _tag(value: float) -> Any:
    """A JSON-safe form of a number: non-finite floats become ``{"nonfinite": ...}``."""
    if value.__class__ is float or isinstance(value, float):
        return encode_number(value)
    if not -_INT_LIMIT <= value < _INT_LIMIT:
        return float(value)
    return value


def _number(name: str, value: Any) -> int | float:
    """``value`` as a Python int or float (tensors and numpy scalars via ``item()``)."""
    if value.__class__ is int or value.__class__ is float:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    item = getattr(value, "item", None)
    if item is not None:
        try:
            value = item()
        except (RuntimeError, ValueError) as error:  # a tensor with more than one element
            raise TypeError(f"metric {name!r} is not a scalar: {error}") from None
        if isinstance(value, (int, float)):
            return int(value) if isinstance(value, bool) else value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"metric {name!r} must be a number, not {type(value).__name__}") from None


def _on_device(value: Any) -> bool:
    device = getattr(value, "device", None)
    return device is not None and getattr(device, "type", "cpu") != "cpu"


def _index(name: str, value: Any) -> int | None:
    if value is None or value.__class__ is int:
        return value
    try:
        return int(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}") from None


def _metrics_line(t: float, step: int | None, total_steps: int | None,
                  values: dict[str, int | float]) -> bytes:
    metrics = {name: _tag(value) for name, value in values.items()}
    return _dumps({"t": t, "kind": "metrics", "step": step, "total_steps": total_steps,
                   "metrics": metrics}, option=_LINE)


def _slow_line(t: float, step: Any, total_steps: Any, metrics: dict[str, Any]) -> bytes | _Pending:
    """The general path of ``report()``: conversions, tags, deferred device tensors."""
    step, total_steps = _index("step", step), _index("total_steps", total_steps)
    values: dict[str, Any] = {}
    deferred = False
    for name, value in metrics.items():
        if _on_device(value) and hasattr(value, "detach"):
            if value.numel() != 1:
                raise TypeError(f"metric {name!r} is not a scalar: shape {tuple(value.shape)}")
            values[name] = value.detach()
            deferred = True
        else:
            values[name] = _number(name, value)
    if deferred:
        return _Pending(t, step, total_steps, values)
    return _metrics_line(t, step, total_steps, values)


# -- the sink -----------------------------------------------------------------------------


def _open_sink() -> _FileSink | _MemorySink:
    global _sink
    directory = _jobdir.job_dir()
    _sink = _FileSink(directory / _jobdir.EVENTS_FILE) if directory is not None else _memory
    _install_hooks()
    return _sink


def _reset() -> None:
    """Write and close the current sink; the next call resolves the destination again."""
    global _sink
    sink, _sink = _sink, None
    if sink is not None:
        sink.close()


def _install_hooks() -> None:
    """Flush at the end of every IPython cell and at exit (installed once)."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    ipython_module = sys.modules.get("IPython")
    shell = ipython_module.get_ipython() if ipython_module is not None else None
    if shell is not None:
        shell.events.register("post_execute", flush)


def _at_exit() -> None:
    if _active is not None and _active.interactive:
        _active.end("stopped" if _stop_requested() else "succeeded")
    _reset()


def _stop_requested() -> bool:
    from . import control

    return control.stop_seen()


# -- public API ---------------------------------------------------------------------------


def report(step: int | None = None, total_steps: int | None = None, **metrics: Any) -> None:
    """Record metric values (numbers, numpy scalars or one-element tensors) at ``step``.

    ``total_steps`` (the steps the whole run will take) drives the job's progress and ETA.
    Costs a few microseconds: the line is buffered and written at most every 50 ms.
    """
    sink = _sink
    if sink is None:
        sink = _open_sink()
    now = _time()
    if sink.memory:
        sink.points.append({  # type: ignore[union-attr]
            "t": now, "step": _index("step", step),
            "total_steps": _index("total_steps", total_steps),
            "metrics": {name: _number(name, value) for name, value in metrics.items()}})
        return
    line: bytes | _Pending
    for value in metrics.values():
        # plain finite numbers only (``v - v`` is nan, so true, for nan and inf); anything
        # else goes the general way: converted, tagged or refused
        if (value.__class__ is not float and value.__class__ is not int) or value - value:
            line = _slow_line(now, step, total_steps, metrics)
            break
    else:
        try:
            line = _dumps({"t": now, "kind": "metrics", "step": step,
                           "total_steps": total_steps, "metrics": metrics}, option=_LINE)
        except TypeError:  # a step that is not an int, an int beyond 64 bits
            line = _slow_line(now, step, total_steps, metrics)
    sink.buf.append(line)  # type: ignore[union-attr]
    if _monotonic() - sink.last_flush >= FLUSH_INTERVAL:  # type: ignore[union-attr]
        sink.flush()


def emit(kind: str, **fields: Any) -> None:
    """Append one event line of ``kind`` (checkpoint, stopping, run_end) and write it now."""
    sink = _sink or _open_sink()
    event = {"t": _time(), "kind": kind, **fields}
    if sink.memory:
        sink.events.append(event)  # type: ignore[union-attr]
        return
    sink.buf.append(_dumps(event, option=_LINE))  # type: ignore[union-attr]
    sink.flush()


def flush() -> None:
    """Write the buffered lines now."""
    if _sink is not None:
        _sink.flush()


def tag_nonfinite(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as JSON-safe numbers (non-finite floats tagged), for event fields."""
    return {name: _tag(_number(name, value)) for name, value in values.items()}


def history() -> list[dict[str, Any]]:
    """The metric points of the current job or run (read back), else those kept in memory.

    Each point is ``{"t", "step", "total_steps", "metrics": {name: value}}``; non-finite
    values come back as floats.
    """
    sink = _sink or _open_sink()
    if sink.memory:
        return [{**point, "metrics": dict(point["metrics"])} for point in sink.points]  # type: ignore[union-attr]
    sink.flush()
    points = []
    with open(sink.path, "rb") as handle:  # type: ignore[union-attr]
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            event = orjson.loads(raw)
            if event.get("kind") == "metrics":
                metrics = {k: decode_number(v) for k, v in event["metrics"].items()}
                points.append({"t": event["t"], "step": event["step"],
                               "total_steps": event["total_steps"], "metrics": metrics})
    return points


# -- interactive runs ---------------------------------------------------------------------


@dataclass
class Run:
    """An interactive run (or, inside a papermill job, the job itself)."""

    id: str | None
    name: str
    dir: Path | None
    interactive: bool = True
    status: str | None = field(default=None)
    params: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)

    def end(self, status: str = "succeeded") -> None:
        """End the run: a ``run_end`` event, then ``report()`` goes back to memory."""
        global _active
        if self.status is not None:
            return
        self.status = status
        if not self.interactive or _active is not self:
            flush()
            return
        if self.dir is not None:
            emit("run_end", status=status)
        _reset()
        _jobdir.set_active_run(None, None)
        _active = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        from .control import StopTraining

        if exc_type is None:
            self.end("succeeded")
            return False
        stopped = isinstance(exc, StopTraining)
        self.end("stopped" if stopped else "failed")
        return stopped  # a requested stop ends the ``with`` block quietly


_active: Run | None = None


def _default_run_name() -> str:
    session = os.environ.get("JPY_SESSION_NAME")  # the notebook's path, set by jupyter_server
    return Path(session).stem if session else "interactive run"


def _plain_params(params: Any) -> Any:
    """numpy scalars and arrays, tensors (anything with ``tolist()``) as plain values."""
    if not isinstance(params, dict):
        return params
    return {name: value.tolist() if hasattr(value, "tolist") else value
            for name, value in params.items()}


def start_run(name: str | None = None, *, params: dict[str, Any] | None = None,
              tags: list[str] | None = None, runs_dir: str | Path | None = None) -> Run:
    """Give this notebook's training a run directory of its own, discovered by the server.

    Creates ``$NOTEBENCH_RUNS_DIR/r-<12 hex>/run.json`` and sends ``report()`` there, so
    the run shows in the same panels as papermill jobs. ``params`` (its hyperparameters:
    JSON values; numpy values and tensors via ``tolist()``) become the run's parameters,
    so ``notebench.jobs.compare()`` and the Compare view show it beside jobs; ``tags`` (a list
    of strings) its tags. Bad ones raise ``ValueError`` (at most 200 params, 64 KiB as
    JSON, 50 tags). It cannot be paused; a stop request from the server makes
    ``should_stop()`` true. Use it as a context manager or call ``end()``. Inside a
    papermill job it returns the job itself (whose parameters and tags are the job's:
    ``params`` and ``tags`` are then only checked). Without a runs directory (no notebench
    server) it warns and the points stay in memory.
    """
    global _active
    name = name or _default_run_name()
    params, tags = check_run_fields(_plain_params(params), tags)
    if _jobdir.in_papermill_job():
        return Run(_jobdir.job_id(), name, _jobdir.job_dir(), interactive=False)
    if _active is not None:
        _active.end("succeeded")
    root = runs_dir or os.environ.get(_jobdir.RUNS_DIR_ENV)
    if not root:
        warnings.warn(f"{_jobdir.RUNS_DIR_ENV} is not set (not under a notebench server): "
                      "metrics stay in memory, see notebench.tracking.history()", stacklevel=2)
        _active = Run(None, name, None, params=params, tags=tags)
        return _active
    run_id = new_job_id("interactive")
    directory = Path(root) / run_id
    directory.mkdir(parents=True)
    _jobdir.write_json_atomic(directory / RUN_JSON, {
        "id": run_id, "name": name, "kind": "interactive", "pid": os.getpid(),
        "started": time.time(), "params": params, "tags": tags})
    _reset()
    _jobdir.set_active_run(run_id, directory)
    _active = Run(run_id, name, directory, params=params, tags=tags)
    _install_hooks()
    return _active


def active_run() -> Run | None:
    """The interactive run started in this process and not ended, if any."""
    return _active
