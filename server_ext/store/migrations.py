"""Forward-only schema migrations of the notebench store.

Each entry upgrades the schema by one version; ``PRAGMA user_version`` records the
version reached. Never edit a released step: append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: event log, log store, key/value metadata, hardware facts
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        type TEXT NOT NULL,
        ts REAL NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX events_by_topic ON events (topic, id);
    CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        level TEXT NOT NULL,
        levelno INTEGER NOT NULL,
        source TEXT NOT NULL,
        message TEXT NOT NULL,
        job_id TEXT
    );
    CREATE INDEX logs_by_ts ON logs (ts);
    CREATE INDEX logs_by_job ON logs (job_id, id) WHERE job_id IS NOT NULL;
    CREATE TABLE kv_cache (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE hardware_benchmarks (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        state TEXT NOT NULL,
        result BLOB,
        error TEXT
    );
    CREATE INDEX hardware_benchmarks_by_fp ON hardware_benchmarks (fingerprint, id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
