"""Write a job's ``metrics.csv`` from the store, in a process of its own.

    python -m notebench.server.jobs.export <state.sqlite> <job id> <job dir>

The server runs this for jobs with many points (``finalize.EXPORT_IN_PROCESS_POINTS``):
formatting a million rows is seconds of Python, which in a thread of the server would
compete with its event loop for the GIL. The store is opened read-only (WAL: the server
keeps writing meanwhile). Exit status 0 when the file was written or the kernel had
written one, 1 on an error (its message on stderr).
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from . import store as jobstore
from .artifacts import write_export


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    db, job_id, job_dir = argv
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            write_export(Path(job_dir), jobstore.metric_points(conn, job_id))
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        print(f"exporting the metrics of job {job_id} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
