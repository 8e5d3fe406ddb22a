"""The process that runs one job: ``python -m notebench.server.jobs.runner <job_dir>``.

Started by the local executor in a session of its own, with stdout and stderr going to
``papermill.log`` in the job directory (never to a pipe of the server, so the job
outlives a server that dies). It reads ``job.json``, runs papermill with the notebench
engine on the notebook snapshot, and appends to ``runner.jsonl``: its own pid, process
group and start time first, ``finished`` with the outcome last (see
docs/job-directory.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from notebench.jobprotocol import JOB_JSON, NOTEBOOK, OUTPUT

from ..credentials import JOB_PREFIX
from ..scrubbing import SECRET_ENV_NAMES

STOP_EXCEPTION = "StopTraining"


def _install_sigterm(recorder: Any) -> None:
    """SIGTERM (the executor's escalation) records the end before the runner goes."""

    def on_term(signum: int, frame: Any) -> None:
        try:
            recorder.record("finished", status="stopped", reason="terminated by SIGTERM")
        finally:
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)


def run(job_dir: Path) -> int:
    for name in SECRET_ENV_NAMES:  # the kernel inherits this environment: no credentials
        if not os.environ.get(name, "").startswith(JOB_PREFIX):  # but its own job's token
            os.environ.pop(name, None)
    job = json.loads((job_dir / JOB_JSON).read_text())
    # jsonschema (through nbformat) imports rfc3987_syntax when present, which builds a
    # grammar for about 4 s on a small machine; nbformat never validates IRIs, so a
    # job does not pay that at every start.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    # papermill first: importing it loads the engines of its entry points, ours included;
    # importing our engine first would make that a circular import
    import papermill

    from .engine import LineSafeHandler, Recorder, process_record, use_recorder

    recorder = Recorder(job_dir)
    recorder.record("runner", **process_record(os.getpid()))
    _install_sigterm(recorder)
    handler = LineSafeHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])

    from nbclient.exceptions import DeadKernelError
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    from .engine import NotebenchEngine

    papermill_engines.register("notebench", NotebenchEngine)
    use_recorder(recorder)
    status, reason = "succeeded", None
    try:
        papermill.execute_notebook(
            str(job_dir / NOTEBOOK), str(job_dir / OUTPUT),
            parameters=job.get("resolved") or {},
            engine_name="notebench",
            kernel_name=job.get("kernel_name") or None,
            log_output=True,
            progress_bar=False,
            request_save_on_cell_execute=True,
            autosave_cell_every=int(job.get("autosave_seconds") or 10),
            start_timeout=int(job.get("start_timeout") or 60),
            cwd=str(job_dir),
        )
        if recorder.stopped_by_request:
            status, reason = "stopped", "stop requested"
    except PapermillExecutionError as exc:
        # papermill names a failure without an error output "CellExecutionError" with no
        # value; the engine kept the kernel's own ename and evalue from its execute reply
        ename, evalue = ((recorder.error["ename"], recorder.error["evalue"])
                         if recorder.error and recorder.error["ename"]
                         else (exc.ename, exc.evalue))
        if ename == STOP_EXCEPTION:
            status, reason = "stopped", STOP_EXCEPTION
        else:
            status, reason = "failed", f"{ename}: {evalue}"[:500]
    except DeadKernelError as exc:
        status, reason = "failed", recorder.death or f"the kernel died: {exc}"[:500]
    except Exception as exc:  # kernel start failures, missing kernelspec, I/O errors
        status, reason = "failed", f"{type(exc).__name__}: {exc}"[:500]
        if recorder.failed_cell is None:
            recorder.record("error", cell_index=None, ename=type(exc).__name__,
                            evalue=str(exc)[:2000], traceback=[])
        logging.getLogger("notebench.runner").exception("the job could not run")
    recorder.record("finished", status=status, reason=reason)
    return 0 if status == "succeeded" else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m notebench.server.jobs.runner <job_dir>", file=sys.stderr)
        return 2
    return run(Path(args[0]).resolve())


def _exit_now(code: int) -> None:
    """End the process once ``finished`` is recorded: the output notebook is saved and the
    kernel shut down, so the interpreter's teardown of papermill's imports (a few hundred
    milliseconds on a small machine, before the server sees the job end) is skipped."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
