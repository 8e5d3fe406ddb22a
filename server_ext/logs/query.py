"""The query of the one log store (table ``logs``), shared by every log view.

``lifecycle/jobs/{id}/logs`` is this query filtered by job; the monitoring capability
serves the same function unfiltered (``monitoring/logs``). Carriage-return progress lines
(tqdm) are collapsed to their last state, both when job output is stored and here; known
secret values are scrubbed from what is returned.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..bounds import MAX_SAFE_INT, MAX_TIME, parse_number
from ..errors import bad_request
from ..scrubbing import scrubber

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "warn": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1000


def collapse_cr(text: str) -> str:
    """Each line's last carriage-return state: ``"10%\\r50%\\r100%"`` -> ``"100%"``."""
    if "\r" not in text:
        return text
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            parts = [p for p in line.split("\r") if p]
            line = parts[-1] if parts else ""
        lines.append(line)
    return "\n".join(lines)


@dataclass(frozen=True)
class LogQuery:
    """Filters of a log query; every field is optional."""

    job_id: str | None = None
    level: str | None = None  # the lowest level returned
    source: str | None = None  # a source or a dotted prefix of sources
    since: float | None = None  # unix time, exclusive
    until: float | None = None  # unix time, inclusive
    q: str | None = None  # substring of the message, case-insensitive
    after_id: int | None = None  # records with a larger id (paging, live follow)
    limit: int = DEFAULT_LIMIT
    tail: int | None = None  # the last N matching records instead of the first
    without_jobs: bool = False  # leave out the records of jobs (for readers of no job)


def query_logs(conn: sqlite3.Connection, query: LogQuery) -> list[dict[str, Any]]:
    """Matching records, oldest first (``tail``: the newest N, still oldest first)."""
    where: list[str] = []
    params: list[Any] = []
    if query.job_id is not None:
        where.append("job_id = ?")
        params.append(query.job_id)
    if query.without_jobs:
        where.append("job_id IS NULL")
    if query.level is not None:
        where.append("levelno >= ?")
        params.append(LEVELS[query.level.lower()])
    if query.source is not None:
        where.append("(source = ? OR substr(source, 1, ?) = ?)")
        params += [query.source, len(query.source) + 1, query.source + "."]
    if query.since is not None:
        where.append("ts > ?")
        params.append(query.since)
    if query.until is not None:
        where.append("ts <= ?")
        params.append(query.until)
    if query.after_id is not None:
        where.append("id > ?")
        params.append(query.after_id)
    if query.q:
        where.append("instr(lower(message), lower(?)) > 0")
        params.append(query.q)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    columns = "id, ts, level, source, message, job_id"
    if query.tail is not None:
        sql = f"SELECT {columns} FROM logs{clause} ORDER BY id DESC LIMIT ?"
        rows = conn.execute(sql, (*params, query.tail)).fetchall()[::-1]
    else:
        sql = f"SELECT {columns} FROM logs{clause} ORDER BY id LIMIT ?"
        rows = conn.execute(sql, (*params, query.limit)).fetchall()
    return [
        {"id": r[0], "ts": r[1], "level": r[2], "source": r[3],
         "message": scrubber.scrub_text(collapse_cr(r[4])), "job_id": r[5]}
        for r in rows
    ]


async def run_query(store: Any, query: LogQuery) -> list[dict[str, Any]]:
    """``query_logs`` on a reader thread of the store."""
    return await store.read(lambda conn: query_logs(conn, query))


def query_from_args(get: Callable[[str], str | None] | Mapping[str, str], *,
                    job_id: str | None = None) -> LogQuery:
    """A ``LogQuery`` from request arguments (400 on bad values).

    Arguments: ``level``, ``source``, ``job``, ``since``, ``until``, ``q``, ``after_id``,
    ``limit``, ``tail``. ``job_id`` (a route's own job) overrides ``job``.
    """
    arg = get.get if isinstance(get, Mapping) else get

    def number(name: str, kind: type, low: float, high: float) -> Any:
        return parse_number(name, arg(name), kind, low=low, high=high)

    level = arg("level") or None
    if level is not None and level.lower() not in LEVELS:
        raise bad_request(f"level must be one of {', '.join(sorted(LEVELS))}",
                          "invalid_parameter")
    limit = number("limit", int, 1, MAX_LIMIT)
    tail = number("tail", int, 1, MAX_LIMIT)
    fields = {
        "job_id": job_id if job_id is not None else (arg("job") or None),
        "level": level,
        "source": arg("source") or None,
        "since": number("since", float, -MAX_TIME, MAX_TIME),
        "until": number("until", float, -MAX_TIME, MAX_TIME),
        "q": arg("q") or None,
        "after_id": number("after_id", int, 0, MAX_SAFE_INT),
        "limit": limit or DEFAULT_LIMIT,
        "tail": tail,
    }
    return LogQuery(**fields)


def describe(query: LogQuery) -> dict[str, Any]:
    """The filters as JSON (echoed in responses)."""
    return {k: v for k, v in asdict(query).items() if v is not None and v is not False}
