"""bqplot charts of the panels: line or area series on a step or time axis.

Each series is one ``Lines`` mark whose ``x``/``y`` are replaced together under
``hold_sync`` (one message, one redraw). The look is decided here, once for every panel:

- a value axis given a range (``y_range``; ``PERCENT`` is 0..100) keeps exactly that range
  (the figure adds no padding) with ticks at its quarters: 0, 25, 50, 75, 100;
- an open value axis, and a step axis, follow the data with round bounds and a few round
  ticks (``nice_ticks``), set again only when the bounds change;
- a time axis labels at most three round times (``time_ticks``: ``HH:MM:SS``, or ``HH:MM``
  from a step of a minute; bqplot's own date ticks crowd five to ten labels into a narrow
  figure), none in the tenth next to the value axis, where its lowest label sits (the
  first tenth; the last one right to left). The times are the kernel's local time, as the
  log tails' stamps (bqplot labels dates in UTC, so the points are shifted by the local
  offset). The axis is hidden until there is a point (an empty date scale reads
  ``00:00:00``), and the side margins leave room for half a label at either end;
- the legend is an HTML line under the figure, shown from two series on: bqplot draws its
  legend inside the plot area, over the lines. Place ``chart.widget`` (figure and legend).

Right to left puts the value axis on the right; time and steps still run left to right.
bqplot and numpy are imported when the first chart is made, so a page whose first tab has no
chart starts without them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .fmt import esc

__all__ = ["PALETTE", "PERCENT", "SeriesChart", "nice_ticks", "time_ticks"]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
PERCENT = (0.0, 100.0)
TIME_FORMAT, MINUTES_FORMAT = "%H:%M:%S", "%H:%M"
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
              43200, 86400)
# pixels: the title above, tick labels below, the value axis's labels on its side, and half
# a time label (HH:MM:SS) on the other side
# (bqplot sets the title's top at half the top margin: 36 keeps a 13px title off the plot)
MARGIN_TOP, MARGIN_BOTTOM, MARGIN_AXIS, MARGIN_FREE = 36, 34, 58, 34


def nice_ticks(low: float, high: float, count: int = 4, *, integer: bool = False
               ) -> tuple[float, float, list[float]]:
    """Round bounds around ``low``..``high`` and the ticks between them: a step of 1, 2 or
    5 times a power of ten, the one nearest to ``count`` intervals (as d3 picks it; a whole
    number with ``integer``)."""
    if high < low:
        low, high = high, low
    if high == low:  # one value: a little room around it, not below zero if it is not
        pad = abs(high) * 0.1 or 1.0
        low, high = (max(0.0, low - pad) if low >= 0 else low - pad), high + pad
    raw = (high - low) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    error = raw / power
    step = power * (10 if error >= math.sqrt(50) else 5 if error >= math.sqrt(10)
                    else 2 if error >= math.sqrt(2) else 1)
    if integer:
        step = max(1.0, math.ceil(step))
    start = math.floor(low / step + 1e-9) * step
    stop = math.ceil(high / step - 1e-9) * step
    digits = max(0, 1 - math.floor(math.log10(step)))  # no 0.30000000000000004
    ticks = [float(round(start + i * step, digits))
             for i in range(round((stop - start) / step) + 1)]
    return ticks[0], ticks[-1], ticks


def time_ticks(low: float, high: float, most: int = 3, *, skip_last: bool = False
               ) -> tuple[float, list[float]]:
    """Round times (seconds) between ``low`` and ``high``, none in the first tenth (the
    last with ``skip_last``): the finest step of ``TIME_STEPS`` (whole days beyond) that
    gives at most ``most``."""
    tenth = (high - low) * 0.1
    start, end = (low, high - tenth) if skip_last else (low + tenth, high)
    days = max(1, math.ceil((high - low) / most / 86400)) * 86400  # beyond the steps
    ticks: list[float] = []
    for step in (*TIME_STEPS, days):
        first = math.ceil(start / step) * step
        ticks = [float(first + i * step) for i in range(max(0, int((end - first) // step) + 1))]
        if len(ticks) <= most:
            break
    return float(step), ticks


class SeriesChart:
    """A figure of named series; ``set(name, x, y)`` replaces one series; ``widget`` is
    what a panel places (the figure and its legend)."""

    def __init__(self, title: str, *, time_axis: bool = False, area: bool = False,
                 direction: str = "ltr", y_label: str = "", y_range: tuple[float, float]
                 | None = None, y_zero: bool = False, height: str = "200px",
                 tick_format: str | None = None, names: Mapping[str, str] | None = None
                 ) -> None:
        import bqplot as bq
        import ipywidgets as w
        import numpy as np

        self.time_axis = time_axis
        self.area = area
        self.y_range = y_range
        self.y_zero = y_zero
        self.names = dict(names or {})
        self.x_scale = bq.DateScale() if time_axis else bq.LinearScale()
        if y_range:
            low, high = y_range
            self.y_scale = bq.LinearScale(min=low, max=high)
            y_ticks = [low + (high - low) * i / 4 for i in range(5)]
        else:
            self.y_scale = bq.LinearScale()
            y_ticks = []
        rtl = self.rtl = direction == "rtl"
        self.x_axis = bq.Axis(scale=self.x_scale, tick_format=TIME_FORMAT if time_axis
                              else None, visible=not time_axis)
        self.y_axis = bq.Axis(scale=self.y_scale, orientation="vertical", label=y_label,
                              side="right" if rtl else "left", tick_values=y_ticks,
                              tick_format=tick_format)
        margin = {"top": MARGIN_TOP, "bottom": MARGIN_BOTTOM,
                  "left": MARGIN_FREE if rtl else MARGIN_AXIS,
                  "right": MARGIN_AXIS if rtl else MARGIN_FREE}
        self.figure = bq.Figure(marks=[], axes=[self.x_axis, self.y_axis], title=title,
                                fig_margin=margin, padding_x=0.0, padding_y=0.0,
                                animation_duration=0,
                                layout=w.Layout(width="auto", height=height, min_width="0"))
        self.figure.add_class("nb-chart-figure")
        self.legend = w.HTML(layout=w.Layout(display="none"))
        self.legend.add_class("nb-legend")
        self.widget = w.VBox([self.figure, self.legend])
        self.widget.add_class("nb-chart")
        self.lines: dict[str, Any] = {}
        self._bounds: dict[str, tuple[float, float, float, float]] = {}
        self._ranges: dict[str, tuple[float, ...]] = {}
        self._bq = bq
        self._np = np

    def _mark(self, name: str) -> Any:
        mark = self.lines.get(name)
        if mark is None:
            color = PALETTE[len(self.lines) % len(PALETTE)]
            kwargs: dict[str, Any] = {"fill": "bottom", "fill_opacities": [0.25]} \
                if self.area else {}
            mark = self._bq.Lines(x=self._np.zeros(0), y=self._np.zeros(0), colors=[color],
                                  labels=[self.names.get(name, name)], display_legend=False,
                                  stroke_width=2, scales={"x": self.x_scale,
                                                          "y": self.y_scale}, **kwargs)
            self.lines[name] = mark
            self.figure.marks = [*self.figure.marks, mark]
            self._draw_legend()
        return mark

    def set(self, name: str, x: Sequence[float], y: Sequence[float | None]) -> None:
        """Replace a series (``x`` in seconds since the epoch on a time axis)."""
        np = self._np
        mark = self._mark(name)
        xs = np.asarray(x, dtype=float)
        if self.time_axis and len(xs):  # bqplot labels dates in UTC: show local times,
            xs = xs + time.localtime(xs[-1]).tm_gmtoff  # as the panels' log stamps are
        ys = np.asarray([np.nan if v is None else v for v in y], dtype=float)
        finite = np.isfinite(ys) & np.isfinite(xs) if len(xs) == len(ys) else None
        if finite is not None and finite.any():
            self._bounds[name] = (float(xs[finite].min()), float(xs[finite].max()),
                                  float(ys[finite].min()), float(ys[finite].max()))
        else:
            self._bounds.pop(name, None)
        with mark.hold_sync():
            mark.x = (xs * 1000).astype("datetime64[ms]") if self.time_axis else xs
            mark.y = ys
        self._fit()

    def remove_others(self, keep: Sequence[str]) -> None:
        gone = [n for n in self.lines if n not in keep]
        if not gone:
            return
        for name in gone:
            del self.lines[name]
            self._bounds.pop(name, None)
        self.figure.marks = list(self.lines.values())
        self._draw_legend()
        self._fit()

    def points(self, name: str) -> int:
        mark = self.lines.get(name)
        return 0 if mark is None else len(mark.x)

    # -- the look ------------------------------------------------------------------------------

    def _fit(self) -> None:
        """Round bounds and ticks for the axes that follow the data (when they change)."""
        if not self._bounds:
            return
        bounds = list(self._bounds.values())
        if self.time_axis:
            self._set_time_ticks(min(b[0] for b in bounds), max(b[1] for b in bounds))
        else:
            low, high, ticks = nice_ticks(min(b[0] for b in bounds), max(b[1] for b in bounds),
                                          integer=True)
            self._set_range("x", self.x_scale, self.x_axis, low, high, ticks)
        if self.y_range is None:
            low = min(b[2] for b in bounds)
            low, high, ticks = nice_ticks(min(low, 0.0) if self.y_zero else low,
                                          max(b[3] for b in bounds))
            self._set_range("y", self.y_scale, self.y_axis, low, high, ticks)

    def _set_range(self, key: str, scale: Any, axis: Any, low: float, high: float,
                   ticks: list[float]) -> None:
        if self._ranges.get(key) == (low, high):
            return
        self._ranges[key] = (low, high)
        with scale.hold_sync():
            scale.min, scale.max = low, high
        axis.tick_values = self._np.asarray(ticks, dtype=float)

    def _set_time_ticks(self, low: float, high: float) -> None:
        step, ticks = time_ticks(low, high, skip_last=self.rtl)
        if self._ranges.get("x") == (step, *ticks):
            return
        self._ranges["x"] = (step, *ticks)
        with self.x_axis.hold_sync():
            self.x_axis.tick_format = MINUTES_FORMAT if step >= 60 else TIME_FORMAT
            self.x_axis.tick_values = (self._np.asarray(ticks) * 1000).astype("datetime64[ms]")
            self.x_axis.visible = True

    def _draw_legend(self) -> None:
        """An HTML line under the figure, from two series on (one is named by the title)."""
        if len(self.lines) < 2:
            self.legend.layout.display = "none"
            self.legend.value = ""
            return
        items = "".join(
            f'<span class="nb-legend-item"><span class="nb-legend-swatch" '
            f'style="background:{mark.colors[0]}"></span>{esc(self.names.get(name, name))}'
            f"</span>" for name, mark in self.lines.items())
        self.legend.value = f'<div class="nb-legend-items">{items}</div>'
        self.legend.layout.display = "flex"
