"""Where a training kernel writes: its job directory, an interactive run's, or a local folder.

The server names a papermill job's directory in ``NOTEBENCH_JOB_DIR``; ``start_run()``
makes an interactive run's directory the current one for this process. Outside both,
files that must go to disk (checkpoints, the final model) go to ``./notebench-output/``.
The protocol itself (names, durable writes) is ``notebench.jobprotocol``; see
docs/job-directory.md.
"""

from __future__ import annotations

import os
from pathlib import Path

# the protocol's names, re-exported for the kernel's modules
from .jobprotocol import (
    CHECKPOINT_INDEX,
    CHECKPOINTS_DIR,
    CONTROL_FILE,
    EVENTS_FILE,
    JOB_DIR_ENV,
    JOB_ID_ENV,
    MANIFEST_FILE,
    RESUME_ENV,
    RUNS_DIR_ENV,
    fsync_dir,
    write_atomic,
    write_bytes_atomic,
    write_json_atomic,
)

__all__ = [
    "CHECKPOINTS_DIR",
    "CHECKPOINT_INDEX",
    "CONTROL_FILE",
    "EVENTS_FILE",
    "JOB_DIR_ENV",
    "JOB_ID_ENV",
    "LOCAL_DIR_NAME",
    "MANIFEST_FILE",
    "RESUME_ENV",
    "RUNS_DIR_ENV",
    "fsync_dir",
    "in_papermill_job",
    "job_dir",
    "job_dir_text",
    "job_id",
    "output_dir",
    "resume_from",
    "set_active_run",
    "write_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
]

LOCAL_DIR_NAME = "notebench-output"

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
