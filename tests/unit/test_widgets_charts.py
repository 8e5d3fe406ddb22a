"""The charts' look on the real widget objects: percent axes fixed at 0..100 with ticks at
the quarters, time axes that fit their labels, legends beside the plot rather than on it,
and no GPU chart without a GPU (a one-line note instead), but one per machine with GPUs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import bqplot as bq
import ipywidgets as w
import pytest

from notebench.hardware.profile import collect_static_profile
from notebench.server.monitoring.sampler import Sampler
from notebench.sse import Event
from notebench.widgets import CompareRuns, HardwarePanel, MonitoringDashboard
from notebench.widgets.charts import PERCENT, SeriesChart, nice_ticks, time_ticks
from notebench.widgets.fmt import esc

QUARTERS = [0.0, 25.0, 50.0, 75.0, 100.0]


def sample_event(sample: dict[str, Any]) -> Event:
    return Event(None, "sample", {"topic": "monitoring", "type": "sample", "ts": sample["ts"],
                                  "data": sample}, "monitoring")


def figures(widget: w.Widget) -> Iterator[bq.Figure]:
    """Every bqplot figure in a widget tree."""
    if isinstance(widget, bq.Figure):
        yield widget
    for child in getattr(widget, "children", ()):
        yield from figures(child)


@pytest.fixture(scope="module")
def machine_sample() -> dict[str, Any]:
    """One sample of this machine, as the server's monitoring sampler takes it."""
    sampler = Sampler(interval=1.0, on_sample=lambda _s: None)
    sampler.sample_once()  # rates need a previous reading
    time.sleep(0.2)
    sample = sampler.sample_once()
    if sample["gpus"]:
        pytest.skip("this machine has a GPU: the GPU-less checks need one without")
    return sample


def percent_charts(panel: MonitoringDashboard) -> list[SeriesChart]:
    charts = [panel.cpu_chart, panel.memory_chart]
    return charts + ([panel.gpu_chart] if panel.gpu_chart is not None else [])


def assert_percent_axis(chart: SeriesChart) -> None:
    assert chart.y_scale.min == 0 and chart.y_scale.max == 100
    assert list(chart.y_axis.tick_values) == QUARTERS
    assert chart.y_axis.num_ticks is None
    assert chart.figure.padding_y == 0  # bqplot would widen 0..100 to -2.5..102.5


def test_percent_axes_are_fixed_at_0_to_100_with_ticks_at_the_quarters(machine_sample):
    panel = MonitoringDashboard(live=False)
    for chart in percent_charts(panel):
        assert_percent_axis(chart)
    busy = {**machine_sample, "ts": time.time(), "cpu": {"percent": 180.0}}  # 2 cores busy
    panel.on_events([sample_event(busy)])
    for chart in percent_charts(panel):
        assert_percent_axis(chart)  # the range stays whatever the values


def test_without_a_gpu_there_is_no_gpu_figure_but_a_one_line_note(machine_sample):
    panel = MonitoringDashboard(live=False)
    panel.on_events([sample_event(machine_sample)])
    assert panel.cpu_chart.points("cpu") == 1
    titles = [f.title for f in figures(panel)]
    assert titles == ["CPU %", "Memory %", "Network B/s"]
    assert panel.gpu_chart is None
    assert panel.gpu_note.layout.display == "block"
    reason = machine_sample["gpu_status"].get("reason") or "none on this machine"
    assert f"GPU: {esc(reason)}</div>" in panel.gpu_note.value
    assert "nb-gpu-note" in panel.gpu_note._dom_classes

    hardware = HardwarePanel(live=False)
    profile = collect_static_profile()
    assert profile["gpus"] == []
    hardware.load(profile, {"settings": {}})
    assert list(figures(hardware)) == []
    assert (profile["gpu_status"].get("reason") or "none") in hardware.profile_html.value


def gpu_sample(ts: float, *utilization: float) -> dict[str, Any]:
    return {"ts": ts, "cpu": {"percent": 10.0}, "memory": {"percent": 40.0},
            "network": {"rx_bytes_per_second": 1.0, "tx_bytes_per_second": 2.0},
            "gpus": [{"index": i, "utilization_percent": u} for i, u in enumerate(utilization)],
            "gpu_status": {"available": True, "reason": None, "count": len(utilization)}}


def test_with_gpus_the_gpu_chart_is_built_with_a_percent_axis():
    panel = MonitoringDashboard(live=False)
    panel.on_events([sample_event(gpu_sample(time.time(), 77.0, 12.0))])
    chart = panel.gpu_chart
    assert chart is not None and chart.widget in panel.charts.children
    assert [f.title for f in figures(panel)] == ["CPU %", "Memory %", "Network B/s", "GPU %"]
    assert chart.points("gpu0") == 1 and chart.points("gpu1") == 1
    assert_percent_axis(chart)
    assert panel.gpu_note.value == "" and panel.gpu_note.layout.display == "none"
    assert chart.legend.layout.display == "flex"  # two GPUs: a legend beside the plot
    assert "gpu0" in chart.legend.value and "gpu1" in chart.legend.value
    panel.on_events([sample_event(gpu_sample(time.time() + 1, 80.0, 15.0))])
    assert chart is panel.gpu_chart and chart.points("gpu0") == 2  # the same chart

    later = MonitoringDashboard(live=False)  # a page opened later: the history brings it
    now = time.time()
    later.load_history({"series": [{"name": "gpu_utilization_percent", "labels": {"gpu": "0"},
                                    "t": [now - 2, now - 1], "value": [50.0, 60.0]}]})
    assert later.gpu_chart is not None and later.gpu_chart.points("gpu0") == 2
    assert later.gpu_chart.legend.layout.display == "none"  # one GPU: the title names it


def test_legends_are_beside_the_plot_not_on_it(machine_sample):
    panel = MonitoringDashboard(live=False)
    panel.on_events([sample_event({**machine_sample, "ts": time.time()})])
    for figure in figures(panel):
        assert figure.marks and not any(m.display_legend for m in figure.marks)
    network = panel.network_chart
    assert network.widget.children == (network.figure, network.legend)
    assert network.legend.layout.display == "flex"
    assert "received" in network.legend.value and "sent" in network.legend.value
    assert panel.cpu_chart.legend.layout.display == "none"  # one series: the title says it
    persian = MonitoringDashboard(live=False, lang="fa")
    persian.on_events([sample_event({**machine_sample, "ts": time.time()})])
    assert "دریافتی" in persian.network_chart.legend.value


def test_time_axes_fit_their_labels():
    chart = SeriesChart("CPU %", time_axis=True, y_range=PERCENT)
    x_axis = chart.figure.axes[0]
    assert x_axis.num_ticks is None  # bqplot would spread them from edge to edge
    assert not x_axis.visible  # no 00:00:00 ticks before there is a point
    margin = chart.figure.fig_margin
    assert margin["left"] >= 56 and margin["right"] >= 32 and margin["bottom"] >= 32
    rtl = SeriesChart("CPU %", time_axis=True, y_range=PERCENT, direction="rtl")
    assert rtl.figure.fig_margin["left"] >= 32 and rtl.figure.fig_margin["right"] >= 56

    start = 1_700_000_007.0  # seconds of the five minute window, as the kernel shows them
    chart.set("cpu", [start + i for i in range(300)], [1.0] * 300)
    shift = time.localtime(start).tm_gmtoff
    ticks = x_axis.tick_values.astype("datetime64[s]").astype(int) - shift
    assert x_axis.visible and x_axis.tick_format == "%H:%M"  # a step of minutes
    assert 2 <= len(ticks) <= 3 and all((t + shift) % 60 == 0 for t in ticks)  # round
    assert ticks[0] >= start + 30  # none in the first tenth, by the value axis's labels
    chart.set("cpu", [start, start + 5], [1.0, 2.0])
    assert x_axis.tick_format == "%H:%M:%S" and 1 <= len(x_axis.tick_values) <= 3
    assert time_ticks(0, 5) == (2.0, [2.0, 4.0]) and time_ticks(0, 18_000)[0] == 7200
    assert time_ticks(0, 10) == (5.0, [5.0, 10.0])
    assert time_ticks(0, 10, skip_last=True) == (5.0, [0.0, 5.0])  # the value axis's side


def test_time_axes_show_the_kernels_local_time(monkeypatch):
    """bqplot labels dates in UTC: the points are shifted so the labels read local time."""
    monkeypatch.setenv("TZ", "Asia/Tehran")  # +03:30, no daylight saving
    time.tzset()
    try:
        chart = SeriesChart("CPU %", time_axis=True)
        chart.set("cpu", [1_700_000_000.0], [5.0])
        shown = chart.lines["cpu"].x[0].astype("datetime64[s]").astype(int)
        assert shown == 1_700_000_000 + 12_600
    finally:
        monkeypatch.undo()
        time.tzset()


def test_open_axes_get_round_bounds_and_ticks():
    assert nice_ticks(0, 812) == (0.0, 1000.0, [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0])
    assert nice_ticks(0, 7, integer=True) == (0.0, 8.0, [0.0, 2.0, 4.0, 6.0, 8.0])
    assert nice_ticks(0, 0.5)[2] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]  # no 0.30000000000000004
    assert nice_ticks(3, 3)[0] >= 0 and nice_ticks(0, 0) == (0.0, 1.0, nice_ticks(0, 1)[2])

    network = SeriesChart("Network B/s", time_axis=True, y_zero=True)
    now = time.time()
    network.set("rx", [now - 1, now], [300.0, 812.0])
    assert (network.y_scale.min, network.y_scale.max) == (0.0, 1000.0)
    assert list(network.y_axis.tick_values) == [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]

    compare = CompareRuns(live=False)
    compare.load({"jobs": [{"id": "j-000000000001", "name": "a"},
                           {"id": "j-000000000002", "name": "b"}], "metrics": ["loss"],
                  "parameters": []},
                 {"runs": [{"job_id": f"j-00000000000{n}", "series": [
                     {"name": "loss", "buckets": [{"x": s, "last": 1 / (s + n)}
                                                  for s in range(8)]}]} for n in (1, 2)]})
    chart = compare.chart
    assert chart.widget in compare.children
    assert list(chart.x_axis.tick_values) == [0.0, 2.0, 4.0, 6.0, 8.0]  # whole steps
    assert chart.y_scale.min <= 1 / 9 and chart.y_scale.max >= 1.0
    assert chart.legend.layout.display == "flex" and "a (0001)" in chart.legend.value
