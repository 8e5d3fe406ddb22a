"""``examine``: the workspace's files against its store, read-only (safe beside a server).

Problems found: no store (or one that cannot be read); jobs whose directory is missing (a
trashed job's is looked for in the jobs' trash); job directories with no row; assets
whose file is missing; files under the asset roots that are not registered. Files in the
jobs folder are the jobs' (their directories are checked as jobs), and names the registry
never picks up from disk (hidden ones, its own folders, links) are not counted. The roots
are the default ones (``<workspace>/<category>``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from notebench.jobprotocol import STATES, is_job_id

from ..assets import schema as asset_schema
from ..assets.paths import RESERVED, check_name
from ..assets.roots import GIB, Category, build_categories
from ..errors import ApiError
from ..jobs import store as jobstore
from ..jobs.jobdir import JOBS_FOLDER
from ..jobs.tidy import trash_slot
from ..workspace import Workspace
from .dbfacts import has_table, read_only, schema_versions

#: problem kind -> how the report names it
KINDS = {
    "store_missing": "no store",
    "store_unreadable": "store cannot be read",
    "job_dir_missing": "job directory missing",
    "job_dir_unregistered": "job directory with no row",
    "asset_file_missing": "asset file missing",
    "file_unregistered": "file not registered",
}


@dataclass
class Problem:
    """One thing wrong: its kind (``KINDS``), what it is about, and more in words."""

    kind: str
    subject: str
    detail: str = ""


@dataclass
class Report:
    """What ``examine`` found (and, after ``--rebuild``, what was rebuilt)."""

    workspace: str
    store: str
    schema: dict[str, int] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    rebuilt: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def workspace_layout(path: Path) -> tuple[Workspace, Path, dict[str, Category]]:
    """The workspace, its jobs folder and its default asset roots."""
    workspace = Workspace(Path(path))
    categories = build_categories(workspace.path, paths={}, types={}, limits={},
                                  default_limit=GIB)
    return workspace, workspace.root("artifacts") / JOBS_FOLDER, categories


def examine(path: Path) -> Report:
    """Check the workspace at ``path`` against its store (see the module docstring)."""
    workspace, runs_dir, categories = workspace_layout(path)
    report = Report(str(workspace.path), str(workspace.store_path))
    jobs: list[dict[str, Any]] = []
    assets: list[Any] = []
    if not workspace.store_path.is_file():
        report.problems.append(Problem("store_missing", str(workspace.store_path),
                                       "no state.sqlite: every job and asset is unknown"))
    else:
        try:
            with read_only(workspace.store_path) as conn:
                conn.row_factory = sqlite3.Row
                report.schema = schema_versions(conn)
                if has_table(conn, "jobs"):
                    jobs = jobstore.jobs_in_states(conn, STATES)
                if has_table(conn, "assets"):
                    assets = conn.execute(asset_schema.SELECT
                                          + " WHERE state != 'trashed'").fetchall()
        except sqlite3.DatabaseError as exc:
            report.problems.append(Problem("store_unreadable", str(workspace.store_path),
                                           str(exc)))
    report.problems += _job_problems(jobs, runs_dir, workspace.path)
    found, files = _asset_problems(assets, categories, runs_dir)
    report.problems += found
    report.checked = {"jobs": len(jobs),
                      "job_directories": sum(1 for _ in job_directories(runs_dir)),
                      "assets": len(assets), "files": files}
    return report


def job_directories(runs_dir: Path) -> Iterator[Path]:
    """The job and run directories in the jobs folder, by name."""
    try:
        entries = sorted(os.scandir(runs_dir), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if is_job_id(entry.name) and entry.is_dir(follow_symlinks=False):
            yield Path(entry.path)


def _job_problems(jobs: list[dict[str, Any]], runs_dir: Path, root: Path) -> list[Problem]:
    problems = []
    known = {job["id"] for job in jobs}
    for job in jobs:
        if job["trashed_at"] is not None:
            where = trash_slot(runs_dir, job["id"])
            missing = not where.is_dir()
            detail = f"in the jobs' trash: {_shown(where, root)} is gone"
        else:
            where = Path(job["job_dir"])
            missing = not where.is_dir()
            detail = f"{_shown(where, root)} is gone"
        if missing:
            problems.append(Problem("job_dir_missing", job["id"], f"{job['state']}: {detail}"))
    for job_dir in job_directories(runs_dir):
        if job_dir.name not in known:
            problems.append(Problem("job_dir_unregistered", job_dir.name,
                                    _shown(job_dir, root)))
    return problems


def _asset_problems(rows: list[Any], categories: dict[str, Category],
                    runs_dir: Path) -> tuple[list[Problem], int]:
    """The assets' problems, and how many files the roots hold."""
    problems = []
    files = 0
    registered: dict[str, set[str]] = {name: set() for name in categories}
    folders: dict[str, set[str]] = {name: set() for name in categories}
    for row in rows:
        category = categories.get(row["category"])
        if category is None:
            continue  # a root configured elsewhere: not checked
        registered[category.name].add(row["rel_path"])
        if row["kind"] == "dir":
            folders[category.name].add(row["rel_path"])
        if not os.path.lexists(category.path / row["rel_path"]):
            problems.append(Problem("asset_file_missing", row["id"],
                                    f"{category.name}/{row['rel_path']} ({row['state']})"))
    for name, category in categories.items():
        skip = _skipped(category, runs_dir) | folders[name]
        for rel in asset_files(category.path, skip=skip):
            files += 1
            if rel not in registered[name]:
                problems.append(Problem("file_unregistered", f"{name}/{rel}"))
    return problems, files


def _skipped(category: Category, runs_dir: Path) -> set[str]:
    """Folders of a root not walked: the jobs folder (the jobs', not the registry's)."""
    with contextlib.suppress(ValueError):
        return {runs_dir.relative_to(category.path).as_posix()}
    return set()


def asset_files(root: Path, *, skip: Collection[str] = ()) -> Iterator[str]:
    """Relative paths of the regular files under ``root`` the registry would pick up from
    disk: no hidden or reserved name, no link, no name the API cannot serve; folders in
    ``skip`` are not entered."""
    todo = [""]
    while todo:
        folder = todo.pop()
        try:
            entries = list(os.scandir(root / folder if folder else root))
        except OSError:
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            if name in RESERVED or name.startswith("."):
                continue
            try:
                check_name(name)
                mode = entry.stat(follow_symlinks=False).st_mode
            except (ApiError, OSError):
                continue
            rel = f"{folder}/{name}" if folder else name
            if stat.S_ISDIR(mode) and rel not in skip:
                todo.append(rel)
            elif stat.S_ISREG(mode):
                yield rel


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to the workspace where it is inside it."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)
