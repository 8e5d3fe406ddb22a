"""``notebench export tensorboard|mlflow`` and ``notebench import tensorboard``.

They find the server as ``notebench jobs`` does (``--url``/``--token``, the environment, a
Jupyter terminal's server) and share its error handling and exit statuses
(``cli_jobs.run_jobs``): 0 done, 1 refused (no such job, a missing package, a bad folder),
2 usage error or no server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..cli import write_json
from ..cli_jobs import EXIT_REFUSED, _fail, _job_id, run_jobs, server_options, text_table

if TYPE_CHECKING:
    from ..client import Client

__all__ = ["add_export_parser", "add_import_parser", "run_interop"]


def add_export_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``export tensorboard ID... DIR`` and ``export mlflow ID... --tracking-uri URI``."""
    common = server_options()
    export = sub.add_parser("export", help="write jobs' runs for TensorBoard or MLflow")
    export.set_defaults(jobs_help=export.format_help)
    tools = export.add_subparsers(dest="export_tool", metavar="TOOL")
    tb = tools.add_parser(
        "tensorboard", parents=[common], help="a job's metrics as TensorBoard event files",
        description="Write each job's metrics (every point, its step and wall time) and "
        "parameters (text and hparams) as event files in DIR/<job id>; an earlier export "
        "there is replaced. Then: tensorboard --logdir DIR")
    tb.add_argument("ids", type=_job_id, nargs="+", metavar="ID")
    tb.add_argument("dir", metavar="DIR")
    tb.set_defaults(handler=cmd_export_tensorboard)
    ml = tools.add_parser(
        "mlflow", parents=[common], help="jobs as MLflow runs",
        description="Export each job as an MLflow run (parameters, metric series, tags, "
        "the model file); prints the MLflow run ids.")
    ml.add_argument("ids", type=_job_id, nargs="+", metavar="ID")
    ml.add_argument("--tracking-uri", required=True, metavar="URI",
                    help="MLflow's tracking URI (file:///path, http://host:5000, ...)")
    ml.add_argument("--experiment", default="notebench", help="the experiment's name")
    ml.set_defaults(handler=cmd_export_mlflow)


def add_import_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``import tensorboard LOGDIR``."""
    common = server_options()
    imp = sub.add_parser("import", help="bring runs of other tools in as notebench runs")
    imp.set_defaults(jobs_help=imp.format_help)
    tools = imp.add_subparsers(dest="import_tool", metavar="TOOL")
    tb = tools.add_parser(
        "tensorboard", parents=[common], help="TensorBoard runs as notebench runs",
        description="Each folder under LOGDIR holding event files becomes an ended "
        "notebench run (its scalars as metrics, its hparams as parameters). Runs imported "
        "before are skipped. The server must be on this machine (or pass --runs-dir).")
    tb.add_argument("logdir", metavar="LOGDIR")
    tb.add_argument("--runs-dir", metavar="DIR",
                    help="the server's runs folder (default: $NOTEBENCH_RUNS_DIR, else "
                    "<workspace>/artifacts/jobs)")
    tb.add_argument("--no-wait", action="store_true",
                    help="return once written, before the server has found the runs")
    tb.set_defaults(handler=cmd_import_tensorboard)


def run_interop(args: argparse.Namespace) -> int:
    """Run ``export``/``import``; a missing package or a bad folder is one line, exit 1
    (the server's errors as ``notebench jobs`` reports them)."""
    handler = getattr(args, "handler", None)
    if handler is not None:
        def guarded(args: argparse.Namespace, client: Client) -> int:
            try:
                return handler(args, client)
            except (ImportError, ValueError, FileNotFoundError, NotADirectoryError,
                    TimeoutError, RuntimeError) as exc:
                return _fail(str(exc), EXIT_REFUSED)
            except Exception as exc:  # MLflow's own errors (MlflowException): one line too
                if not type(exc).__module__.startswith("mlflow"):
                    raise
                return _fail(f"MLflow: {exc}", EXIT_REFUSED)

        args.handler = guarded
    return run_jobs(args)


def cmd_export_tensorboard(args: argparse.Namespace, client: Client) -> int:
    from .tensorboard_export import export_tensorboard

    folders = export_tensorboard(args.ids, Path(args.dir), client=client)
    if args.json:
        write_json([str(f) for f in folders])
    else:
        print("\n".join(str(f) for f in folders))
    return 0


def cmd_export_mlflow(args: argparse.Namespace, client: Client) -> int:
    from .mlflow_export import export_mlflow

    run_ids = export_mlflow(args.ids, args.tracking_uri, experiment=args.experiment,
                            client=client)
    if args.json:
        write_json(dict(zip(args.ids, run_ids, strict=True)))
    else:
        print("\n".join(run_ids))
    return 0


def cmd_import_tensorboard(args: argparse.Namespace, client: Client) -> int:
    from .tensorboard_import import import_tensorboard

    runs = import_tensorboard(args.logdir, client=client, runs_dir=args.runs_dir,
                              wait=None if args.no_wait else 60.0)
    if args.json:
        write_json([r.to_dict() for r in runs])
    elif runs:
        sys.stdout.write(text_table(
            ["ID", "RUN", "POINTS", "IMPORTED"],
            [[r.id, r.name, "-" if r.skipped else r.points,
              "no (before)" if r.skipped else "yes"] for r in runs]))
    else:
        print(f"no TensorBoard event files under {args.logdir}", file=sys.stderr)
    return 0
