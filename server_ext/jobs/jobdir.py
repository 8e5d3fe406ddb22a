"""The job directory protocol (docs/job-directory.md): names, ids and small file helpers.

Imported by the server and by the runner process, so it needs nothing but the standard
library.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

JOB_JSON = "job.json"
NOTEBOOK = "notebook.ipynb"
OUTPUT = "output.ipynb"
EVENTS = "events.jsonl"
RUNNER = "runner.jsonl"
CONTROL = "control.json"
MANIFEST = "manifest.json"
PAPERMILL_LOG = "papermill.log"
RUN_JSON = "run.json"
ENVIRONMENT = "environment.txt"
CHECKPOINTS = "checkpoints"
METRICS_CSV = "metrics.csv"

ENV_JOB_ID = "NOTEBENCH_JOB_ID"
ENV_JOB_DIR = "NOTEBENCH_JOB_DIR"
ENV_RESUME_FROM = "NOTEBENCH_RESUME_FROM"
ENV_RUNS_DIR = "NOTEBENCH_RUNS_DIR"

JOB_ID_PATTERN = r"j-[0-9a-f]{12}|r-[0-9a-f]{12}"
_JOB_ID = re.compile(JOB_ID_PATTERN)


def new_job_id(kind: str = "papermill") -> str:
    """``j-`` (papermill job) or ``r-`` (interactive run) and 12 hex characters."""
    return ("r-" if kind == "interactive" else "j-") + secrets.token_hex(6)


def is_job_id(value: str) -> bool:
    return bool(_JOB_ID.fullmatch(value))


def append_record(path: Path | str, record: dict[str, Any]) -> None:
    """Append one complete JSON line (``O_APPEND``: concurrent writers never interleave)."""
    record.setdefault("t", time.time())
    line = (json.dumps(record, allow_nan=False, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON through a temporary file and a rename (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
    tmp.write_text(json.dumps(value, indent=1, allow_nan=False, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The JSON content of a file, or None when it is missing or not (yet) valid."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def stop_requested(job_dir: Path) -> bool:
    control = read_json(job_dir / CONTROL)
    return bool(isinstance(control, dict) and control.get("stop"))


def boot_id() -> str:
    """This boot's id: monotonic clock values are comparable only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
