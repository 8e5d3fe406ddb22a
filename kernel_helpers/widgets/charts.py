"""bqplot charts of the panels: line or area series on a step or time axis.

Each series is one ``Lines`` mark whose ``x``/``y`` are replaced together under
``hold_sync`` (one message, one redraw). Right to left puts the value axis on the right;
time and steps still run left to right. bqplot and numpy are imported when the first chart is
made, so a page whose first tab has no chart starts without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["PALETTE", "SeriesChart"]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


class SeriesChart:
    """A figure of named series; ``set(name, x, y)`` replaces one series."""

    def __init__(self, title: str, *, time_axis: bool = False, area: bool = False,
                 direction: str = "ltr", y_label: str = "", y_range: tuple[float, float]
                 | None = None, height: str = "200px", tick_format: str | None = None
                 ) -> None:
        import bqplot as bq
        import ipywidgets as w
        import numpy as np

        self.time_axis = time_axis
        self.area = area
        self.x_scale = bq.DateScale() if time_axis else bq.LinearScale()
        self.y_scale = bq.LinearScale(min=y_range[0], max=y_range[1]) if y_range else \
            bq.LinearScale()
        rtl = direction == "rtl"
        x_axis = bq.Axis(scale=self.x_scale, num_ticks=4,
                         tick_format="%H:%M:%S" if time_axis else None)
        y_axis = bq.Axis(scale=self.y_scale, orientation="vertical", label=y_label,
                         side="right" if rtl else "left", num_ticks=4, tick_format=tick_format)
        margin = {"top": 28, "bottom": 28, "left": 18 if rtl else 58,
                  "right": 58 if rtl else 18}
        self.figure = bq.Figure(marks=[], axes=[x_axis, y_axis], title=title,
                                fig_margin=margin, animation_duration=0,
                                legend_location="top-left",
                                layout=w.Layout(width="auto", height=height, min_width="220px"))
        self.figure.add_class("nb-chart")
        self.lines: dict[str, Any] = {}
        self._bq = bq
        self._np = np

    def _mark(self, name: str) -> Any:
        mark = self.lines.get(name)
        if mark is None:
            color = PALETTE[len(self.lines) % len(PALETTE)]
            kwargs: dict[str, Any] = {"fill": "bottom", "fill_opacities": [0.25]} \
                if self.area else {}
            mark = self._bq.Lines(x=self._np.zeros(0), y=self._np.zeros(0), colors=[color],
                                  labels=[name], display_legend=True, stroke_width=2,
                                  scales={"x": self.x_scale, "y": self.y_scale}, **kwargs)
            self.lines[name] = mark
            self.figure.marks = [*self.figure.marks, mark]
        return mark

    def set(self, name: str, x: Sequence[float], y: Sequence[float | None]) -> None:
        """Replace a series (``x`` in seconds since the epoch on a time axis)."""
        np = self._np
        mark = self._mark(name)
        xs = np.asarray(x, dtype=float)
        if self.time_axis:
            xs = (xs * 1000).astype("datetime64[ms]")
        ys = np.asarray([np.nan if v is None else v for v in y], dtype=float)
        with mark.hold_sync():
            mark.x = xs
            mark.y = ys

    def remove_others(self, keep: Sequence[str]) -> None:
        gone = [n for n in self.lines if n not in keep]
        if not gone:
            return
        for name in gone:
            del self.lines[name]
        self.figure.marks = list(self.lines.values())

    def points(self, name: str) -> int:
        mark = self.lines.get(name)
        return 0 if mark is None else len(mark.x)
