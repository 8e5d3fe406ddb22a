"""``downsample_arrays`` (the series cache's path) gives ``downsample``'s buckets."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from notebench.server.downsample import (
    downsample,
    downsample_arrays,
    grid_for,
    special_code,
    special_of,
)


@pytest.mark.parametrize("max_points", [1, 7, 100, 1000])
def test_arrays_match_the_in_memory_buckets(max_points):
    rng = random.Random(max_points)
    steps = sorted(rng.randrange(0, 500) for _ in range(600))  # repeated steps too
    values = [rng.choice([math.nan, math.inf, -math.inf]) if rng.random() < 0.05
              else rng.uniform(-1, 1) for _ in steps]
    points = list(zip(steps, values, strict=True))
    x = np.array(steps, dtype=np.int64)
    v = np.array([0.0 if special_of(val) else val for val in values])
    s = np.array([special_code(special_of(val)) for val in values], dtype=np.int8)
    grid = grid_for(steps[0], steps[-1], max_points, integer=True)
    expected = downsample(points, grid=grid)
    got = downsample_arrays(x, v, s, grid)
    assert [{**b, "mean": None} for b in got] == [{**b, "mean": None} for b in expected]
    for a, b in zip(got, expected, strict=True):
        assert a["mean"] == pytest.approx(b["mean"], rel=1e-12) if b["mean"] is not None \
            else a["mean"] is None
    # unsorted input is ordered by x, ties in insertion order
    order = np.random.default_rng(0).permutation(len(steps))
    shuffled = downsample_arrays(x[order], v[order], s[order], grid)
    assert [b["count"] for b in shuffled] == [b["count"] for b in expected]
