"""``NotebenchEngine``: papermill's nbclient engine, recording what it runs.

Registered under papermill's ``papermill.engine`` entry point as ``notebench`` (and
programmatically by the runner, in case entry points are missing). Inside a job (when
``NOTEBENCH_JOB_DIR`` is set) it appends to the job's ``runner.jsonl``: the kernel's pid,
process group and start time (jupyter_client starts the kernel in its own session, out of
reach of signals to papermill's group), ``cell_start``/``cell_end`` per cell, and the
failing cell's error (its error output, else the kernel's execute reply). Between cells
it honours a stop request (``control.json``): the remaining cells do not run. Kernel output
goes to the runner's stdout/stderr unchanged (carriage returns kept, so progress bars can
be collapsed to their last state later). Outside a job it behaves as papermill's default
engine.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from nbclient.exceptions import CellExecutionError, DeadKernelError
from nbclient.util import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine
from papermill.utils import merge_kwargs, remove_args

from notebench.jobprotocol import JOB_DIR_ENV, RUNNER_FILE

from .jobdir import append_record, stop_requested

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class Recorder:
    """Appends the runner's records to ``runner.jsonl`` (a no-op outside a job)."""

    def __init__(self, job_dir: Path | None) -> None:
        self.job_dir = job_dir
        self.stopped_by_request = False
        self.failed_cell: int | None = None
        self.error: dict[str, Any] | None = None  # the failing cell's ename, evalue, traceback
        self.death: str | None = None

    @classmethod
    def from_environment(cls) -> Recorder:
        value = os.environ.get(JOB_DIR_ENV)
        return cls(Path(value) if value else None)

    def record(self, kind: str, **fields: Any) -> None:
        if self.job_dir is not None:
            append_record(self.job_dir / RUNNER_FILE, {"kind": kind, **fields})

    def stop_requested(self) -> bool:
        return self.job_dir is not None and stop_requested(self.job_dir)


def process_record(pid: int) -> dict[str, Any]:
    """pid, process group and start time of a process (start time tells reuse apart)."""
    import psutil

    try:
        pgid = os.getpgid(pid)
    except OSError:
        pgid = None
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:
        create_time = None
    return {"pid": pid, "pgid": pgid, "create_time": create_time}


def error_of_cell(cell: Any, failure: CellExecutionError | None = None) -> dict[str, Any]:
    """ename, evalue and traceback (ANSI colours removed) of a cell's error output.

    A cell can fail without an error output (IPython's ``UsageError`` for an unknown
    magic is printed to stderr and only named in the execute reply): then the kernel's
    ``ename``/``evalue`` come from the reply, which nbclient's ``failure`` carries.
    """
    for output in cell.get("outputs") or []:
        if output.get("output_type") == "error":
            return {"ename": output.get("ename", ""), "evalue": output.get("evalue", ""),
                    "traceback": [strip_ansi(line) for line in output.get("traceback") or []]}
    if failure is not None:
        return {"ename": str(failure.ename or ""), "evalue": str(failure.evalue or ""),
                "traceback": []}
    return {"ename": "", "evalue": "", "traceback": []}


class NotebenchNotebookClient(PapermillNotebookClient):
    """papermill's client with records of the kernel, the cells and the failure."""

    recorder: Recorder

    async def async_start_new_kernel(self, **kwargs: Any) -> None:
        await super().async_start_new_kernel(**kwargs)
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        pid = getattr(process, "pid", None) or getattr(provisioner, "pid", None)
        if pid:
            self.recorder.record("kernel", **process_record(int(pid)))

    start_new_kernel = run_sync(async_start_new_kernel)

    def papermill_execute_cells(self) -> None:
        recorder = self.recorder
        count = len(self.nb.cells)
        for index, cell in enumerate(self.nb.cells):
            if recorder.stop_requested():
                recorder.stopped_by_request = True
                recorder.record("stop_seen", index=index, count=count)
                break
            recorder.record("cell_start", index=index, count=count)
            status = "ok"
            try:
                self.nb_man.cell_start(cell, index)
                self.execute_cell(cell, index)
            except CellExecutionError as ex:
                status = "error"
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                recorder.failed_cell = index
                recorder.error = error_of_cell(self.nb.cells[index], ex)
                recorder.record("error", cell_index=index, **recorder.error)
                break
            except DeadKernelError as ex:
                status = "error"
                recorder.failed_cell = index
                recorder.death = self._death_reason(ex)
                recorder.record("error", cell_index=index, ename="DeadKernelError",
                                evalue=recorder.death, traceback=[])
                raise
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)
                recorder.record("cell_end", index=index, count=count, status=status)

    def _death_reason(self, ex: Exception) -> str:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        code = process.poll() if process is not None else None
        if code is not None and code < 0:
            return f"the kernel died (killed by signal {-code})"
        if code is not None:
            return f"the kernel died (exit code {code})"
        return f"the kernel died ({ex})"

    def log_output_message(self, output: Any) -> None:
        """Stream output goes out as the kernel wrote it; other text through the logger."""
        if output.output_type == "stream":
            OUTPUT_LINE.write(output.name, "".join(output.text))
            return
        OUTPUT_LINE.close_line()
        super().log_output_message(output)


class _OutputLine:
    """Kernel stdout and stderr share one log file: a line left open by one stream (a
    progress bar's ``\\r`` updates) is ended before the other stream or a log record
    writes, so collapsing carriage returns later never merges two sources."""

    def __init__(self) -> None:
        self.open_stream: str | None = None

    def write(self, name: str, text: str) -> None:
        if not text:
            return
        if self.open_stream is not None and self.open_stream != name:
            self.close_line()
        stream = sys.stderr if name == "stderr" else sys.stdout
        stream.write(text)
        stream.flush()
        self.open_stream = None if text.endswith("\n") else name

    def close_line(self) -> None:
        if self.open_stream is not None:
            stream = sys.stderr if self.open_stream == "stderr" else sys.stdout
            stream.write("\n")
            stream.flush()
            self.open_stream = None


OUTPUT_LINE = _OutputLine()


class LineSafeHandler(logging.StreamHandler):
    """A log handler that starts its records on a fresh line of the shared log file."""

    def emit(self, record: logging.LogRecord) -> None:
        OUTPUT_LINE.close_line()
        super().emit(record)


class NotebenchEngine(NBClientEngine):
    """The papermill engine notebench jobs run with (``engine_name="notebench"``)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                 stdout_file: Any = None, stderr_file: Any = None,
                                 start_timeout: int = 60, execution_timeout: int | None = None,
                                 **kwargs: Any) -> Any:
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=_papermill_logger(),
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        client = NotebenchNotebookClient(nb_man, **final_kwargs)
        client.recorder = _RECORDER.get("current") or Recorder.from_environment()
        return client.execute()


#: the runner installs its recorder here so that it can read the stop flag afterwards
_RECORDER: dict[str, Recorder] = {}


def use_recorder(recorder: Recorder) -> None:
    _RECORDER["current"] = recorder


def _papermill_logger() -> Any:
    from papermill.log import logger

    return logger
