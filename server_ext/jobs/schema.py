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
    # 3: each metric series' summary and packed arrays (series.py), filled for existing points
    """
    CREATE TABLE job_series (
        job_id TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        finite INTEGER NOT NULL,
        last_idx INTEGER NOT NULL,
        x_min INTEGER,
        x_max INTEGER,
        final_value REAL,
        final_special TEXT,
        final_x INTEGER,
        min_value REAL,
        min_x INTEGER,
        max_value REAL,
        max_x INTEGER,
        PRIMARY KEY (job_id, name)
    ) WITHOUT ROWID;
    CREATE TABLE job_series_chunks (
        job_id TEXT NOT NULL,
        name TEXT NOT NULL,
        first_idx INTEGER NOT NULL,
        n INTEGER NOT NULL,
        x BLOB NOT NULL,
        v BLOB NOT NULL,
        s BLOB NOT NULL
    );
    CREATE UNIQUE INDEX job_series_chunks_by_series
        ON job_series_chunks (job_id, name, first_idx);
    INSERT INTO job_series (job_id, name, count, finite, last_idx, x_min, x_max)
        SELECT job_id, name, COUNT(*), COUNT(value), MAX(idx), MIN(COALESCE(step, idx)),
               MAX(COALESCE(step, idx))
        FROM job_metrics GROUP BY job_id, name;
    UPDATE job_series SET
        final_value = (SELECT m.value FROM job_metrics m WHERE m.job_id = job_series.job_id
                       AND m.name = job_series.name AND m.idx = job_series.last_idx),
        final_special = (SELECT CASE WHEN m.special IS NOT NULL THEN m.special
                                     WHEN m.value IS NULL THEN 'nan' END
                         FROM job_metrics m WHERE m.job_id = job_series.job_id
                         AND m.name = job_series.name AND m.idx = job_series.last_idx),
        final_x = (SELECT COALESCE(m.step, m.idx) FROM job_metrics m
                   WHERE m.job_id = job_series.job_id AND m.name = job_series.name
                   AND m.idx = job_series.last_idx),
        min_value = (SELECT MIN(m.value) FROM job_metrics m WHERE m.job_id = job_series.job_id
                     AND m.name = job_series.name),
        min_x = (SELECT COALESCE(m.step, m.idx) FROM job_metrics m
                 WHERE m.job_id = job_series.job_id AND m.name = job_series.name
                 AND m.value IS NOT NULL ORDER BY m.value, m.idx LIMIT 1),
        max_value = (SELECT MAX(m.value) FROM job_metrics m WHERE m.job_id = job_series.job_id
                     AND m.name = job_series.name),
        max_x = (SELECT COALESCE(m.step, m.idx) FROM job_metrics m
                 WHERE m.job_id = job_series.job_id AND m.name = job_series.name
                 AND m.value IS NOT NULL ORDER BY m.value DESC, m.idx LIMIT 1);
    """,
    # 4: how often a job lost with its worker is submitted again
    """
    ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: the hyperparameters a job's kernel recorded (``hparams`` events, merged)
    """
    ALTER TABLE jobs ADD COLUMN hparams TEXT NOT NULL DEFAULT '{}';
    """,
]
