"""``CompareRuns``: pick runs or a sweep; overlaid metric curves and the parameter table."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from .base import Panel
from .charts import SeriesChart
from .fmt import esc, number, table

__all__ = ["CompareRuns"]

CHOICES = 50


class CompareRuns(Panel):
    """Runs side by side: one curve per run for the chosen metric; differing parameters marked."""

    title = "Compare runs"

    def __init__(self, **kwargs: Any) -> None:
        self.compared: dict[str, Any] = {}
        self.series: dict[str, Any] = {}
        super().__init__(**kwargs)

    def build(self) -> list[w.Widget]:
        t = self.t
        self.runs = w.SelectMultiple(options=[], description=t("Runs"), rows=6,
                                     layout=w.Layout(width="auto", min_width="280px"))
        self.sweep = w.Dropdown(options=[("—", None)], description=t("Sweep"),
                                layout=w.Layout(width="auto"))
        self.sweep.observe(self._sweep_chosen, names="value")
        self.metric = w.Dropdown(options=[], description=t("Metric"),
                                 layout=w.Layout(width="auto"))
        self.metric.observe(lambda _c: self._draw_chart(), names="value")
        self.compare_button = self.button("Compare", self.compare, action=False,
                                          style="primary")
        self.reload_button = self.button("Refresh", self.refresh, action=False)
        self.chart = SeriesChart(t("Metric"), direction=self.direction, height="260px")
        self.params_html = w.HTML()
        pickers = w.HBox([self.runs, w.VBox([self.sweep, self.metric,
                                             w.HBox([self.compare_button,
                                                     self.reload_button])])])
        pickers.add_class("nb-toolbar")
        return [pickers, self.chart.widget, self.params_html]

    def refresh(self) -> None:
        if self.client is None:
            return
        jobs = self.client.get("lifecycle/jobs", params={"limit": CHOICES})["jobs"]
        sweeps = self.client.get("lifecycle/sweeps").get("sweeps", [])
        self.load_choices(jobs, sweeps)

    def load_choices(self, jobs: list[dict[str, Any]], sweeps: list[dict[str, Any]]) -> None:
        self.runs.options = [(f"{j['name']} · {j['state']} · {j['id']}", j["id"]) for j in jobs]
        self.sweep.options = [("—", None)] + [(s.get("name") or s["id"], s["id"])
                                               for s in sweeps]

    def _sweep_chosen(self, change: dict[str, Any]) -> None:
        sweep_id = change["new"]
        if sweep_id is None or self.client is None:
            return
        jobs = self.client.get("lifecycle/jobs", params={"sweep_id": sweep_id,
                                                         "limit": CHOICES})["jobs"]
        ids = [j["id"] for j in jobs]
        known = {value for _label, value in self.runs.options}
        extra = [(f"{j['name']} · {j['state']} · {j['id']}", j["id"]) for j in jobs
                 if j["id"] not in known]
        if extra:
            self.runs.options = [*self.runs.options, *extra]
        self.runs.value = tuple(ids)
        self.act(self.compare, action=False)

    # -- comparing -----------------------------------------------------------------------------

    def compare(self, ids: list[str] | None = None) -> None:
        ids = list(ids or self.runs.value)
        if not ids or self.client is None:
            self.say("pick runs (or a sweep) to compare")
            return
        joined = ",".join(ids)
        table_data = self.client.get("lifecycle/jobs/compare", params={"ids": joined})
        series = self.client.get("lifecycle/jobs/metrics", params={"ids": joined,
                                                                   "max_points": 300})
        self.load(table_data, series)

    def load(self, compared: dict[str, Any], series: dict[str, Any]) -> None:
        """Show ``GET lifecycle/jobs/compare`` and ``GET lifecycle/jobs/metrics`` answers."""
        with self._lock:
            self.compared = compared
            self.series = series
            metrics = list(compared.get("metrics") or [])
            if list(self.metric.options) != metrics:
                preferred = next((m for m in metrics if "loss" in m), metrics[0] if metrics
                                 else None)
                self.metric.options = metrics
                self.metric.value = preferred
            self._draw_chart()
            self._draw_table()

    def _draw_chart(self) -> None:
        name = self.metric.value
        names = {j["id"]: j["name"] for j in self.compared.get("jobs", [])}
        shown = []
        for run in self.series.get("runs", []):
            for s in run.get("series", []):
                if s["name"] != name:
                    continue
                label = f"{names.get(run['job_id'], run['job_id'])} ({run['job_id'][-4:]})"
                self.chart.set(label, [b["x"] for b in s["buckets"]],
                               [b["last"] for b in s["buckets"]])
                shown.append(label)
        self.chart.remove_others(shown)
        self.chart.figure.title = name or ""

    def _draw_table(self) -> None:
        jobs = self.compared.get("jobs", [])
        headers = [esc(self.t("Name"))] + [esc(j["name"]) + f'<br><span class="nb-muted">'
                                           f'{esc(j["id"])}</span>' for j in jobs]
        rows, classes = [], []
        for param in self.compared.get("parameters", []):
            values = param.get("resolved") or {}
            rows.append([f"<code>{esc(param['name'])}</code>"] +
                        [esc(values.get(j["id"])) for j in jobs])
            classes.append("nb-differs" if param.get("differs") else "")
        for metric in self.compared.get("metrics", []):
            rows.append([f"<b>{esc(metric)}</b> best"] +
                        [esc(number(((j.get("metrics") or {}).get(metric) or {}).get("best")))
                         for j in jobs])
            classes.append("")
        self.params_html.value = table(headers, rows, classes="nb-compare", row_classes=classes)
