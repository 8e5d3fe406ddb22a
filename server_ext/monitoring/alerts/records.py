"""Alert episodes and silences in the store (``monitoring_alerts``, ``monitoring_silences``)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from .engine import FIRING, PENDING, Alert

_COLUMNS = ("id, fingerprint, rule, labels, severity, state, message, value, threshold, "
            "pending_at, fired_at, resolved_at, last_true_at, updated, acked_at, acked_by")


def save(conn: sqlite3.Connection, alert: Alert) -> None:
    conn.execute(
        f"INSERT OR REPLACE INTO monitoring_alerts ({_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (alert.episode, alert.id, alert.rule, orjson.dumps(alert.labels).decode(),
         alert.severity, alert.state, alert.message, alert.value, alert.threshold,
         alert.pending_at, alert.fired_at, alert.resolved_at, alert.last_true_at,
         alert.updated, alert.acked_at, alert.acked_by))


def delete(conn: sqlite3.Connection, episode: int) -> None:
    conn.execute("DELETE FROM monitoring_alerts WHERE id = ?", (episode,))


def _alert(row: sqlite3.Row) -> Alert:
    return Alert(row["fingerprint"], row["id"], row["rule"], orjson.loads(row["labels"]),
                 row["severity"], row["state"], row["message"], row["value"],
                 row["threshold"], row["pending_at"], row["fired_at"], row["resolved_at"],
                 row["last_true_at"], row["updated"], row["acked_at"], row["acked_by"])


def load_active(conn: sqlite3.Connection) -> tuple[list[Alert], int]:
    """Pending and firing alerts, and the next free episode number."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM monitoring_alerts WHERE state IN (?, ?) "
                        "ORDER BY id", (PENDING, FIRING)).fetchall()
    top = conn.execute("SELECT MAX(id) FROM monitoring_alerts").fetchone()[0] or 0
    return [_alert(r) for r in rows], top + 1


def recent(conn: sqlite3.Connection, *, limit: int, since: float | None,
           states: list[str] | None) -> list[Alert]:
    where, params = [], []
    if since is not None:
        where.append("updated > ?")
        params.append(since)
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        params += states
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM monitoring_alerts{clause} "
                        "ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
    return [_alert(r) for r in rows]


def last_of(conn: sqlite3.Connection, fingerprint: str) -> Alert | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM monitoring_alerts WHERE fingerprint = ? "
                       "ORDER BY id DESC LIMIT 1", (fingerprint,)).fetchone()
    return None if row is None else _alert(row)


def prune(conn: sqlite3.Connection, before: float) -> None:
    conn.execute("DELETE FROM monitoring_alerts WHERE state NOT IN (?, ?) AND updated < ?",
                 (PENDING, FIRING, before))
    conn.execute("DELETE FROM monitoring_silences WHERE until < ?", (before,))


def save_silence(conn: sqlite3.Connection, silence: dict[str, Any]) -> None:
    conn.execute("INSERT OR REPLACE INTO monitoring_silences (fingerprint, until, created, "
                 "created_by, comment) VALUES (?, ?, ?, ?, ?)",
                 (silence["id"], silence["until"], silence["created"], silence["by"],
                  silence["comment"]))


def delete_silence(conn: sqlite3.Connection, fingerprint: str) -> None:
    conn.execute("DELETE FROM monitoring_silences WHERE fingerprint = ?", (fingerprint,))


def load_silences(conn: sqlite3.Connection, now: float) -> dict[str, dict[str, Any]]:
    rows = conn.execute("SELECT fingerprint, until, created, created_by, comment FROM "
                        "monitoring_silences WHERE until > ?", (now,)).fetchall()
    return {r[0]: {"id": r[0], "until": r[1], "created": r[2], "by": r[3], "comment": r[4]}
            for r in rows}
