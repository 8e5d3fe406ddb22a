"""A job's metrics as TensorBoard event files: ``export_tensorboard(job_ids, logdir)``.

Written with ``torch.utils.tensorboard.SummaryWriter`` (torch is a dependency already; it
writes through the ``tensorboard`` package's own ``EventFileWriter`` and builds the
hparams plugin's summaries, so no second writer package is needed). Each job is a run
folder ``<logdir>/<job id>``: one scalar per metric point (its step and wall time), the
parameters as a text summary (a table) and as an hparams session whose metrics are the
job's series. Needs ``pip install 'notebench[interop]'``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..client import Client
from . import _source

__all__ = ["EVENT_FILE_PREFIX", "export_tensorboard"]

EVENT_FILE_PREFIX = "events.out.tfevents."
_HPARAM_TYPES = (bool, int, float, str)


def _writer_class() -> Any:
    try:
        import tensorboard  # noqa: F401  (SummaryWriter needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError("the TensorBoard export needs tensorboard: "
                          "pip install 'notebench[interop]'", name="tensorboard") from exc
    return SummaryWriter


def _markdown_table(params: dict[str, Any]) -> str:
    rows = ["| parameter | value |", "| --- | --- |"]
    for name, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        rows.append(f"| {name} | {text.replace('|', '&#124;')} |")
    return "\n".join(rows)


def _hparam(value: Any) -> bool | int | float | str:
    return value if isinstance(value, _HPARAM_TYPES) else json.dumps(value, default=str)


def _write_job(writer_class: Any, client: Client, job_id: str, folder: Path) -> Path:
    from torch.utils.tensorboard.summary import hparams

    job = client.get(f"lifecycle/jobs/{job_id}")
    series = _source.metric_series(client, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(EVENT_FILE_PREFIX + "*"):  # a new export replaces the last one
        old.unlink()
    params = _source.parameters(job)
    writer = writer_class(log_dir=str(folder))
    try:
        for name, points in series.items():
            for point in points:
                writer.add_scalar(name, point.value, point.step, walltime=point.t)
        if params:
            started = job.get("started") or job.get("created")
            writer.add_text("parameters", _markdown_table(params), 0, walltime=started)
            final = {name: points[-1].value for name, points in series.items() if points}
            for summary in hparams({k: _hparam(v) for k, v in params.items()}, final):
                writer.file_writer.add_summary(summary, walltime=started)
    finally:
        writer.close()
    return folder


def export_tensorboard(job_ids: str | Iterable[Any], logdir: str | Path, *,
                       client: Client | None = None) -> list[Path]:
    """Write each job's event files into ``<logdir>/<job id>`` (replacing those of an
    earlier export there); returns the run folders. ``tensorboard --logdir <logdir>``
    shows them."""
    writer_class = _writer_class()
    c = _source.client_of(client)
    root = Path(logdir).expanduser()
    return [_write_job(writer_class, c, job_id, root / job_id)
            for job_id in _source.job_ids(job_ids)]
