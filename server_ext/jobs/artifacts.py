"""A job's files as artifacts: listing, safe resolution for download, secrets scrubbed
from its text files, metrics export.

Blocking (file system): called off the event loop.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from notebench.jobprotocol import (
    CHECKPOINTS_DIR,
    CONTROL_FILE,
    EVENTS_FILE,
    JOB_JSON,
    MANIFEST_FILE,
    METRICS_CSV,
    NOTEBOOK,
    OUTPUT,
    PAPERMILL_LOG,
    RUN_JSON,
    RUNNER_FILE,
)

from ..errors import ApiError
from ..scrubbing import scrubber

#: the text files a job's processes write freely: scrubbed of known secrets when the job
#: ends and whenever one is served
SCRUBBED = (OUTPUT, PAPERMILL_LOG, EVENTS_FILE, RUNNER_FILE)
#: where scrubbed copies of a running job's files are served from (hidden: never listed)
SERVED_DIR = ".scrubbed"

_KINDS = {OUTPUT: "output", NOTEBOOK: "notebook", PAPERMILL_LOG: "log", EVENTS_FILE: "events",
          RUNNER_FILE: "events", JOB_JSON: "job", RUN_JSON: "job", CONTROL_FILE: "job",
          MANIFEST_FILE: "manifest", METRICS_CSV: "metrics"}


def _kind(relative: str, model_path: str | None) -> str:
    if model_path and relative == model_path:
        return "model"
    if relative.startswith(CHECKPOINTS_DIR + "/"):
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


def scrub_outputs(job_dir: Path) -> list[str]:
    """Replace known secrets in the job's text files, in place and atomically (the job's
    processes have ended); drop the scrubbed copies served meanwhile. Returns the names
    of the files that held a secret."""
    shutil.rmtree(job_dir / SERVED_DIR, ignore_errors=True)
    return [name for name in SCRUBBED if scrubber.scrub_file(job_dir / name)]


def served_file(job_dir: Path, path: Path) -> Path:
    """The file to send for ``path`` (a ``safe_file`` answer): the file itself, or for a
    text file that holds a known secret, a scrubbed copy (the job's file is left alone:
    its job may still be writing it, and a registered asset keeps its checksum)."""
    relative = path.relative_to(job_dir.resolve()).as_posix()
    if relative not in SCRUBBED:
        return path
    copy = job_dir.resolve() / SERVED_DIR / relative
    return copy if scrubber.scrub_file(path, copy) else path


CSV_HEADER = ("name", "idx", "step", "t", "value")
#: a text cell starting with one of these is a formula to a spreadsheet
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """A text cell a spreadsheet shows as text: a formula-like start gets a leading ``'``.

    A carriage return becomes a line feed: the writer quotes a cell holding ``\n`` (the
    row terminator) but not one holding a lone ``\r``, which readers take as a row end.
    """
    if text.startswith(_FORMULA_START):
        text = f"'{text}"
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def write_metrics_csv(out: TextIO, rows: Iterable[Any], *, header: bool = True) -> None:
    """Raw points as CSV: name, idx, step, t, value (non-finite values spelled out).

    Names are user text (``csv_text``); numbers are written as they are.

    ``rows`` may be a database cursor: rows are written as they come, never all held.
    """
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_HEADER)
    for name, idx, step, t, value, special in rows:
        writer.writerow([csv_text(name), idx, "" if step is None else step, repr(float(t)),
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
