"""A job's files as artifacts: listing, safe resolution for download, metrics export.

Blocking (file system): called off the event loop.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from ..errors import ApiError
from .jobdir import (
    CHECKPOINTS,
    CONTROL,
    EVENTS,
    JOB_JSON,
    MANIFEST,
    METRICS_CSV,
    NOTEBOOK,
    OUTPUT,
    PAPERMILL_LOG,
    RUN_JSON,
    RUNNER,
)

_KINDS = {OUTPUT: "output", NOTEBOOK: "notebook", PAPERMILL_LOG: "log", EVENTS: "events",
          RUNNER: "events", JOB_JSON: "job", RUN_JSON: "job", CONTROL: "job",
          MANIFEST: "manifest", METRICS_CSV: "metrics"}


def _kind(relative: str, model_path: str | None) -> str:
    if model_path and relative == model_path:
        return "model"
    if relative.startswith(CHECKPOINTS + "/"):
        return "checkpoint"
    return _KINDS.get(relative, "other")


def list_files(job_dir: Path, model_path: str | None = None) -> list[dict[str, Any]]:
    """Regular files inside the job directory (hidden ones and links leaving it skipped)."""
    base = job_dir.resolve()
    files: list[dict[str, Any]] = []
    if not base.is_dir():
        return files
    for root, dirs, names in os.walk(base, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(root) / name
            try:
                real = path.resolve()
                if not real.is_relative_to(base) or not real.is_file():
                    continue
                stat = real.stat()
            except OSError:
                continue
            relative = path.relative_to(base).as_posix()
            files.append({"path": relative, "size": stat.st_size, "modified": stat.st_mtime,
                          "kind": _kind(relative, model_path)})
    return files


def safe_file(job_dir: Path, relative: str) -> Path:
    """The file ``relative`` names inside the job directory, or 404.

    The path is resolved (symbolic links followed) and must still be inside the job
    directory: never a string prefix check. Hidden names, control characters and
    absolute paths are refused the same way, without saying whether anything exists.
    """
    missing = ApiError(404, "not_found", "no such artifact")
    if not relative or any(ord(c) < 32 or c == "\x7f" for c in relative):
        raise missing
    pure = PurePosixPath(relative)
    if pure.is_absolute() or "\\" in relative:
        raise missing
    if any(part.startswith(".") for part in pure.parts):
        raise missing
    base = job_dir.resolve()
    try:
        target = (base / pure).resolve(strict=True)
    except (OSError, RuntimeError):
        raise missing from None
    if not target.is_relative_to(base) or not target.is_file():
        raise missing
    return target


CSV_HEADER = ("name", "idx", "step", "t", "value")


def write_metrics_csv(out: TextIO, rows: Iterable[Any], *, header: bool = True) -> None:
    """Raw points as CSV: name, idx, step, t, value (non-finite values spelled out).

    ``rows`` may be a database cursor: rows are written as they come, never all held.
    """
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_HEADER)
    for name, idx, step, t, value, special in rows:
        writer.writerow([name, idx, "" if step is None else step, repr(float(t)),
                         special if special is not None else repr(float(value))])


def metrics_csv(rows: Iterable[Any], *, header: bool = True) -> bytes:
    """The CSV of ``write_metrics_csv`` as bytes (for a response, or a part of one)."""
    out = io.StringIO()
    write_metrics_csv(out, rows, header=header)
    return out.getvalue().encode()


def write_export(job_dir: Path, rows: Iterable[Any]) -> bool:
    """Write ``metrics.csv`` into the job directory unless the kernel wrote one."""
    target = job_dir / METRICS_CSV
    if target.exists():
        return False
    tmp = job_dir / f".{METRICS_CSV}.tmp"
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        write_metrics_csv(handle, rows)
    os.replace(tmp, target)
    return True
