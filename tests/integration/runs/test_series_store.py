"""Each series' summary and packed arrays, kept by the store with its points (series.py)."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from notebench.server.jobs import series
from notebench.server.jobs import store as jobstore
from notebench.server.jobs.compare import SeriesCache, summary_of
from notebench.server.jobs.schema import MIGRATIONS

SPECIALS = ("nan", "inf", "-inf")


def open_db(path: Path, migrations: list[str] = MIGRATIONS) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for script in migrations:
        conn.executescript(script)
    return conn


def make_points(job_id: str, name: str, n: int, seed: int) -> list[tuple]:
    """Rows of a series: mostly finite, some non-finite, steps sometimes missing."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        step = None if rng.random() < 0.1 else i * 2
        if rng.random() < 0.03:
            rows.append((job_id, name, i, step, 1000.0 + i, None, rng.choice(SPECIALS)))
        else:
            rows.append((job_id, name, i, step, 1000.0 + i, rng.uniform(-5, 5), None))
    return rows


def expected_summary(rows: list[tuple]) -> dict:
    """The summary, computed point by point (first occurrence wins a tie)."""
    xs = [r[3] if r[3] is not None else r[2] for r in rows]
    finite = [(r[5], x) for r, x in zip(rows, xs, strict=True) if r[6] is None]
    low = min(finite, key=lambda p: p[0]) if finite else (None, None)
    high = max(finite, key=lambda p: p[0]) if finite else (None, None)
    last = rows[-1]
    return {"count": len(rows), "finite": len(finite), "last_idx": last[2], "x_min": min(xs),
            "x_max": max(xs), "final_value": last[5], "final_special": last[6],
            "final_x": xs[-1], "min_value": low[0], "min_x": low[1], "max_value": high[0],
            "max_x": high[1]}


def expected_arrays(rows: list[tuple]) -> tuple[list, list, list]:
    xs = [r[3] if r[3] is not None else r[2] for r in rows]
    values = [0.0 if r[6] is not None else r[5] for r in rows]
    codes = [0 if r[6] is None else 1 + SPECIALS.index(r[6]) for r in rows]
    return xs, values, codes


def insert_in_batches(conn: sqlite3.Connection, rows: list[tuple], seed: int) -> None:
    rng = random.Random(seed)
    i = 0
    while i < len(rows):
        size = rng.choice([1, 3, 50, 700, series.CHUNK_POINTS + 5])
        conn.execute("BEGIN")
        jobstore.insert_metrics(conn, rows[i:i + size])
        conn.execute("COMMIT")
        i += size


def test_batches_keep_each_series_summary_and_arrays(tmp_path):
    conn = open_db(tmp_path / "s.sqlite")
    a = make_points("j-00000000000a", "loss", 20_000, 1)
    b = make_points("j-00000000000a", "acc", 3_000, 2)
    c = make_points("j-00000000000c", "loss", 500, 3)
    mixed = [row for group in zip(a, b + [None] * (len(a) - len(b)),
                                  c + [None] * (len(a) - len(c)), strict=True)
             for row in group if row is not None]
    insert_in_batches(conn, mixed, 4)
    summaries = series.summaries(conn, ["j-00000000000a", "j-00000000000c"])
    assert list(summaries["j-00000000000a"]) == ["acc", "loss"]
    for rows, job_id in ((a, "j-00000000000a"), (b, "j-00000000000a"), (c, "j-00000000000c")):
        name = rows[0][1]
        assert summaries[job_id][name] == pytest.approx(expected_summary(rows))
        count = conn.execute("SELECT COUNT(*) FROM job_metrics WHERE job_id = ? AND name = ?",
                             (job_id, name)).fetchone()[0]
        assert count == len(rows)
        pieces, end, _tail = series.read_after(conn, job_id, name, 0, 0)
        assert end == len(rows)
        xs, values, codes = expected_arrays(rows)
        assert np.concatenate([p.x for p in pieces]).tolist() == xs
        assert np.concatenate([p.values for p in pieces]).tolist() == pytest.approx(values)
        assert np.concatenate([p.codes for p in pieces]).tolist() == codes
    # chunks are full but the last one: a long series is a few BLOBs
    sizes = [n for (n,) in conn.execute(
        "SELECT n FROM job_series_chunks WHERE job_id = ? AND name = 'loss' ORDER BY first_idx",
        ("j-00000000000a",))]
    assert sizes == [series.CHUNK_POINTS] * (len(a) // series.CHUNK_POINTS) + [
        len(a) % series.CHUNK_POINTS]
    assert jobstore.metric_counters(conn, "j-00000000000a") == {"loss": 20_000, "acc": 3_000}
    assert jobstore.metric_names(conn, "j-00000000000c") == {"loss": 500}


def test_points_stored_already_are_skipped(tmp_path):
    conn = open_db(tmp_path / "s.sqlite")
    rows = make_points("j-00000000000a", "loss", 100, 5)
    conn.execute("BEGIN")
    assert jobstore.insert_metrics(conn, rows[:60]) == 60
    # a replay of stored points, out of order and repeated, with the new ones among them
    again = rows[50:100] + rows[:10] + rows[70:80]
    random.Random(6).shuffle(again)
    assert jobstore.insert_metrics(conn, again) == 40
    conn.execute("COMMIT")
    assert series.summaries(conn, ["j-00000000000a"])["j-00000000000a"]["loss"] == \
        pytest.approx(expected_summary(rows))
    pieces, end, _tail = series.read_after(conn, "j-00000000000a", "loss", 0, 0)
    assert end == 100
    assert np.concatenate([p.x for p in pieces]).tolist() == expected_arrays(rows)[0]


def test_the_cache_reads_only_what_was_added(tmp_path):
    conn = open_db(tmp_path / "s.sqlite")
    rows = make_points("j-00000000000a", "loss", 12_000, 7)
    cache = SeriesCache()
    conn.execute("BEGIN")
    jobstore.insert_metrics(conn, rows[:5000])
    conn.execute("COMMIT")
    first = cache.get(conn, "j-00000000000a", "loss", 4999)
    assert len(first) == 5000
    assert cache.get(conn, "j-00000000000a", "loss", 4999) is first  # nothing new: no read
    insert_in_batches(conn, rows[5000:], 8)  # the last chunk grows, then new ones
    grown = cache.get(conn, "j-00000000000a", "loss", 11_999)
    xs, values, codes = expected_arrays(rows)
    assert grown.x.tolist() == xs and grown.specials.tolist() == codes
    assert grown.values.tolist() == pytest.approx(values)


def test_points_stored_before_the_summaries_existed(tmp_path):
    """A store made by an earlier version: the migration summarizes its points, the cache
    reads them from their rows, and points added later go on from there."""
    conn = open_db(tmp_path / "s.sqlite", MIGRATIONS[:2])
    rows = make_points("j-00000000000a", "loss", 3000, 9)
    rows[-1] = (*rows[-1][:5], None, None)  # a NULL value without a spelling: NaN
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO job_metrics (job_id, name, idx, step, t, value, special) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", rows[:2000])
    conn.execute("COMMIT")
    for script in MIGRATIONS[2:]:
        conn.executescript(script)
    expected = expected_summary(rows[:2000])
    summary = series.summaries(conn, ["j-00000000000a"])["j-00000000000a"]["loss"]
    assert summary == pytest.approx(expected)
    assert summary_of(summary, "max")["best"] == expected["max_value"]
    assert summary_of(summary, "min")["best_step"] == expected["min_x"]
    cache = SeriesCache()
    assert cache.get(conn, "j-00000000000a", "loss").x.tolist() == expected_arrays(
        rows[:2000])[0]
    fixed = [(*r[:6], "nan") if r[5] is None and r[6] is None else r for r in rows]
    insert_in_batches(conn, rows[2000:], 10)
    assert series.summaries(conn, ["j-00000000000a"])["j-00000000000a"]["loss"] == \
        pytest.approx(expected_summary(fixed))
    for fresh in (cache, SeriesCache()):
        got = fresh.get(conn, "j-00000000000a", "loss")
        xs, values, codes = expected_arrays(fixed)
        assert got.x.tolist() == xs and got.specials.tolist() == codes
        assert got.values.tolist() == pytest.approx(values)


def test_summary_of_a_series_without_finite_values(tmp_path):
    conn = open_db(tmp_path / "s.sqlite")
    conn.execute("BEGIN")
    jobstore.insert_metrics(conn, [("j-00000000000a", "loss", i, i, 1.0, None, "inf")
                                   for i in range(3)])
    conn.execute("COMMIT")
    row = series.summaries(conn, ["j-00000000000a"])["j-00000000000a"]["loss"]
    summary = summary_of(row, "min")
    assert summary == {"count": 3, "mode": "min", "final": None, "final_step": 2,
                       "final_nonfinite": "inf", "best": None, "best_step": None,
                       "min": None, "max": None, "nonfinite": 3}
