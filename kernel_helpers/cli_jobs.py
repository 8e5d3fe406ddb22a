"""``notebench jobs``: list, submit, follow, wait for, stop and compare jobs from a terminal.

Every subcommand talks to the running server found as ``notebench.Client`` finds it
(``--url``/``--token``; ``NOTEBENCH_SERVER_URL``/``NOTEBENCH_SERVER_TOKEN``; in a Jupyter
terminal, its server's runtime file), through ``notebench.jobs``. Output is a table for
people and JSON with ``--json`` (``logs --json``: one record a line).

Exit status: 0 done; 1 the server refused (no such job, a state conflict, bad input) or
``wait`` saw the job end other than ``succeeded``; 2 a usage error or no server (none found,
unreachable, token refused); 124 ``wait --timeout`` ran out; 130 interrupted.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .cli import write_json
from .jobprotocol import QUEUED, SUCCEEDED, decode_number, is_job_id

if TYPE_CHECKING:
    from .client import Client
    from .jobs import Job

__all__ = ["add_jobs_parser", "iter_logs", "parse_param", "render_compare", "render_jobs",
           "run_jobs", "text_table"]

EXIT_REFUSED = 1
EXIT_NO_SERVER = 2
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130
POLL_SECONDS = 0.5  # as ``Job.wait``
LOG_PAGE = 1000  # records per read of the logs route
NAME_WIDTH = 40  # a longer name is cut in tables
JOB_COLUMNS = ("ID", "NAME", "STATE", "PROGRESS", "DURATION", "LOSS", "ACCURACY", "CREATED")

Handler = Callable[[argparse.Namespace, "Client"], int]


# ----------------------------------------------------------------------- arguments


def parse_param(text: str) -> tuple[str, Any]:
    """``name=value`` -> ``(name, value)``: the value as JSON where it parses, else text."""
    import orjson

    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    try:
        return name, orjson.loads(value)
    except orjson.JSONDecodeError:
        return name, value


def _job_id(text: str) -> str:
    if not is_job_id(text):
        raise argparse.ArgumentTypeError(f"not a job id: {text!r} (j-<12 hex digits>)")
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds (>= 0), got {text!r}")
    return value


def _mode(text: str) -> tuple[str, str]:
    name, _, mode = text.rpartition(":")
    if not name or mode not in ("min", "max"):
        raise argparse.ArgumentTypeError(f"expected METRIC:min or METRIC:max, got {text!r}")
    return name, mode


def server_options() -> argparse.ArgumentParser:
    """The options of every subcommand that talks to the server (a parent parser):
    ``--url``, ``--token`` and ``--json``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the server's URL (default: $NOTEBENCH_SERVER_URL, or "
                        "the server of the Jupyter terminal this runs in)")
    common.add_argument("--token", help="the token to send it (default: "
                        "$NOTEBENCH_SERVER_TOKEN, or the one found with the server)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    return common


def add_jobs_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``jobs`` subcommand and its own subcommands, under ``sub``."""
    common = server_options()

    jobs = sub.add_parser(
        "jobs", help="list, submit, follow, wait for, stop and compare training jobs",
        description="Training jobs of the running notebench server. Exit status: 0 done, 1 "
        "refused by the server (or `wait`: the job did not succeed), 2 usage error or no "
        "server, 124 `wait --timeout` ran out.")
    jobs.set_defaults(jobs_help=jobs.format_help)
    cmds = jobs.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND")

    ls = cmds.add_parser("ls", parents=[common], help="list jobs, newest first")
    ls.add_argument("--state", action="append", metavar="STATE",
                    help="only jobs in these states (repeat, or a comma list: running,queued)")
    ls.add_argument("--tag", help="only jobs with this tag")
    ls.add_argument("--limit", type=_positive_int, default=20,
                    help="the most jobs to list (default: 20)")
    ls.set_defaults(handler=cmd_ls)

    submit = cmds.add_parser(
        "submit", parents=[common], help="queue a job; prints its id",
        description="Queue a job: NOTEBOOK is what notebench.jobs.submit takes: a notebook's "
        "(or percent-format .py script's) path under the server's root, a template's name, "
        "or a job id (a clone of that job with the given parameters).")
    submit.add_argument("notebook", metavar="NOTEBOOK")
    submit.add_argument("-p", "--param", dest="params", action="append", type=parse_param,
                        default=[], metavar="NAME=VALUE",
                        help="a parameter; VALUE is read as JSON where it parses (1e-3, true, "
                        "[1,2], \"text\"), else as text; repeat for more")
    submit.add_argument("--name", help="the job's name (default: the notebook's)")
    submit.add_argument("--tag", action="append", metavar="TAG", help="a tag; repeat for more")
    submit.add_argument("--priority", type=int, help="higher runs first")
    submit.add_argument("--timeout", type=_seconds, help="stop the job after so many seconds")
    submit.set_defaults(handler=cmd_submit)

    logs = cmds.add_parser("logs", parents=[common], help="print a job's log")
    logs.add_argument("id", type=_job_id, metavar="ID")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="keep printing new records until the job ends")
    logs.add_argument("--tail", type=_positive_int, metavar="N",
                      help="start with the last N records")
    logs.add_argument("-t", "--timestamps", action="store_true",
                      help="print each record's time")
    logs.set_defaults(handler=cmd_logs)

    wait = cmds.add_parser("wait", parents=[common],
                           help="wait until a job ends; exit 0 only if it succeeded")
    wait.add_argument("id", type=_job_id, metavar="ID")
    wait.add_argument("--timeout", type=_seconds, help="give up after so many seconds (124)")
    wait.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    wait.set_defaults(handler=cmd_wait)

    stop = cmds.add_parser("stop", parents=[common],
                           help="stop a running job (cancel a queued one)")
    stop.add_argument("id", type=_job_id, metavar="ID")
    stop.add_argument("--wait", action="store_true", help="return once the job has ended")
    stop.set_defaults(handler=cmd_stop)

    compare = cmds.add_parser("compare", parents=[common],
                              help="jobs side by side: parameters and metrics")
    compare.add_argument("ids", type=_job_id, nargs="+", metavar="ID")
    compare.add_argument("--mode", type=_mode, action="append", default=[],
                         metavar="METRIC:min|max", help="which end of a metric is best")
    compare.set_defaults(handler=cmd_compare)


# --------------------------------------------------------------------------- running


def _fail(message: str, status: int) -> int:
    print(f"notebench: {message}", file=sys.stderr)
    return status


def run_jobs(args: argparse.Namespace) -> int:
    """Run the chosen subcommand; every error is one line on stderr and an exit status."""
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        sys.stderr.write(args.jobs_help())
        return EXIT_NO_SERVER
    from .client import ApiError, Client, ServerNotFound
    from .discovery import ENV_TOKEN, ENV_URL

    url = args.url or os.environ.get(ENV_URL) or "?"
    try:
        client = Client(args.url, args.token)
        url = client.url
        return handler(args, client)
    except ServerNotFound:
        return _fail(f"no notebench server found: pass --url and --token, or set {ENV_URL} "
                     f"and {ENV_TOKEN}", EXIT_NO_SERVER)
    except ApiError as exc:
        if exc.status in (401, 403):
            return _fail(f"the server at {url} refused the token ({exc.status} {exc.code}): "
                         f"pass --token or set {ENV_TOKEN}", EXIT_NO_SERVER)
        return _fail(exc.message, EXIT_REFUSED)
    except BrokenPipeError:  # `notebench jobs logs ID | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_REFUSED
    except (OSError, http.client.HTTPException) as exc:
        return _fail(f"cannot reach the server at {url}: {exc}", EXIT_NO_SERVER)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def cmd_ls(args: argparse.Namespace, client: Client) -> int:
    from . import jobs

    states = [s.strip() for arg in args.state or [] for s in arg.split(",") if s.strip()]
    listed = jobs.list(state=states or None, tag=args.tag, limit=args.limit, client=client)
    records = [job.data for job in listed]
    if args.json:
        write_json(records)
    else:
        sys.stdout.write(render_jobs(records))
    return 0


def cmd_submit(args: argparse.Namespace, client: Client) -> int:
    from . import jobs

    options = {"name": args.name, "tags": args.tag, "priority": args.priority,
               "timeout": args.timeout}
    try:
        job = jobs.submit(args.notebook, dict(args.params), client=client,
                          **{k: v for k, v in options.items() if v is not None})
    except ValueError as exc:  # a path outside the server's root
        return _fail(str(exc), EXIT_REFUSED)
    if args.json:
        write_json(job.data)
    else:
        print(job.id)
        print(f"notebench: {job.id} ({_clean(job.name)}) {job.state}", file=sys.stderr)
    return 0


def iter_logs(job: Job, *, tail: int | None = None, follow: bool = False,
              poll: float = POLL_SECONDS) -> Iterator[dict[str, Any]]:
    """A job's log records, oldest first (``tail``: from the last N); ``follow`` reads new
    ones every ``poll`` seconds until the job has ended, then once more (the server's record
    of the end is written just after the state)."""
    after: int | None = None
    last_read = False
    if tail is not None:
        records = job.logs(tail=tail)
        yield from records
        if not follow:
            return
        after = records[-1]["id"] if records else None
    while True:
        ended = follow and job.refresh().done  # read before the records: none is missed
        while True:
            params: dict[str, Any] = {"limit": LOG_PAGE}
            if after is not None:
                params["after_id"] = after
            records = job.logs(**params)
            yield from records
            if records:
                after = records[-1]["id"]
            if len(records) < LOG_PAGE:
                break
        if not follow or last_read:
            return
        last_read = ended
        time.sleep(poll)


def format_record(record: dict[str, Any], *, timestamps: bool = False) -> str:
    """A log record as a line: the notebook's output as it is, other sources tagged."""
    message = str(record.get("message") or "").rstrip("\n")
    source = record.get("source") or "?"
    if source != "papermill":
        level = record.get("level")
        tag = source if level in (None, "info", "debug") else f"{source} {level}"
        message = f"[{tag}] {message}"
    if timestamps:
        message = f"{_when(record.get('ts'), seconds=True)} {message}"
    return message


def cmd_logs(args: argparse.Namespace, client: Client) -> int:
    from . import jobs

    job = jobs.get(args.id, client=client)
    for record in iter_logs(job, tail=args.tail, follow=args.follow):
        if args.json:
            write_json(record, indent=False)
        else:
            print(format_record(record, timestamps=args.timestamps))
        if args.follow:
            sys.stdout.flush()  # a pipe sees each record as it comes
    return 0


def _summary(data: dict[str, Any]) -> str:
    """``j-… (name) failed after 3s: ValueError: boom``."""
    text = f"{data.get('id')} ({_clean(data.get('name'))}) {data.get('state')}"
    if data.get("state") not in (QUEUED, "running", "paused", "stopping"):
        text += f" after {_duration(data.get('duration'))}"
    reason = data.get("reason")
    error = data.get("error") or {}
    detail = reason or (f"{error.get('ename')}: {error.get('evalue')}" if error else "")
    return text + (f": {_clean(detail)}" if detail else "")


def cmd_wait(args: argparse.Namespace, client: Client) -> int:
    from . import jobs

    job = jobs.get(args.id, client=client)
    started = time.monotonic()
    progress = not (args.json or args.quiet) and sys.stderr.isatty()
    try:
        job.wait(args.timeout, progress=progress, poll=POLL_SECONDS)
    except TimeoutError:
        if args.timeout is None or time.monotonic() - started < args.timeout:
            raise  # the connection timed out, not the wait
        if args.json:
            write_json(job.data)
        return _fail(f"{job.id} is still {job.state} after {args.timeout:g}s", EXIT_TIMEOUT)
    if args.json:
        write_json(job.data)
    else:
        print(_summary(job.data))
    return 0 if job.state == SUCCEEDED else EXIT_REFUSED


def cmd_stop(args: argparse.Namespace, client: Client) -> int:
    from . import jobs
    from .client import ApiError

    job = jobs.get(args.id, client=client)
    if job.state == QUEUED:
        try:
            job.cancel()
        except ApiError as exc:
            if exc.status != 409:
                raise
            job.refresh().stop()  # it started meanwhile
    else:
        job.stop()
    if args.wait:
        job.wait(progress=False, poll=POLL_SECONDS)
    if args.json:
        write_json(job.data)
    else:
        print(_summary(job.data))
    return 0


def cmd_compare(args: argparse.Namespace, client: Client) -> int:
    from . import jobs

    try:
        result = jobs.compare(args.ids, client=client, modes=dict(args.mode) or None)
    except ImportError as exc:
        return _fail(f"compare needs pandas: {exc}", EXIT_REFUSED)
    rows = result.frame.reset_index().to_dict(orient="records")
    if args.json:
        write_json({"jobs": rows, "differing": result.differing})
    else:
        sys.stdout.write(render_compare(rows, result.differing_columns))
    return 0


# ---------------------------------------------------------------------------- tables


def _clean(value: Any) -> str:
    """Text safe in one table cell: no control characters (newlines, escapes)."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _clip(value: Any, width: int = NAME_WIDTH) -> str:
    text = _clean(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(seconds: Any) -> str:
    from .widgets.fmt import duration

    return duration(seconds)


def _number(value: Any) -> str:
    from .widgets.fmt import number

    if isinstance(value, float) and math.isnan(value):
        return "-"
    return number(decode_number(value))


def _when(ts: Any, *, seconds: bool = False) -> str:
    if not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))


def _headline(job: dict[str, Any], kind: str) -> Any:
    metric = (job.get("headline") or {}).get(kind)
    return metric.get("value") if isinstance(metric, dict) else None


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    cells = [[_clean(h) for h in headers], *[[_clean(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join(lines) + "\n"


def render_jobs(records: Sequence[dict[str, Any]]) -> str:
    """``ls``: a row per job (``JOB_COLUMNS``)."""
    rows = []
    for job in records:
        fraction = (job.get("progress") or {}).get("fraction")
        progress = f"{fraction:.0%}" if isinstance(fraction, (int, float)) else "-"
        rows.append([job.get("id"), _clip(job.get("name")), job.get("state"), progress,
                     _duration(job.get("duration")), _number(_headline(job, "loss")),
                     _number(_headline(job, "accuracy")), _when(job.get("created"))])
    return text_table(JOB_COLUMNS, rows)


def render_compare(rows: Sequence[dict[str, Any]], marked: Sequence[str] = ()) -> str:
    """``compare``: a column per job, a row per field; the ``marked`` fields (the
    differing parameters' columns) end with ``*``."""
    if not rows:
        return "no jobs\n"
    fields = [k for k in rows[0] if k != "id"]
    table = []
    for field in fields:
        label = f"{field} *" if field in marked else field
        values = [row.get(field) for row in rows]
        if field == "duration":
            cells = [_duration(v) for v in values]
        elif field == "name":
            cells = [_clip(v, 24) for v in values]
        else:
            cells = [_number(v) for v in values]
        table.append([label, *cells])
    return text_table(["", *(str(row.get("id")) for row in rows)], table)
