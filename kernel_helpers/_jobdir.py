"""Where a training kernel writes: its job directory, an interactive run's, or a local folder.

The server names a papermill job's directory in ``NOTEBENCH_JOB_DIR``; ``start_run()``
makes an interactive run's directory the current one for this process. Outside both,
files that must go to disk (checkpoints, the final model) go to ``./notebench-output/``.
See docs/job-directory.md for the protocol.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

JOB_ID_ENV = "NOTEBENCH_JOB_ID"
JOB_DIR_ENV = "NOTEBENCH_JOB_DIR"
RESUME_ENV = "NOTEBENCH_RESUME_FROM"
RUNS_DIR_ENV = "NOTEBENCH_RUNS_DIR"
LOCAL_DIR_NAME = "notebench-output"

EVENTS_FILE = "events.jsonl"
CONTROL_FILE = "control.json"
MANIFEST_FILE = "manifest.json"
CHECKPOINTS_DIR = "checkpoints"

# (id, directory) of the interactive run started in this process, if any
_run: tuple[str, Path] | None = None


def set_active_run(run_id: str | None, directory: Path | None) -> None:
    """Make an interactive run's directory the current one (``None`` clears it)."""
    global _run
    _run = (run_id, directory) if run_id is not None and directory is not None else None


def job_id() -> str | None:
    """The id of the current job or interactive run, if any."""
    if _run is not None:
        return _run[0]
    return os.environ.get(JOB_ID_ENV) or None


def job_dir() -> Path | None:
    """The current job's (or interactive run's) directory, or None outside any."""
    if _run is not None:
        return _run[1]
    value = os.environ.get(JOB_DIR_ENV)
    return Path(value) if value else None


def job_dir_text() -> str | None:
    """``job_dir()`` as a string (cheap: no ``Path`` built on every call)."""
    if _run is not None:
        return str(_run[1])
    return os.environ.get(JOB_DIR_ENV) or None


def in_papermill_job() -> bool:
    """Whether this kernel runs a job the server submitted (not an interactive run)."""
    return bool(os.environ.get(JOB_DIR_ENV))


def output_dir() -> Path:
    """The job directory, else ``./notebench-output`` (created)."""
    directory = job_dir() or Path.cwd() / LOCAL_DIR_NAME
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def resume_from() -> Path | None:
    """The checkpoint a restarted job resumes from (``NOTEBENCH_RESUME_FROM``)."""
    value = os.environ.get(RESUME_ENV)
    return Path(value) if value else None


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where directories cannot sync)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, value: Any) -> None:
    """``value`` as indented JSON, written atomically."""
    write_bytes_atomic(path, (json.dumps(value, indent=1, allow_nan=False) + "\n").encode())
