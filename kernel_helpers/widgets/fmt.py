"""Small text helpers of the panels: durations, numbers, sizes, escaped HTML tables."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from ..cli import human_bytes

__all__ = ["duration", "esc", "human_bytes", "number", "table"]


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def duration(seconds: float | None) -> str:
    """``3725`` -> ``1h 2m``; ``42.4`` -> ``42s``; None -> ``-``."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "-"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def number(value: Any, digits: int = 4) -> str:
    """A metric value: 4 significant digits, ``-`` for none, NaN/inf as such."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{value:.{digits}g}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *,
          classes: str = "", row_classes: Sequence[str] | None = None) -> str:
    """An HTML table of pre-escaped cells (use ``esc`` on untrusted text)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cls = row_classes[index] if row_classes and index < len(row_classes) else ""
        cells = "".join(f"<td>{cell}</td>" for cell in row)
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return (f'<table class="nb-table {classes}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")
