"""``MonitoringDashboard``: CPU, memory, network and GPU over a sliding window, alerts, logs."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import ipywidgets as w

from ..sse import Event
from .base import Panel
from .charts import PERCENT, SeriesChart
from .fmt import esc, human_bytes, table

__all__ = ["MonitoringDashboard", "sample_values"]

LOG_LINES = 200
HISTORY_NAMES = ("cpu_percent", "memory_percent", "network_rx_bytes_per_second",
                 "network_tx_bytes_per_second", "gpu_utilization_percent")


def sample_values(sample: dict[str, Any]) -> dict[str, float | None]:
    """The charted figures of one sampler sample (``monitoring`` topic, ``sample``)."""
    values: dict[str, float | None] = {
        "cpu": (sample.get("cpu") or {}).get("percent"),
        "memory": (sample.get("memory") or {}).get("percent"),
        "rx": (sample.get("network") or {}).get("rx_bytes_per_second"),
        "tx": (sample.get("network") or {}).get("tx_bytes_per_second"),
    }
    for gpu in sample.get("gpus") or []:
        values[f"gpu{gpu.get('index')}"] = gpu.get("utilization_percent")
    return values


class MonitoringDashboard(Panel):
    """Live system charts (``window`` seconds), the alert list and the log tail."""

    title = "Monitoring"

    def __init__(self, *, window: float = 300.0, **kwargs: Any) -> None:
        self.window = window
        self.history: dict[str, deque[tuple[float, float | None]]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.log_records: deque[dict[str, Any]] = deque(maxlen=LOG_LINES)
        self._log_keys: set[tuple[Any, ...]] = set()
        self._last_sample: dict[str, Any] | None = None
        self.samples = 0
        self.gpu_chart: SeriesChart | None = None  # made with the first GPU series
        super().__init__(**kwargs)

    def build(self) -> list[w.Widget]:
        d = self.direction
        t = self.t
        self.cpu_chart = SeriesChart(t("CPU") + " %", time_axis=True, direction=d,
                                     y_range=PERCENT)
        self.memory_chart = SeriesChart(t("Memory") + " %", time_axis=True, area=True,
                                        direction=d, y_range=PERCENT)
        self.network_chart = SeriesChart(t("Network") + " B/s", time_axis=True, direction=d,
                                         y_zero=True, tick_format=".3~s",
                                         names={"rx": t("received"), "tx": t("sent")})
        self.charts = w.Box([self.cpu_chart.widget, self.memory_chart.widget,
                             self.network_chart.widget])
        self.charts.add_class("nb-charts")
        # without a GPU series there is no GPU chart, only this line (why there is none)
        self.gpu_note = w.HTML(layout=w.Layout(display="none"))
        self.gpu_note.add_class("nb-gpu-note")
        self.summary = w.HTML()
        self.alerts_html = w.HTML()
        self.logs_html = w.HTML()
        return [self.summary, self.charts, self.gpu_note, self.heading(t("Alerts")),
                self.alerts_html, self.heading(t("Logs")), self.logs_html]

    def _gpu_chart(self) -> SeriesChart:
        if self.gpu_chart is None:
            self.gpu_chart = SeriesChart(self.t("GPU") + " %", time_axis=True,
                                         direction=self.direction, y_range=PERCENT)
            self.charts.children = [*self.charts.children, self.gpu_chart.widget]
        return self.gpu_chart

    # -- state in ------------------------------------------------------------------------------

    def feed_topics(self) -> set[str]:
        return {"monitoring", "alerts", "logs"}

    def refresh(self) -> None:
        if self.client is None:
            return
        self.load_history(self.client.get("monitoring/metrics", params={
            "names": ",".join(HISTORY_NAMES), "since": -self.window, "max_points": 600}))
        self.load_alerts(self.client.get("monitoring/alerts"))
        self.load_logs(self.client.get("monitoring/logs", params={"tail": 50})["records"])

    def load_history(self, data: dict[str, Any]) -> None:
        """Fill the window from ``GET monitoring/metrics`` (at start and after a drop)."""
        keys = {"cpu_percent": "cpu", "memory_percent": "memory",
                "network_rx_bytes_per_second": "rx", "network_tx_bytes_per_second": "tx"}
        with self._lock:
            for series in data.get("series", []):
                name = series["name"]
                key = keys.get(name)
                if key is None and name == "gpu_utilization_percent":
                    key = f"gpu{(series.get('labels') or {}).get('gpu', '0')}"
                if key is None:
                    continue
                merged = dict(self.history.get(key, ()))
                merged.update(zip(series["t"], series["value"], strict=False))
                self.history[key] = deque(sorted(merged.items()))
            self._trim(time.time())
            self._draw_charts(None)

    def load_alerts(self, data: dict[str, Any]) -> None:
        with self._lock:
            for alert in [*data.get("recent", []), *data.get("active", [])]:
                self.alerts[alert["id"]] = alert
            self._draw_alerts()

    def load_logs(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            for record in records:
                self._add_log(record)
            self._draw_logs()

    def _add_log(self, record: dict[str, Any]) -> None:
        """Keep a record once (REST reads and replayed events may both bring it)."""
        key = (record.get("ts"), record.get("source"), record.get("message"))
        if key in self._log_keys:
            return
        if len(self._log_keys) > 4 * LOG_LINES:
            self._log_keys = {(r.get("ts"), r.get("source"), r.get("message"))
                              for r in self.log_records}
        self._log_keys.add(key)
        self.log_records.append(record)

    def on_resync(self, reset: bool) -> None:
        """After a drop the replay brings alerts and logs; samples are refilled over REST."""
        if self.client is None:
            return
        if reset:
            self.refresh()
            return
        self.load_history(self.client.get("monitoring/metrics", params={
            "names": ",".join(HISTORY_NAMES), "since": -self.window, "max_points": 600}))

    def on_events(self, events: list[Event]) -> None:
        samples, alerts, logs = [], False, False
        with self._lock:
            for event in events:
                data = (event.data or {}).get("data")
                if event.event == "sample" and isinstance(data, dict):
                    samples.append(data)
                elif event.event == "alert" and isinstance(data, dict) and data.get("id"):
                    self.alerts[data["id"]] = data
                    alerts = True
                elif event.event == "log" and isinstance(data, dict):
                    self._add_log(data)
                    logs = True
            for sample in samples:
                self.add_sample(sample)
            if samples:
                self._trim(time.time())
                self._draw_charts(samples[-1])
            if alerts:
                self._draw_alerts()
            if logs:
                self._draw_logs()

    def add_sample(self, sample: dict[str, Any]) -> None:
        ts = float(sample.get("ts") or time.time())
        self.samples += 1
        for key, value in sample_values(sample).items():
            series = self.history.setdefault(key, deque())
            if series and series[-1][0] >= ts:
                continue  # a sample the history already holds
            series.append((ts, value))

    def _trim(self, now: float) -> None:
        start = now - self.window
        for series in self.history.values():
            while series and series[0][0] < start:
                series.popleft()

    # -- widgets out ---------------------------------------------------------------------------

    def _series(self, key: str) -> tuple[list[float], list[float | None]]:
        points = self.history.get(key) or ()
        return [p[0] for p in points], [p[1] for p in points]

    def set_shown(self, shown: bool) -> None:
        super().set_shown(shown)
        if shown:  # catch up with what arrived while away
            with self._lock:
                self._draw_charts(self._last_sample)

    def _draw_charts(self, last: dict[str, Any] | None) -> None:
        if last is not None:
            self._last_sample = last
        if not self.shown:
            return  # the history is kept; the charts are drawn when shown again
        self.cpu_chart.set("cpu", *self._series("cpu"))
        self.memory_chart.set("memory", *self._series("memory"))
        self.network_chart.set("rx", *self._series("rx"))
        self.network_chart.set("tx", *self._series("tx"))
        gpus = sorted(k for k in self.history if k.startswith("gpu"))
        for key in gpus:
            self._gpu_chart().set(key, *self._series(key))
        self._draw_gpu_note(gpus, (last or self._last_sample or {}).get("gpu_status") or {})
        if last is not None:
            cpu = (last.get("cpu") or {}).get("percent")
            mem = last.get("memory") or {}
            used = mem.get("used_bytes")
            self.summary.value = (
                f'<div class="nb-muted nb-summary">{esc(self.t("CPU"))} {esc(cpu)}% · '
                f'{esc(self.t("Memory"))} {esc(mem.get("percent"))}%'
                f'{" (" + esc(human_bytes(used)) + ")" if used is not None else ""}</div>')

    def _draw_gpu_note(self, gpus: list[str], status: dict[str, Any]) -> None:
        """One line instead of a GPU chart: why there is none (nothing before the first
        sample says, nor while GPUs are announced and their first sample is on its way)."""
        if gpus or not status or status.get("available") or status.get("count"):
            text = ""
        else:
            text = f'{self.t("GPU")}: {status.get("reason") or self.t("none on this machine")}'
        value = f'<div class="nb-muted" title="{esc(text)}">{esc(text)}</div>' if text else ""
        if self.gpu_note.value != value:
            self.gpu_note.value = value
            self.gpu_note.layout.display = "block" if text else "none"

    def _draw_alerts(self) -> None:
        shown = sorted(self.alerts.values(), key=lambda a: a.get("updated") or 0, reverse=True)
        shown = [a for a in shown if a.get("state") != "inactive"][:20]
        if not shown:
            self.alerts_html.value = '<div class="nb-muted nb-no-alerts">no alerts</div>'
            return
        rows = [[f'<span class="nb-state nb-alert-{esc(a.get("state"))}">'
                 f'{esc(a.get("state"))}</span>', esc(a.get("severity")), esc(a.get("rule")),
                 esc(a.get("message"))] for a in shown]
        self.alerts_html.value = table(["state", "severity", "rule", "message"], rows,
                                       classes="nb-alerts")

    def _draw_logs(self) -> None:
        lines = []
        for record in list(self.log_records)[-LOG_LINES:]:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.get("ts") or 0))
            level = str(record.get("level") or "info")
            lines.append(f'<span class="nb-level-{esc(level)}">{stamp} {esc(level):<7} '
                         f'{esc(record.get("source"))}: {esc(record.get("message"))}</span>')
        self.logs_html.value = f'<pre class="nb-log nb-logs">{chr(10).join(lines)}</pre>'
