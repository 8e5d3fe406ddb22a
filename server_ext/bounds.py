"""Bounds of numeric request arguments.

Every number a route reads from a query string or a header is parsed here: it must be
finite and inside a documented range before it reaches SQLite (whose integers are 64-bit)
or arithmetic, so ``inf``, ``nan``, ``1e400`` or ``99999999999999999999999`` are a 400,
never an ``OverflowError``.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import bad_request

#: the largest id, offset or count an argument may give: exact in JSON and in a double
MAX_SAFE_INT = 2**53 - 1
#: the largest magnitude of a time argument, in seconds (unix time, or relative to now)
MAX_TIME = 1e12


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else f"{value:g}"


def parse_number(name: str, raw: str | None, kind: type = float, *,
                 low: float | None = None, high: float | None = None,
                 code: str = "invalid_parameter") -> Any:
    """``raw`` as ``kind`` (None when absent or empty), finite and in ``[low, high]``.

    Without bounds an argument still stays within ``±MAX_SAFE_INT``. 400 otherwise.
    """
    if raw is None or raw == "":
        return None
    low = -MAX_SAFE_INT if low is None else low
    high = MAX_SAFE_INT if high is None else high
    try:
        value = kind(raw.strip())
    except (ValueError, OverflowError):
        what = "an integer" if kind is int else "a number"
        raise bad_request(f"{name} must be {what}", code) from None
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        raise bad_request(f"{name} must be between {_show(low)} and {_show(high)}", code)
    return value
