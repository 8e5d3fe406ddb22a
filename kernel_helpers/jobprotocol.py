"""The job protocol shared by the training kernel, the runner and the server.

Standard library only: the runner process and the training kernel import it at start.
It names the job directory's files and the environment variables (docs/job-directory.md),
writes files durably, lists the job states and the stream topics, encodes non-finite
numbers, and derives what every front end displays of a job (its progress fraction and
its headline metrics), so the server computes them once.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

# -- the job directory -------------------------------------------------------------------

JOB_JSON = "job.json"
NOTEBOOK = "notebook.ipynb"
OUTPUT = "output.ipynb"
EVENTS_FILE = "events.jsonl"
RUNNER_FILE = "runner.jsonl"
CONTROL_FILE = "control.json"
MANIFEST_FILE = "manifest.json"
PAPERMILL_LOG = "papermill.log"
RUN_JSON = "run.json"
ENVIRONMENT = "environment.txt"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_INDEX = "index.json"
METRICS_CSV = "metrics.csv"

JOB_ID_ENV = "NOTEBENCH_JOB_ID"
JOB_DIR_ENV = "NOTEBENCH_JOB_DIR"
RESUME_ENV = "NOTEBENCH_RESUME_FROM"
RUNS_DIR_ENV = "NOTEBENCH_RUNS_DIR"

JOB_ID_PATTERN = r"j-[0-9a-f]{12}|r-[0-9a-f]{12}"
_JOB_ID = re.compile(JOB_ID_PATTERN)


def new_job_id(kind: str = "papermill") -> str:
    """``j-`` (papermill job) or ``r-`` (interactive run) and 12 hex characters."""
    return ("r-" if kind == "interactive" else "j-") + secrets.token_hex(6)


def is_job_id(value: str) -> bool:
    """Whether ``value`` is a job (``j-``) or interactive run (``r-``) id."""
    return bool(_JOB_ID.fullmatch(value))


# -- durable writes ----------------------------------------------------------------------


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


def write_atomic(path: Path, write: Callable[[BinaryIO], object], *,
                 mode: int = 0o666) -> None:
    """Let ``write`` fill ``path`` atomically: temp file, fsync, rename, fsync the folder.

    Readers never see half a file, and after a crash the file is the old or the new one.
    ``mode`` (less the umask) is the file's from its creation: a secret is never readable
    by others, not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(3).hex()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes, *, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` atomically (``write_atomic``)."""
    write_atomic(path, lambda handle: handle.write(data), mode=mode)


def write_json_atomic(path: Path, value: Any) -> None:
    """``value`` as indented JSON (no NaN: see ``encode_number``), written atomically."""
    text = json.dumps(value, indent=1, allow_nan=False, default=str) + "\n"
    write_bytes_atomic(path, text.encode())


# -- an interactive run's parameters and tags ---------------------------------------------

MAX_RUN_PARAMS = 200  # parameters of one interactive run
MAX_RUN_PARAMS_BYTES = 64 * 1024  # their JSON
MAX_RUN_TAGS = 50
MAX_RUN_NAME_LENGTH = 200  # a parameter's name, a tag


def check_run_fields(params: Any, tags: Any) -> tuple[dict[str, Any], list[str]]:
    """An interactive run's ``params`` and ``tags`` (``run.json``), checked and normalised.

    ``params``: a dict of at most ``MAX_RUN_PARAMS`` names (non-empty strings) to JSON
    values (no NaN or infinity), at most ``MAX_RUN_PARAMS_BYTES`` as JSON; ``tags``: a
    list of at most ``MAX_RUN_TAGS`` non-empty strings (duplicates dropped). ``None``
    means none. Raises ``ValueError`` saying what is wrong.
    """
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict, not {type(params).__name__}")
    if len(params) > MAX_RUN_PARAMS:
        raise ValueError(f"at most {MAX_RUN_PARAMS} params ({len(params)} given)")
    for name in params:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_RUN_NAME_LENGTH:
            raise ValueError(f"a param's name must be a non-empty string of at most "
                             f"{MAX_RUN_NAME_LENGTH} characters: {name!r}")
    try:
        encoded = json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError("params must be JSON values (numbers, strings, booleans, None, "
                         f"lists and dicts of them; no NaN or infinity): {error}") from None
    if len(encoded.encode()) > MAX_RUN_PARAMS_BYTES:
        raise ValueError(f"params take {len(encoded.encode())} bytes as JSON, more than "
                         f"{MAX_RUN_PARAMS_BYTES}")
    tags = [] if tags is None else tags
    if not isinstance(tags, (list, tuple)):
        raise ValueError(f"tags must be a list of strings, not {type(tags).__name__}")
    if len(tags) > MAX_RUN_TAGS:
        raise ValueError(f"at most {MAX_RUN_TAGS} tags ({len(tags)} given)")
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_RUN_NAME_LENGTH:
            raise ValueError(f"a tag must be a non-empty string of at most "
                             f"{MAX_RUN_NAME_LENGTH} characters: {tag!r}")
    return json.loads(encoded), list(dict.fromkeys(tags))


# -- job states --------------------------------------------------------------------------

QUEUED = "queued"
RUNNING = "running"
PAUSED = "paused"
STOPPING = "stopping"
STOPPED = "stopped"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

STATES = (QUEUED, RUNNING, PAUSED, STOPPING, STOPPED, SUCCEEDED, FAILED, CANCELLED)
#: final states: a job in one never changes state again
TERMINAL = frozenset({STOPPED, SUCCEEDED, FAILED, CANCELLED})
#: states whose processes may exist
ACTIVE = frozenset({RUNNING, PAUSED, STOPPING})

# -- stream topics -----------------------------------------------------------------------

JOBS_TOPIC = "jobs"
JOB_TOPIC_PREFIX = "job:"
JOB_TOPIC_PATTERN = r"job:[a-z0-9-]+"


def job_topic(job_id: str) -> str:
    """The topic of one job's events (metrics, log, progress, its state)."""
    return JOB_TOPIC_PREFIX + job_id


# -- non-finite numbers ------------------------------------------------------------------

NONFINITE = "nonfinite"
_SPECIAL_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def nonfinite_kind(value: Any) -> str | None:
    """``"nan"``/``"inf"``/``"-inf"`` for a non-finite float or its encoded form, else None."""
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (math.inf, -math.inf):
            return "inf" if value > 0 else "-inf"
        return None
    if isinstance(value, dict):
        special = value.get(NONFINITE)
        return special if special in _SPECIAL_VALUES else None
    return None


def encode_number(value: Any) -> Any:
    """A JSON-safe number: a non-finite float becomes ``{"nonfinite": kind}``."""
    special = nonfinite_kind(value) if isinstance(value, float) else None
    return {NONFINITE: special} if special is not None else value


def decode_number(value: Any) -> Any:
    """The float an encoded non-finite value stands for; any other value as it is."""
    special = nonfinite_kind(value) if isinstance(value, dict) else None
    return _SPECIAL_VALUES[special] if special is not None else value


# -- what front ends display -------------------------------------------------------------

#: headline name -> what a metric's name contains to count (case-insensitive)
HEADLINE_KINDS = {"loss": "loss", "accuracy": "acc"}


def _is_value(value: Any) -> bool:
    return ((isinstance(value, (int, float)) and not isinstance(value, bool))
            or nonfinite_kind(value) is not None)


def headline_metric(metrics: dict[str, Any], contains: str) -> dict[str, Any] | None:
    """``{"name", "value"}`` of the metric to show for a kind, or None.

    Among the metrics whose name contains ``contains``: a validation metric (its name
    starts with ``val``) first, then the shortest name (``loss`` before ``loss_scale``).
    The value is a number or an encoded non-finite one (a NaN loss shows as NaN).
    """
    names = [n for n, v in metrics.items() if contains in n.lower() and _is_value(v)]
    if not names:
        return None
    name = min(names, key=lambda n: (not n.lower().startswith("val"), len(n), n))
    return {"name": name, "value": encode_number(metrics[name])}


def headline(metrics: dict[str, Any] | None) -> dict[str, dict[str, Any] | None]:
    """The headline metrics of a job's latest values: ``{"loss": ..., "accuracy": ...}``."""
    return {kind: headline_metric(metrics or {}, contains)
            for kind, contains in HEADLINE_KINDS.items()}


def steps_fraction(progress: dict[str, Any]) -> float | None:
    """``step / total_steps`` (``step`` counts the steps done), or None without both."""
    step, total = progress.get("step"), progress.get("total_steps")
    if isinstance(step, int) and isinstance(total, int) and total > 0:
        return round(min(1.0, max(0.0, step / total)), 4)
    return None


def cells_fraction(progress: dict[str, Any]) -> float | None:
    """The cells done (the running one not counted) of the notebook's cells, or None."""
    cell, cells = progress.get("cell"), progress.get("cells")
    if isinstance(cell, int) and isinstance(cells, int) and cells > 0:
        return round(min(1.0, (cell + (progress.get("cell_state") != "running")) / cells), 4)
    return None


def progress_fraction(progress: dict[str, Any], state: str | None = None) -> float | None:
    """How far a job is, 0..1 (None: unknown): 1 once it succeeded, else its steps when
    it reports ``total_steps``, else its cells."""
    if state == SUCCEEDED:
        return 1.0
    fraction = steps_fraction(progress)
    return fraction if fraction is not None else cells_fraction(progress)
