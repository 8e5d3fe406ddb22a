"""One job in detail: where it runs (a remote job), its metrics chart, log tail, live output
link, model and clone form."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ..client import Client
from ..sse import Event
from .charts import SeriesChart
from .fmt import esc

__all__ = ["JobDetail", "parse_value", "placement", "runs_on_html"]

LOG_LINES = 80


def parse_value(text: str) -> Any:
    """A form field's text as a parameter value: JSON when it parses, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def placement(job: dict[str, Any]) -> dict[str, Any] | None:
    """Where a remote job runs (``processes.runner`` of a job on a Dask cluster):
    ``{"where": host or worker address, "worker", "gpus"}``; None for a local job or one
    not on a worker yet."""
    runner = (job.get("processes") or {}).get("runner") or {}
    if runner.get("executor") != "dask":
        return None
    worker = runner.get("worker") if isinstance(runner.get("worker"), str) else None
    where = runner.get("host") if isinstance(runner.get("host"), str) else None
    if not (where or worker):
        return None
    uuids = runner.get("gpu_uuids")
    return {"where": where or worker, "worker": worker,
            "gpus": [str(u) for u in uuids] if isinstance(uuids, list) else []}


def runs_on_html(job: dict[str, Any], labels: Callable[[str], str]) -> str:
    """"runs on <host>" (its GPUs' UUIDs along) for a remote job; empty for a local one."""
    where = placement(job)
    if where is None:
        return ""
    gpus = (f' · {esc(labels("GPUs"))}: <code>{esc(", ".join(where["gpus"]))}</code>'
            if where["gpus"] else "")
    return (f'<div class="nb-muted nb-runs-on" title="{esc(where["worker"] or "")}">'
            f'{esc(labels("runs on"))} {esc(where["where"])}{gpus}</div>')


class JobDetail:
    """The detail area of ``ActiveJobs`` (``widget``); follows ``job:<id>`` while open."""

    def __init__(self, client: Client | None, *, direction: str, labels: Callable[[str], str],
                 api_path: Callable[[str], str], make_button: Callable[..., w.Button]) -> None:
        self.client = client
        self.direction = direction
        self.t = labels
        self.api_path = api_path
        self.job_id: str | None = None
        self.job: dict[str, Any] = {}
        self.series: dict[str, dict[int, float | None]] = {}
        self.log_lines: list[str] = []
        self.header = w.HTML()
        self._chart: SeriesChart | None = None  # made on first open (bqplot loads then)
        self.log = w.HTML()
        self.links = w.HTML()
        self.clone_fields = w.VBox()
        self.clone_button = make_button("Clone with edits", self.clone, style="primary")
        self.clone_box = w.VBox([self.clone_fields, self.clone_button])
        # empty until opened: a chart drawn while hidden has no size to draw in
        self.widget = w.VBox(layout=w.Layout(display="none"))
        self.widget.add_class("nb-job-detail")
        self.on_cloned: Callable[[dict[str, Any]], None] | None = None

    @property
    def chart(self) -> SeriesChart:
        if self._chart is None:
            self._chart = SeriesChart(self.t("Metrics"), direction=self.direction,
                                      height="240px")
        return self._chart

    # -- opening -------------------------------------------------------------------------------

    def open(self, job: dict[str, Any]) -> None:
        """Show ``job``: read its metrics and log tail over REST."""
        self.job_id = job["id"]
        self.job = job
        self.series = {}
        self.log_lines = []
        if self.client is not None:
            data = self.client.get(f"lifecycle/jobs/{job['id']}/metrics",
                                   params={"max_points": 500})
            for series in data.get("series", []):
                self.series[series["name"]] = {b["x_last"]: b["last"] for b in series["buckets"]}
            records = self.client.get(f"lifecycle/jobs/{job['id']}/logs",
                                      params={"tail": LOG_LINES})["records"]
            self.log_lines = [r["message"] for r in records]
        self._clone_form(job)
        self.render()
        if not self.widget.children:
            self.widget.children = [self.header, self.chart.widget, self.links, self.log,
                                    self.clone_box]
        self.widget.layout.display = "flex"

    def close(self) -> None:
        self.job_id = None
        self.widget.layout.display = "none"

    # -- live ----------------------------------------------------------------------------------

    def apply(self, events: list[Event]) -> None:
        for event in events:
            data = (event.data or {}).get("data") or {}
            if event.event == "metrics":
                for point in data.get("points", []):
                    step = point.get("step")
                    for name, value in (point.get("metrics") or {}).items():
                        values = self.series.setdefault(name, {})
                        values[step if step is not None else len(values)] = value
            elif event.event == "log":
                self.log_lines.extend(data.get("lines") or [])
            elif isinstance(data.get("job"), dict):
                self.job = data["job"]
        self.log_lines = self.log_lines[-LOG_LINES:]
        self.render()

    def update_job(self, job: dict[str, Any]) -> None:
        self.job = job
        self._render_header()  # the placement comes with the worker's first contact
        self._render_links()

    # -- drawing -------------------------------------------------------------------------------

    def render(self) -> None:
        self._render_header()
        names = sorted(self.series)
        for name in names:
            steps = sorted(self.series[name])
            self.chart.set(name, steps, [self.series[name][s] for s in steps])
        self.chart.remove_others(names)
        lines = "\n".join(esc(line) for line in self.log_lines)
        self.log.value = f'<pre class="nb-log nb-job-log">{lines}</pre>'
        self._render_links()

    def _render_header(self) -> None:
        job = self.job
        self.header.value = (f'<div class="nb-title">{esc(job.get("name"))} '
                             f'<span class="nb-muted">{esc(job.get("id"))}</span></div>'
                             + runs_on_html(job, self.t))

    def _render_links(self) -> None:
        job = self.job
        if not job:
            return
        output = self.api_path(f"lifecycle/artifacts/{job['id']}/output.ipynb")
        parts = [f'<a class="nb-output-link" href="{esc(output)}" target="_blank">'
                 f'{esc(self.t("Live output"))} (output.ipynb)</a>']
        model = job.get("model")
        if model:
            label = model.get("name") or model.get("asset_id") or "model"
            parts.append(f'{esc(self.t("Model"))}: <code>{esc(label)}</code>')
        if job.get("load_snippet"):
            parts.append(f'<pre class="nb-log nb-load-snippet">{esc(job["load_snippet"])}</pre>')
        self.links.value = "<div>" + "<br>".join(parts) + "</div>"

    # -- clone with edits ---------------------------------------------------------------------

    def _clone_form(self, job: dict[str, Any]) -> None:
        params = job.get("resolved_parameters") or job.get("parameters") or {}
        fields = []
        for name, value in params.items():
            field = w.Text(value=json.dumps(value), description=name,
                           style={"description_width": "initial"},
                           layout=w.Layout(width="auto", max_width="360px"))
            field.add_class(f"nb-param-{name}")
            fields.append(field)
        self.clone_fields.children = fields

    def clone_parameters(self) -> dict[str, Any]:
        """The form's values that differ from the job's."""
        given = self.job.get("resolved_parameters") or self.job.get("parameters") or {}
        edits = {}
        for field in self.clone_fields.children:
            value = parse_value(field.value)
            if given.get(field.description) != value:
                edits[field.description] = value
        return edits

    def clone(self) -> dict[str, Any] | None:
        if self.client is None or self.job_id is None:
            return None
        body: dict[str, Any] = {"from_job": self.job_id}
        edits = self.clone_parameters()
        if edits:
            body["parameters"] = edits
        job = self.client.post("lifecycle/jobs", json=body)
        if self.on_cloned is not None:
            self.on_cloned(job)
        return job
