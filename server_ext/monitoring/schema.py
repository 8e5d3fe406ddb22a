"""The monitoring capability's forward-only schema migrations (never edit a released step)."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: downsampled history (two widths of buckets), alert episodes, silences
    """
    CREATE TABLE monitoring_series (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE monitoring_history (
        series INTEGER NOT NULL,
        width REAL NOT NULL,
        t REAL NOT NULL,
        n INTEGER NOT NULL,
        min REAL,
        max REAL,
        mean REAL,
        last REAL,
        PRIMARY KEY (series, width, t)
    ) WITHOUT ROWID;
    CREATE INDEX monitoring_history_by_t ON monitoring_history (t);
    CREATE TABLE monitoring_alerts (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        rule TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        value REAL,
        threshold REAL,
        pending_at REAL NOT NULL,
        fired_at REAL,
        resolved_at REAL,
        last_true_at REAL,
        updated REAL NOT NULL,
        acked_at REAL,
        acked_by TEXT
    );
    CREATE INDEX monitoring_alerts_by_state ON monitoring_alerts (state, id);
    CREATE INDEX monitoring_alerts_by_fingerprint ON monitoring_alerts (fingerprint, id);
    CREATE TABLE monitoring_silences (
        fingerprint TEXT PRIMARY KEY,
        until REAL NOT NULL,
        created REAL NOT NULL,
        created_by TEXT,
        comment TEXT NOT NULL DEFAULT ''
    );
    """,
]
