"""Graceful stop: the server asks through ``control.json``, the training loop checks.

A template calls ``should_stop()`` every step; when it turns true the template writes a
checkpoint and raises ``StopTraining``, so the remaining cells do not run and the job
ends ``stopped`` (docs/job-directory.md).
"""

from __future__ import annotations

import os
import time

import orjson

from . import _jobdir, tracking


class StopTraining(Exception):
    """Raised by training code after its last checkpoint when a stop was requested."""

    def __init__(self, message: str = "training stopped on request") -> None:
        super().__init__(message)


# the control file in which a stop was seen (the answer is latched per directory)
_stopped_in: str | None = None


_paths: dict[str, str] = {}  # job directory -> its control file


def _control_path() -> str | None:
    directory = _jobdir.job_dir_text()
    if directory is None:
        return None
    path = _paths.get(directory)
    if path is None:
        path = _paths[directory] = os.path.join(directory, _jobdir.CONTROL_FILE)
    return path


def should_stop() -> bool:
    """Whether the server asked this job (or interactive run) to stop.

    Also writes the buffered ``report()`` lines. Outside any job or run it is always
    False. The first time it answers True it records a ``stopping`` event.
    """
    global _stopped_in
    tracking.flush()
    path = _control_path()
    if path is None:
        return False
    if path == _stopped_in:
        return True
    if not os.access(path, os.F_OK):  # no exception raised and caught on every call
        return False
    try:
        with open(path, "rb") as handle:
            request = orjson.loads(handle.read())
    except (FileNotFoundError, orjson.JSONDecodeError):  # absent, or not yet complete
        return False
    except OSError:
        return False
    if not (isinstance(request, dict) and request.get("stop") is True):
        return False
    _stopped_in = path
    tracking.emit("stopping")
    return True


def stop_seen() -> bool:
    """Whether ``should_stop()`` has answered True for the current job or run."""
    path = _control_path()
    return path is not None and path == _stopped_in


def request_stop() -> None:
    """Ask the current job or run to stop, as the server does (for tests and scripts)."""
    directory = _jobdir.job_dir()
    if directory is None:
        raise RuntimeError("not inside a notebench job or run: nothing to stop")
    _jobdir.write_json_atomic(directory / _jobdir.CONTROL_FILE,
                              {"stop": True, "requested_at": time.time()})
