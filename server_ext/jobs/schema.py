"""The jobs capability's forward-only schema migrations (never edit a released step)."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: jobs, their metric points, checkpoints and the tail offsets of their files
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        template TEXT,
        notebook_path TEXT,
        notebook_hash TEXT,
        kernel_name TEXT,
        job_dir TEXT NOT NULL,
        parameters TEXT NOT NULL DEFAULT '{}',
        resolved TEXT NOT NULL DEFAULT '{}',
        auto TEXT NOT NULL DEFAULT '{}',
        resources TEXT NOT NULL DEFAULT '{}',
        priority INTEGER NOT NULL DEFAULT 0,
        tags TEXT NOT NULL DEFAULT '[]',
        timeout REAL,
        parent_id TEXT,
        resume_from TEXT,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        updated REAL NOT NULL,
        active_seconds REAL NOT NULL DEFAULT 0,
        segment_start REAL,
        boot_id TEXT,
        last_metric_active REAL,
        progress TEXT NOT NULL DEFAULT '{}',
        latest_metrics TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        processes TEXT NOT NULL DEFAULT '{}',
        stop_requested REAL,
        artifact_count INTEGER NOT NULL DEFAULT 0,
        model TEXT,
        final_metrics TEXT,
        exit_code INTEGER
    );
    CREATE INDEX jobs_by_state ON jobs (state, priority, created);
    CREATE INDEX jobs_by_created ON jobs (created);
    CREATE INDEX jobs_by_template ON jobs (template, state);
    CREATE TABLE job_metrics (
        job_id TEXT NOT NULL,
        name TEXT NOT NULL,
        idx INTEGER NOT NULL,
        step INTEGER,
        t REAL NOT NULL,
        value REAL,
        special TEXT,
        PRIMARY KEY (job_id, name, idx)
    ) WITHOUT ROWID;
    CREATE TABLE job_checkpoints (
        job_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        t REAL NOT NULL,
        path TEXT NOT NULL,
        epoch INTEGER,
        step INTEGER,
        metrics TEXT NOT NULL DEFAULT '{}',
        best INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, idx)
    ) WITHOUT ROWID;
    CREATE TABLE job_offsets (
        job_id TEXT NOT NULL,
        file TEXT NOT NULL,
        offset INTEGER NOT NULL,
        PRIMARY KEY (job_id, file)
    ) WITHOUT ROWID;
    """,
    # 2: working with runs: notes, star, sweeps, clones, the trash, disk use
    """
    ALTER TABLE jobs ADD COLUMN notes TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN starred INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN sweep_id TEXT;
    ALTER TABLE jobs ADD COLUMN cloned_from TEXT;
    ALTER TABLE jobs ADD COLUMN trashed_at REAL;
    ALTER TABLE jobs ADD COLUMN disk_bytes INTEGER;
    CREATE INDEX jobs_by_sweep ON jobs (sweep_id, created);
    CREATE INDEX jobs_by_trashed ON jobs (trashed_at);
    CREATE TABLE job_sweeps (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created REAL NOT NULL,
        spec TEXT NOT NULL DEFAULT '{}'
    );
    """,
]
