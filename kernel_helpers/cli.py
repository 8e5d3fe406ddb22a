"""The ``notebench`` command: the hardware profile, JupyterLab, the dashboard, jobs.

``notebench profile`` prints what ``notebench.hardware`` sees (a table, or JSON);
``notebench serve`` runs ``jupyter lab`` opened on the notebench workspace;
``notebench dashboard`` runs a Jupyter server with Voila opened on the dashboard;
``notebench jobs ...`` lists, submits, follows and compares jobs (``cli_jobs``);
``notebench export|import ...`` moves runs to and from TensorBoard and MLflow (``interop.cli``);
``notebench backup|restore|doctor ...`` run ``python -m notebench.server.maintenance`` (the
workspace's store: docs/backup.md) in a child process.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["build_dashboard_command", "build_parser", "build_serve_command", "dashboard_url_path",
           "main", "parse_args", "render_profile", "run_maintenance", "write_json"]

WORKSPACE_NAME = "notebench"  # the workspace folder, under the server's root dir
#: subcommands run by ``python -m notebench.server.maintenance`` (the server package: never
#: imported here), with their help
MAINTENANCE = {
    "backup": "copy the workspace's store into a new folder, safe while a server runs",
    "restore": "replace the workspace's store by a backup (refused while a server runs)",
    "doctor": "check the workspace's files against its store; --rebuild re-registers them",
}
NO_TORCH = {"installed": None, "skipped": True}


# ----------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    from notebench import __version__

    parser = argparse.ArgumentParser(
        prog="notebench",
        description="notebench: a training workbench inside Jupyter.",
    )
    parser.add_argument("--version", action="version", version=f"notebench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    profile = sub.add_parser(
        "profile",
        help="show this machine's hardware profile and recommended training settings",
        description="Show CPU, memory, GPUs, storage and torch, and recommended settings.",
    )
    profile.add_argument("--json", action="store_true", help="print JSON instead of a table")
    profile.add_argument(
        "--no-torch", action="store_true", help="skip the torch probe (a child process)"
    )
    profile.add_argument(
        "--path", metavar="DIR", help="folder whose storage to report (default: current)"
    )

    serve = sub.add_parser(
        "serve",
        help="start JupyterLab opened on the notebench workspace",
        description="Run `jupyter lab` on ROOT_DIR, opened on its notebench/ workspace. "
        "Other arguments are passed to jupyter lab.",
        allow_abbrev=False,  # unknown options belong to jupyter lab, never abbreviations
    )
    serve.add_argument("--port", type=int, help="port to listen on")
    serve.add_argument("--no-browser", action="store_true", help="do not open a browser")
    serve.add_argument(
        "--root-dir", metavar="DIR", help="the server's root folder (default: current)"
    )
    dashboard = sub.add_parser(
        "dashboard",
        help="start a Jupyter server with notebench and Voila, opened on the dashboard",
        description="Run `jupyter server` on ROOT_DIR with the notebench and Voila extensions "
        "and open the dashboard (/voila/render/notebench/dashboards/dashboard.ipynb). "
        "Other arguments are passed to jupyter server.",
        allow_abbrev=False,
    )
    dashboard.add_argument("--port", type=int, help="port to listen on")
    dashboard.add_argument("--no-browser", action="store_true", help="do not open a browser")
    dashboard.add_argument(
        "--root-dir", metavar="DIR", help="the server's root folder (default: current)"
    )
    dashboard.add_argument(
        "--app", default="dashboard", choices=("dashboard", "jobs", "monitoring", "assets"),
        help="which dashboard to open (default: dashboard)",
    )
    from .cli_jobs import add_jobs_parser
    from .interop.cli import add_export_parser, add_import_parser

    add_jobs_parser(sub)
    add_export_parser(sub)
    add_import_parser(sub)
    for name, text in MAINTENANCE.items():
        # their arguments (and --help) are the maintenance module's, passed on as given
        sub.add_parser(name, help=f"{text} (python -m notebench.server.maintenance {name})",
                       add_help=False)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; unknown arguments of ``serve`` land in ``args.extra``."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("serve", "dashboard", *MAINTENANCE):
        parser.error("unrecognized arguments: " + " ".join(extra))
    if extra[:1] == ["--"]:
        extra = extra[1:]
    args.extra = extra
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "profile":
        return cmd_profile(args)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "dashboard":
        return cmd_serve(args, build_dashboard_command(args))
    if args.command == "jobs":
        from .cli_jobs import run_jobs

        return run_jobs(args)
    if args.command in ("export", "import"):
        from .interop.cli import run_interop

        return run_interop(args)
    if args.command in MAINTENANCE:
        return run_maintenance(args.command, args.extra)
    build_parser().print_help(sys.stderr)
    return 2


def run_maintenance(command: str, arguments: Sequence[str]) -> int:
    """``notebench backup|restore|doctor``: ``python -m notebench.server.maintenance`` in a
    child process (this package never imports the server's); its exit status."""
    import subprocess

    return subprocess.call([sys.executable, "-m", "notebench.server.maintenance", command,
                            *arguments])


def write_json(payload: Any, *, indent: bool = True) -> None:
    """``payload`` as JSON on stdout (numpy values, non-string keys; others as text)."""
    import orjson

    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    if indent:
        options |= orjson.OPT_INDENT_2
    sys.stdout.write(orjson.dumps(payload, option=options, default=str).decode() + "\n")


# ------------------------------------------------------------------------- profile


def cmd_profile(args: argparse.Namespace) -> int:
    try:
        from notebench.hardware import hardware_profile, recommended_settings
    except ImportError as exc:
        print(f"notebench: the hardware module is unavailable: {exc}", file=sys.stderr)
        return 1
    kwargs: dict[str, Any] = {}
    if args.no_torch:
        kwargs["torch_info"] = dict(NO_TORCH)
    if args.path:
        kwargs["workspace"] = args.path
    profile = hardware_profile(**kwargs)
    settings = recommended_settings(profile)
    if args.json:
        write_json({"profile": profile, "recommended_settings": settings})
    else:
        sys.stdout.write(render_profile(profile, settings))
    return 0


_UNITS = ("_bytes", "_mhz", "_percent", "_watts", "_c")
_WORDS = {
    w.lower(): w
    for w in ("CPU", "GPU", "GPUs", "CUDA", "cuDNN", "HIP", "MPS", "UUID", "PCI", "MIG", "SM", "FS")
}
_SECTION_KEYS = {
    "cpu": [
        "model",
        "architecture",
        "physical_cores",
        "logical_cores",
        "affinity_cores",
        "cgroup_quota_cores",
        "effective_cores",
        "frequency_mhz",
    ],
    "memory": [
        "total_bytes",
        "available_bytes",
        "cgroup_limit_bytes",
        "effective_total_bytes",
        "effective_available_bytes",
    ],
    "gpu": ["name", "uuid", "memory_total_bytes", "memory_used_bytes", "compute_capability"],
    "storage": ["path", "total_bytes", "free_bytes", "used_bytes", "fs_type", "fstype"],
    "torch": ["installed", "version", "cuda_available", "cuda_version", "device_count"],
}


def human_bytes(value: float) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover


def _label(key: str) -> str:
    for suffix in _UNITS:
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
            break
    words = [_WORDS.get(w, w) for w in key.split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def format_value(key: str, value: Any) -> str:
    """A readable value; the unit comes from the key's suffix (``_bytes``, ``_mhz``...)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if key.endswith("_bytes"):
            return human_bytes(value)
        if key.endswith("_mhz"):
            return f"{value:.0f} MHz"
        if key.endswith("_percent"):
            return f"{value:g}%"
        if key.endswith("_watts"):
            return f"{value:.0f} W"
        if key.endswith("_c"):
            return f"{value:g} °C"
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    if isinstance(value, Mapping):
        if value and all(isinstance(v, bool) for v in value.values()):
            return ", ".join(str(k) for k, v in value.items() if v) or "none"
        unit = next((s for s in _UNITS if key.endswith(s)), "")
        parts = [f"{k} {format_value(str(k) + unit, v)}" for k, v in value.items()]
        return ", ".join(parts) or "-"
    if isinstance(value, (list, tuple)):
        items = [
            str(v.get("name") or v.get("uuid") or v) if isinstance(v, Mapping) else str(v)
            for v in value
        ]
        return ", ".join(items) or "none"
    return str(value)


def _ordered(data: Mapping[str, Any], first: Iterable[str]) -> list[str]:
    keys = [k for k in first if k in data]
    return keys + [k for k in data if k not in keys]


def _rows(data: Mapping[str, Any], first: Iterable[str] = (), indent: int = 2) -> list[str]:
    pad = " " * indent
    return [
        f"{pad}{_label(str(k)):<24} {format_value(str(k), data[k])}" for k in _ordered(data, first)
    ]


def _as_dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def render_profile(profile: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> str:
    """The profile as a plain-text table; tolerant of missing or extra keys."""
    lines: list[str] = ["CPU", *_rows(_as_dict(profile.get("cpu")), _SECTION_KEYS["cpu"])]
    lines += ["", "Memory", *_rows(_as_dict(profile.get("memory")), _SECTION_KEYS["memory"])]

    lines += ["", "GPUs"]
    gpus = [g for g in profile.get("gpus") or [] if isinstance(g, Mapping)]
    status = _as_dict(profile.get("gpu_status"))
    if not gpus:
        lines.append(f"  none: {status.get('reason') or 'no GPU found'}")
    for i, gpu in enumerate(gpus):
        index = gpu.get("index", i)
        lines.append(f"  GPU {index}: {gpu.get('name') or 'unknown'}")
        details = {k: v for k, v in gpu.items() if k not in ("index", "name")}
        lines += _rows(details, _SECTION_KEYS["gpu"], indent=4)
    lines += _rows({k: v for k, v in status.items() if k not in ("available", "reason")})

    lines += ["", "Storage"]
    storage = profile.get("storage")
    volumes = storage if isinstance(storage, list) else [storage]
    for volume in volumes:
        lines += _rows(_as_dict(volume), _SECTION_KEYS["storage"])

    lines += ["", "Torch"]
    torch_info = _as_dict(profile.get("torch"))
    if torch_info.get("skipped"):
        lines.append("  not probed (--no-torch)")
    else:
        devices = torch_info.get("devices") or []
        rest = {k: v for k, v in torch_info.items() if k != "devices"}
        lines += _rows(rest, _SECTION_KEYS["torch"])
        for i, device in enumerate(d for d in devices if isinstance(d, Mapping)):
            lines.append(f"  cuda:{device.get('index', i)}: {device.get('name') or 'unknown'}")
            details = {k: v for k, v in device.items() if k not in ("index", "name")}
            lines += _rows(details, indent=4)

    known = {"cpu", "memory", "gpus", "gpu_status", "storage", "torch"}
    for key, value in profile.items():
        if key not in known and isinstance(value, Mapping):
            lines += ["", _label(key).upper() if len(key) <= 3 else _label(key), *_rows(value)]

    lines += ["", "Recommended settings"]
    if not settings:
        lines.append("  none")
    for name, setting in (settings or {}).items():
        item = _as_dict(setting)
        value = format_value(name, item.get("value") if item else setting)
        reason = item.get("reason") or ""
        lines.append(f"  {name:<24} {value:<12} {reason}".rstrip())
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- serve


def build_serve_command(args: argparse.Namespace) -> list[str]:
    """The ``jupyter lab`` command line for ``notebench serve``.

    Running as root is the user's own decision: ``--allow-root`` is passed only when given.
    """
    extra = list(getattr(args, "extra", None) or [])
    root_dir = os.path.abspath(getattr(args, "root_dir", None) or os.getcwd())
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root_dir}"]
    if getattr(args, "port", None) is not None:
        cmd.append(f"--port={args.port}")
    if getattr(args, "no_browser", False):
        cmd.append("--no-browser")
    # LabApp sets ServerApp.default_url itself (to /lab): a ServerApp flag is overridden
    cmd.append(f"--LabApp.default_url=/lab/tree/{WORKSPACE_NAME}")
    return cmd + extra


def dashboard_url_path(app: str = "dashboard") -> str:
    """The Voila page of a dashboard, under the server's base URL."""
    return f"voila/render/{WORKSPACE_NAME}/dashboards/{app}.ipynb"


def build_dashboard_command(args: argparse.Namespace) -> list[str]:
    """The ``jupyter server`` command line for ``notebench dashboard``.

    As with ``serve``, ``--allow-root`` is passed only when the user gives it.
    """
    extra = list(getattr(args, "extra", None) or [])
    root_dir = os.path.abspath(getattr(args, "root_dir", None) or os.getcwd())
    app = getattr(args, "app", None) or "dashboard"
    cmd = [sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={root_dir}",
           "--ServerApp.jpserver_extensions="
           "{'notebench.server': True, 'voila.server_extension': True}",
           f"--ServerApp.default_url=/{dashboard_url_path(app)}"]
    if getattr(args, "port", None) is not None:
        cmd.append(f"--port={args.port}")
    if getattr(args, "no_browser", False):
        cmd.append("--no-browser")
    return cmd + extra


def cmd_serve(args: argparse.Namespace, cmd: list[str] | None = None) -> int:
    cmd = cmd or build_serve_command(args)
    print("notebench: " + " ".join(cmd), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(cmd[0], cmd)  # Ctrl-C and signals go straight to jupyter
    import subprocess

    return subprocess.call(cmd)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
