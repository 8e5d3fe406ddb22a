"""A sweep: one job per combination of a grid of parameter values, submitted as a group."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from ..errors import bad_request

SWEEP_ID = r"s-[0-9a-f]{12}"


def new_sweep_id() -> str:
    return f"s-{secrets.token_hex(6)}"


def expand_grid(grid: Any, max_jobs: int) -> list[dict[str, Any]]:
    """The combinations of ``{"lr": [1e-3, 1e-2], "batch_size": [32, 64]}`` (400 if bad).

    In the order of ``itertools.product`` over the names as given (the last name varies
    fastest).
    """
    if not isinstance(grid, dict) or not grid:
        raise bad_request("'grid' must be an object of parameter name -> list of values",
                          "invalid_grid")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise bad_request(f"grid[{name!r}] must be a non-empty list of values",
                              "invalid_grid")
    size = 1
    for values in grid.values():
        size *= len(values)
    if size > max_jobs:
        raise bad_request(f"the grid makes {size} jobs, more than the {max_jobs} a sweep may "
                          "have (NotebenchJobService.max_sweep_jobs)", "invalid_grid")
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def combination_label(combo: dict[str, Any]) -> str:
    """``lr=0.001 batch_size=32``: the part of a sweep job's name that tells it apart."""
    return " ".join(f"{k}={v}" for k, v in combo.items())
