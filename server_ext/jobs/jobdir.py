"""The server's and the runner's side of the job directory: records, reads, the stop flag.

The protocol itself (file names, environment variables, ids, durable writes) is
``notebench.jobprotocol``, shared with the training kernel. Imported by the runner
process, so it needs nothing but the standard library.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from notebench.jobprotocol import CONTROL_FILE

#: the folder of the jobs' directories, inside the workspace's artifacts root
JOBS_FOLDER = "jobs"


def append_record(path: Path | str, record: dict[str, Any]) -> None:
    """Append one complete JSON line (``O_APPEND``: concurrent writers never interleave)."""
    record.setdefault("t", time.time())
    line = (json.dumps(record, allow_nan=False, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """The JSON content of a file, or None when it is missing or not (yet) valid."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def stop_requested(job_dir: Path) -> bool:
    control = read_json(job_dir / CONTROL_FILE)
    return bool(isinstance(control, dict) and control.get("stop"))


def boot_id() -> str:
    """This boot's id: monotonic clock values are comparable only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
