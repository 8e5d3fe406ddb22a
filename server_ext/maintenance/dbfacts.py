"""Facts about a store file: its schema versions and the code's, counts, integrity, digest.

The core's schema version is the file's ``PRAGMA user_version``; each capability's is the
``schema:<name>`` row of the ``meta`` table (``store.sqlite``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..capability import load_capabilities
from ..jobs.ingest_paths import file_sha256
from ..store.migrations import SCHEMA_VERSION

CORE = "core"
_SCHEMA_PREFIX = "schema:"
#: what a manifest counts -> the table holding it
COUNTED = {"jobs": "jobs", "assets": "assets", "metric_points": "job_metrics"}


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the database at ``path`` (closed after the block)."""
    if not path.is_file():
        raise FileNotFoundError(f"no database at {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10,
                           isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        yield conn
    finally:
        conn.close()


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def schema_versions(conn: sqlite3.Connection) -> dict[str, int]:
    """``{"core": n, "<capability>": n, ...}`` as the file records them."""
    versions = {CORE: int(conn.execute("PRAGMA user_version").fetchone()[0])}
    if has_table(conn, "meta"):
        for key, value in conn.execute("SELECT key, value FROM meta WHERE key LIKE ?",
                                       (_SCHEMA_PREFIX + "%",)):
            with contextlib.suppress(TypeError, ValueError):
                versions[key[len(_SCHEMA_PREFIX):]] = int(value)
    return versions


def code_schema_versions() -> dict[str, int]:
    """The versions this notebench's migrations reach (core and each capability)."""
    versions = {CORE: SCHEMA_VERSION}
    versions.update({c.name: len(c.schema) for c in load_capabilities() if c.schema})
    return versions


def newer_than_code(versions: dict[str, int]) -> list[str]:
    """``"<name> <found> > <code>"`` for each schema newer than this notebench's."""
    code = code_schema_versions()
    return [f"{name} {found} > {code[name]}" for name, found in sorted(versions.items())
            if name in code and found > code[name]]


def counts(conn: sqlite3.Connection) -> dict[str, int | None]:
    """Rows of ``COUNTED`` (None where the table does not exist)."""
    return {what: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            if has_table(conn, table) else None for what, table in COUNTED.items()}


def integrity_problems(conn: sqlite3.Connection, *, quick: bool = False) -> list[str]:
    """What ``PRAGMA integrity_check`` (or ``quick_check``) says is wrong; empty when ok."""
    pragma = "quick_check" if quick else "integrity_check"
    lines = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}")]
    return [] if lines == ["ok"] else lines


def sha256_of(path: Path) -> tuple[str, int]:
    """(sha256 hex digest, size in bytes) of a file."""
    return file_sha256(path), path.stat().st_size
