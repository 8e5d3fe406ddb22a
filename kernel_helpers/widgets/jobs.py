"""``ActiveJobs``: a row per job, live from the stream, with pause/resume/stop and details."""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as w
from ipywidgets.widgets.widget_int import ProgressStyle
from ipywidgets.widgets.widget_string import HTMLStyle

from ..jobprotocol import (
    FAILED,
    JOBS_TOPIC,
    PAUSED,
    RUNNING,
    STATES,
    SUCCEEDED,
    TERMINAL,
    decode_number,
    job_topic,
)
from ..sse import Event
from .base import Panel
from .fmt import duration, esc, number
from .job_detail import JobDetail, placement

__all__ = ["LIVE", "ActiveJobs", "headline_value", "job_fraction"]

#: the states of jobs not yet ended (queued ones included): listed first, followed live
LIVE = frozenset(STATES) - TERMINAL
COLUMNS = ("Name", "State", "Progress", "ETA", "Epoch", "Loss", "Accuracy", "Duration",
           "Artifacts")


def job_fraction(job: dict[str, Any]) -> float:
    """How far a job is, 0..1: the server's ``progress.fraction`` (0 while unknown)."""
    fraction = (job.get("progress") or {}).get("fraction")
    return float(fraction) if isinstance(fraction, (int, float)) else 0.0


def headline_value(job: dict[str, Any], kind: str) -> Any:
    """The value of the server's headline metric ``kind`` (``loss``, ``accuracy``), or None."""
    metric = (job.get("headline") or {}).get(kind)
    return decode_number(metric.get("value")) if isinstance(metric, dict) else None


class _Row:
    """The widgets of one job's row."""

    def __init__(self, panel: ActiveJobs, job_id: str) -> None:
        self.job_id = job_id
        self.t = panel.t
        self.name = panel.cell()
        self.state = panel.cell()
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0,
                                        layout=panel.shared["bar_layout"],
                                        style=panel.shared["bar_style"])
        self.numbers = {key: panel.cell() for key in COLUMNS[3:]}
        self.pause = panel.button("Pause", lambda: panel.control(job_id, "pause"))
        self.resume = panel.button("Resume", lambda: panel.control(job_id, "resume"))
        self.stop = panel.button("Stop", lambda: panel.control(job_id, "stop"),
                                 style="danger")
        self.details = panel.button("Details", lambda: panel.show_details(job_id),
                                    action=False)
        cells = [self._cell(self.name, "name"), self._cell(self.state, "state"),
                 self._cell(self.progress, "progress")]
        cells += [self._cell(widget, "num") for widget in self.numbers.values()]
        self.box = w.HBox([*cells, self.pause, self.resume, self.stop, self.details],
                          layout=panel.shared["row_layout"])
        self.box.add_class("nb-row")
        self.box.add_class("nb-job-row")
        self.box.add_class(f"nb-job-{job_id}")

    @staticmethod
    def _cell(widget: w.Widget, kind: str) -> w.Widget:
        widget.add_class("nb-cell")
        widget.add_class(f"nb-cell-{kind}")
        return widget

    def show(self, job: dict[str, Any], latest: dict[str, Any], actions: bool) -> None:
        state = str(job.get("state"))
        progress = job.get("progress") or {}
        where = placement(job)
        title = job["id"] + (f" · {self.t('runs on')} {where['where']}" if where else "")
        self.name.value = f'<span title="{esc(title)}">{esc(job.get("name"))}</span>'
        self.state.value = f'<span class="nb-state nb-state-{esc(state)}">{esc(state)}</span>'
        # never backwards: cell progress gives way to step progress once steps are reported
        self.progress.value = max(self.progress.value, job_fraction(job))
        self.progress.bar_style = {SUCCEEDED: "success", FAILED: "danger",
                                   PAUSED: "warning"}.get(state, "info")
        epoch = progress.get("epoch", latest.get("epoch"))
        values = {
            "ETA": duration(progress.get("eta_seconds")) if state in LIVE else "-",
            "Epoch": number(epoch, 6),
            "Loss": number(headline_value(job, "loss")),
            "Accuracy": number(headline_value(job, "accuracy")),
            "Duration": duration(_elapsed(job)),
            "Artifacts": str(job.get("artifact_count") or 0),
        }
        for key, widget in self.numbers.items():
            widget.value = f'<span class="nb-{key.lower()}">{esc(values[key])}</span>'
        self.pause.layout.display = "" if actions and state == RUNNING else "none"
        self.resume.layout.display = "" if actions and state == PAUSED else "none"
        self.stop.layout.display = "" if actions and state in (RUNNING, PAUSED) else "none"


def _elapsed(job: dict[str, Any]) -> float | None:
    seconds = job.get("duration")
    if job.get("state") == RUNNING and isinstance(seconds, (int, float)):
        seen = job.get("_seen_at")
        if isinstance(seen, (int, float)):
            seconds += max(0.0, time.time() - seen)
    return seconds


class ActiveJobs(Panel):
    """Running, queued and recent jobs; a click on Details opens metrics, log and model."""

    title = "Active jobs"

    def __init__(self, *, recent: int = 8, **kwargs: Any) -> None:
        self.recent = recent
        self.jobs: dict[str, dict[str, Any]] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, _Row] = {}
        # Cells whose own layout and style never change share one of each: a row is 18
        # widgets instead of 41, which the kernel, the server and the page all feel.
        self.shared: dict[str, w.Widget] = {
            "cell_layout": w.Layout(), "cell_style": HTMLStyle(),
            "bar_layout": w.Layout(width="auto"), "bar_style": ProgressStyle(),
            "row_layout": w.Layout()}
        super().__init__(**kwargs)

    def cell(self, value: str = "") -> w.HTML:
        """An HTML cell of the table (with the shared layout and style)."""
        return w.HTML(value, layout=self.shared["cell_layout"],
                      style=self.shared["cell_style"])

    def build(self) -> list[w.Widget]:
        head = [self.cell(esc(self.t(c))) for c in COLUMNS]
        kinds = ["name", "state", "progress"] + ["num"] * (len(COLUMNS) - 3)
        for widget, kind in zip(head, kinds, strict=True):
            widget.add_class("nb-cell")
            widget.add_class(f"nb-cell-{kind}")
        self.header_row = w.HBox(head)
        self.header_row.add_class("nb-row")
        self.header_row.add_class("nb-head")
        self.table = w.VBox()
        self.table.add_class("nb-jobs-rows")
        self.empty = w.HTML(f'<div class="nb-muted">{esc(self.t("No jobs yet."))}</div>')
        grid = w.VBox([self.header_row, self.table, self.empty])
        grid.add_class("nb-jobs-table")
        self.detail = JobDetail(self.client, direction=self.direction, labels=self.t,
                                api_path=self.api_path, make_button=self.button)
        self.detail.on_cloned = self.upsert
        if not self.actions:
            self.detail.clone_box.layout.display = "none"
        return [grid, self.detail.widget]

    # -- state in ------------------------------------------------------------------------------

    def refresh(self) -> None:
        if self.client is None:
            return
        page = self.client.get("lifecycle/jobs", params={"limit": 50})
        self.load(page["jobs"])

    def load(self, jobs: list[dict[str, Any]]) -> None:
        """Replace the known jobs (as ``GET lifecycle/jobs`` gives them)."""
        with self._lock:
            for job in jobs:
                self._store(job)
            self._redraw()

    def upsert(self, job: dict[str, Any]) -> None:
        with self._lock:
            self._store(job)
            self._redraw()

    def _store(self, job: dict[str, Any]) -> None:
        job = {**job, "_seen_at": time.time()}
        self.jobs[job["id"]] = job
        latest = self.latest.setdefault(job["id"], {})
        latest.update(job.get("latest_metrics") or {})

    def feed_topics(self) -> set[str]:
        with self._lock:
            active = {job_topic(i) for i, j in self.jobs.items() if j.get("state") in LIVE}
        if self.detail.job_id:
            active.add(job_topic(self.detail.job_id))
        return {JOBS_TOPIC, *active}

    def on_events(self, events: list[Event]) -> None:
        topics_before = self.feed_topics()
        detail_events = []
        with self._lock:
            for event in events:
                data = (event.data or {}).get("data") or {}
                job_id = data.get("job_id")
                if isinstance(data.get("job"), dict):
                    self._store(data["job"])
                elif event.event == "progress" and job_id in self.jobs:
                    self.jobs[job_id]["progress"] = {**(self.jobs[job_id].get("progress") or {}),
                                                     **(data.get("progress") or {})}
                elif event.event == "metrics" and job_id:
                    self.latest.setdefault(job_id, {}).update(data.get("latest") or {})
                    if job_id in self.jobs and isinstance(data.get("headline"), dict):
                        self.jobs[job_id]["headline"] = data["headline"]
                elif event.event == "purged" and job_id:
                    self.jobs.pop(job_id, None)
                if job_id and job_id == self.detail.job_id and event.topic != JOBS_TOPIC:
                    detail_events.append(event)
            self._redraw()
            if detail_events:
                self.detail.apply(detail_events)
        if self.feed is not None and self.feed_topics() != topics_before:
            self.feed.topics_changed()

    # -- widgets out ---------------------------------------------------------------------------

    def visible_ids(self) -> list[str]:
        by_time = sorted(self.jobs.values(), key=lambda j: j.get("created") or 0, reverse=True)
        active = [j["id"] for j in by_time if j.get("state") in LIVE and not j.get("trashed_at")]
        ended = [j["id"] for j in by_time if j.get("state") not in LIVE
                 and not j.get("trashed_at")]
        return active + ended[: self.recent]

    def _redraw(self) -> None:
        ids = self.visible_ids()
        for job_id in ids:
            row = self.rows.get(job_id)
            if row is None:
                row = self.rows[job_id] = _Row(self, job_id)
            row.show(self.jobs[job_id], self.latest.get(job_id, {}), self.actions)
        boxes = tuple(self.rows[i].box for i in ids)
        if self.table.children != boxes:
            self.table.children = boxes
        self.empty.layout.display = "none" if ids else ""
        if self.detail.job_id in self.jobs:
            self.detail.update_job(self.jobs[self.detail.job_id])

    # -- actions -------------------------------------------------------------------------------

    def control(self, job_id: str, action: str) -> dict[str, Any] | None:
        if not self.actions or self.client is None:
            return None
        job = self.client.post(f"lifecycle/jobs/{job_id}/control", json={"action": action})
        self.upsert(job)
        return job

    def show_details(self, job_id: str) -> None:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            return
        if self.detail.job_id == job_id and self.detail.widget.layout.display != "none":
            self.detail.close()
        else:
            self.detail.open(job)
        if self.feed is not None:
            self.feed.topics_changed()
