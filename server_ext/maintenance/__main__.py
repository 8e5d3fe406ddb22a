"""``python -m notebench.server.maintenance backup|restore|doctor``: what ``notebench
backup``, ``restore`` and ``doctor`` run (the kernel-side command never imports the server).

The workspace is ``<root dir>/notebench`` (``--root-dir``, default the current folder) or
``--workspace``. Exit statuses: 0 done (doctor: no problem left), 1 problems found, 2 bad
input or a refusal (no store, a damaged or newer backup, a destination that exists),
3 a server owns the workspace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from notebench.cli import WORKSPACE_NAME

from .errors import EXIT_INVALID, EXIT_PROBLEMS, MaintenanceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notebench", description="Back up, restore and check a notebench workspace's "
        "store (docs/backup.md).")
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--root-dir", metavar="DIR",
                       help="the server's root folder; the workspace is DIR/notebench "
                            "(default: the current folder)")
    where.add_argument("--workspace", metavar="DIR",
                       help="the workspace folder itself (c.NotebenchApp.workspace_dir)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    backup = sub.add_parser(
        "backup", parents=[common], help="copy the store into a new folder (online)",
        description="Copy the workspace's store into the new folder DEST with a manifest: "
        "a consistent copy, safe while a server writes to it.")
    backup.add_argument("dest", metavar="DEST", help="a new (or empty) folder")
    restore = sub.add_parser(
        "restore", parents=[common], help="replace the store by a backup (no server running)",
        description="Replace the workspace's store by the backup SRC, after checking it. "
        "Refused while a server owns the workspace; the previous store is kept in "
        ".notebench/pre-restore-<time>/.")
    restore.add_argument("src", metavar="SRC", help="a backup folder (from notebench backup)")
    doctor = sub.add_parser(
        "doctor", parents=[common], help="check the workspace's files against its store",
        description="Report jobs whose directory is missing, job directories with no row, "
        "assets whose file is missing and files not registered; exit 1 when there are any.")
    doctor.add_argument("--rebuild", action="store_true",
                        help="first re-register jobs and files from disk (no server may run "
                             "on the workspace)")
    return parser


def workspace_of(args: argparse.Namespace) -> Path:
    if args.workspace:
        return Path(args.workspace).expanduser().resolve()
    return Path(args.root_dir or ".").expanduser().resolve() / WORKSPACE_NAME


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    workspace = workspace_of(args)
    try:
        if args.command == "backup":
            return _backup(args, workspace)
        if args.command == "restore":
            return _restore(args, workspace)
        return _doctor(args, workspace)
    except MaintenanceError as exc:
        print(f"notebench {args.command}: {exc.message}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:  # a folder that cannot be written, a full disk...
        print(f"notebench {args.command}: {exc}", file=sys.stderr)
        return EXIT_INVALID


def _backup(args: argparse.Namespace, workspace: Path) -> int:
    from ..workspace import Workspace
    from .backup import take_backup

    manifest = take_backup(Workspace(workspace).store_path, Path(args.dest),
                           workspace=workspace)
    if args.json:
        _print_json(manifest)
    else:
        database = manifest["database"]
        counted = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in manifest["counts"].items()
                            if v is not None)
        print(f"backup written to {Path(args.dest).resolve()}: {database['size']} bytes "
              f"(sha256 {database['sha256'][:16]}…) in {manifest['seconds']:.2f} s; "
              f"{counted}")
    return 0


def _restore(args: argparse.Namespace, workspace: Path) -> int:
    from .restore import restore_backup

    done = restore_backup(Path(args.src), workspace)
    if args.json:
        _print_json(done)
    else:
        print(f"restored {done['backup']} (taken {done['backup_created']}) into "
              f"{done['restored']}")
        if done["previous"]:
            print(f"the previous store is kept in {done['previous']}")
        if done["job_dirs_moved"]:
            print(f"{done['job_dirs_moved']} job directories now point into this workspace")
    return 0


def _doctor(args: argparse.Namespace, workspace: Path) -> int:
    from .doctor import examine
    from .report import render

    rebuilt = None
    if args.rebuild:
        from .ownership import held_workspace
        from .rebuild import rebuild

        with held_workspace(workspace, "rebuild") as held:
            rebuilt = asyncio.run(rebuild(held))
    report = examine(workspace)
    report.rebuilt = rebuilt
    if args.json:
        _print_json(report.as_json())
    else:
        sys.stdout.write(render(report))
    return 0 if report.ok else EXIT_PROBLEMS


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


if __name__ == "__main__":
    raise SystemExit(main())
