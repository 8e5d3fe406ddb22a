"""TensorBoard runs as notebench runs: ``import_tensorboard(logdir)``.

Every folder under ``logdir`` holding event files (``logdir`` itself included) is read
with tensorboard's own ``EventAccumulator`` and becomes one ended interactive run, written
the way ``notebench.start_run`` writes one (docs/job-directory.md): a run directory in the
server's runs folder with ``events.jsonl`` (each scalar a metric point, its step and wall
time kept) and, last, ``run.json`` (its hparams, when the run has an hparams session, as
the run's parameters; the tag ``tensorboard``); the server discovers it and it compares
with jobs. Importing again skips runs already imported: a run's id is derived from its
folder's name and its event files' names (unique per writer: time, host, process), so
the same run gets the same id wherever the logdir lies, and a run the server already
knows (in the trash too) or whose directory is complete is left alone.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from .. import _jobdir
from ..client import ApiError, Client
from ..jobprotocol import RUN_JSON, TERMINAL, check_run_fields, write_json_atomic
from ..tracking import _metrics_line
from . import _source

__all__ = ["ImportedRun", "import_tensorboard", "tensorboard_runs"]

TAG = "tensorboard"
EVENT_FILE_MARK = "tfevents"
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ImportedRun:
    """One TensorBoard run and the notebench run it became (``skipped``: imported before)."""

    id: str
    name: str
    path: str
    points: int
    skipped: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tensorboard_runs(logdir: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """``(run name, folder, event file names)`` of each folder holding event files."""
    for folder, _dirs, files in sorted(os.walk(logdir)):
        events = sorted(f for f in files if EVENT_FILE_MARK in f)
        if events:
            rel = Path(folder).relative_to(logdir).as_posix()
            yield (logdir.name if rel == "." else rel), Path(folder), events


def run_id_of(name: str, events: list[str]) -> str:
    """The notebench run id of a TensorBoard run (the same on every import)."""
    digest = hashlib.sha256("\0".join([TAG, name, *events]).encode()).hexdigest()
    return "r-" + digest[:12]


def _accumulator(folder: Path) -> Any:
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError as exc:
        raise ImportError("the TensorBoard import needs tensorboard: "
                          "pip install 'notebench[interop]'", name="tensorboard") from exc
    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.SCALARS: 0,
                                    event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def _scalars(acc: Any) -> dict[str, list[tuple[float, int, float]]]:
    """``{tag: [(wall time, step, value)]}``: simple values, and the scalars plugin's
    tensors (what ``tf.summary.scalar`` writes)."""
    from tensorboard.util import tensor_util

    tags = acc.Tags()
    out = {tag: [(e.wall_time, e.step, float(e.value)) for e in acc.Scalars(tag)]
           for tag in tags.get("scalars", [])}
    for tag in tags.get("tensors", []):
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        out[tag] = [(e.wall_time, e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                    for e in acc.Tensors(tag)]
    return out


def _hparams(acc: Any) -> dict[str, Any]:
    """The run's hparams session's values, when it has one."""
    from google.protobuf import json_format
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    raw = _plugin_content(acc, metadata.PLUGIN_NAME).get(metadata.SESSION_START_INFO_TAG)
    if raw is None:
        return {}
    start = HParamsPluginData.FromString(raw).session_start_info
    values = {name: json_format.MessageToDict(value) for name, value in start.hparams.items()}
    # TensorBoard keeps numbers as doubles: a whole number goes back to an int (32, not 32.0)
    return {name: int(v) if isinstance(v, float) and v.is_integer() else v
            for name, v in values.items()}


def _plugin_content(acc: Any, plugin: str) -> dict[str, bytes]:
    try:
        return dict(acc.PluginTagToContent(plugin))
    except KeyError:
        return {}


def _lines(series: dict[str, list[tuple[float, int, float]]]) -> tuple[list[bytes], int]:
    """``events.jsonl`` lines: the points of one wall time and step share a line."""
    grouped: dict[tuple[float, int], dict[str, float]] = {}
    count = 0
    for tag, points in series.items():
        for wall_time, step, value in points:
            grouped.setdefault((wall_time, step), {})[tag] = value
            count += 1
    lines = [_metrics_line(t, step, None, values)
             for (t, step), values in sorted(grouped.items(), key=lambda item: item[0])]
    return lines, count


def _runs_dir(client: Client, runs_dir: str | Path | None) -> Path:
    value = runs_dir or os.environ.get(_jobdir.RUNS_DIR_ENV)
    if value:
        return Path(value)
    workspace = (client.info().get("workspace") or {}).get("path")
    if not workspace:
        raise RuntimeError("the server did not say where its workspace is: pass runs_dir")
    return Path(workspace) / "artifacts" / "jobs"


def _known(client: Client, run_id: str) -> bool:
    try:
        client.get(f"lifecycle/jobs/{run_id}")
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _write_run(directory: Path, run_id: str, name: str, source: Path,
               series: dict[str, list[tuple[float, int, float]]],
               params: dict[str, Any]) -> int:
    lines, count = _lines(series)
    times = [t for points in series.values() for t, _step, _value in points]
    started = min(times) if times else time.time()
    ended = max(times) if times else started
    lines.append(orjson.dumps({"t": ended, "kind": "run_end", "status": "succeeded"},
                              option=orjson.OPT_APPEND_NEWLINE))
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / _jobdir.EVENTS_FILE, "wb") as handle:  # all lines, then run.json
        handle.write(b"".join(lines))
        handle.flush()
        os.fsync(handle.fileno())
    checked, tags = check_run_fields(params, [TAG])
    write_json_atomic(directory / RUN_JSON, {
        "id": run_id, "name": name, "kind": "interactive", "pid": None, "started": started,
        "params": checked, "tags": tags,
        "source": {"kind": TAG, "path": str(source)}})
    return count


def _wait_ended(client: Client, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(ids)
    while waiting:
        run_id = waiting[0]
        try:
            state = client.get(f"lifecycle/jobs/{run_id}")["state"]
        except ApiError as exc:
            if exc.status != 404:
                raise
            state = None
        if state in TERMINAL:
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server has not ended the imported run {run_id} after "
                               f"{timeout:g}s")
        time.sleep(POLL_SECONDS)


def import_tensorboard(logdir: str | Path, *, client: Client | None = None,
                       runs_dir: str | Path | None = None,
                       wait: float | None = 60.0) -> list[ImportedRun]:
    """Import every TensorBoard run under ``logdir`` as an ended notebench run.

    ``runs_dir``: where runs are written (default ``$NOTEBENCH_RUNS_DIR``, else the
    server's ``<workspace>/artifacts/jobs``: the server must be on this machine).
    ``wait``: seconds to wait until the server has found and ended every new run
    (``None``: return once written). Returns one ``ImportedRun`` per TensorBoard run.
    """
    root = Path(logdir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {logdir}")
    c = _source.client_of(client)
    target = _runs_dir(c, runs_dir)
    imported: list[ImportedRun] = []
    for name, folder, events in tensorboard_runs(root):
        run_id = run_id_of(name, events)
        directory = target / run_id
        if (directory / RUN_JSON).is_file() or _known(c, run_id):
            imported.append(ImportedRun(run_id, name, str(folder), 0, True))
            continue
        acc = _accumulator(folder)
        count = _write_run(directory, run_id, name, folder, _scalars(acc), _hparams(acc))
        imported.append(ImportedRun(run_id, name, str(folder), count, False))
    if wait is not None:
        _wait_ended(c, [r.id for r in imported if not r.skipped], wait)
    return imported
