"""``QuickStart``: a template's parameters as a form, an estimated time, start, recent activity.

Fields are prefilled with the template's defaults, and ``"auto"`` settings with what the
hardware recommendations say (the server resolves them the same way at start).
"""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as w

from ..jobprotocol import JOBS_TOPIC
from ..sse import Event
from .base import Panel
from .fmt import duration, esc, table
from .job_detail import parse_value

__all__ = ["QuickStart", "field_for"]

RECENT = 6


def field_for(param: dict[str, Any], recommended: Any = None) -> w.Widget:
    """A form field for a template parameter (``GET lifecycle/templates``)."""
    name, default = param["name"], param.get("default")
    style = {"description_width": "initial"}
    layout = w.Layout(width="auto", max_width="380px")
    value = recommended if default == "auto" and recommended is not None else default
    types = param.get("types") or []
    if param.get("choices"):
        field: w.Widget = w.Dropdown(options=list(param["choices"]), value=value,
                                     description=name, style=style, layout=layout)
    elif types == ["int"] and isinstance(value, int):
        field = w.IntText(value=value, description=name, style=style, layout=layout)
    elif types == ["float"] and isinstance(value, (int, float)):
        field = w.FloatText(value=float(value), description=name, style=style, layout=layout)
    elif types == ["bool"] and isinstance(value, bool):
        field = w.Checkbox(value=value, description=name, style=style, layout=layout)
    else:
        text = value if isinstance(value, str) else ("" if value is None else repr(value))
        field = w.Text(value=text, description=name, style=style, layout=layout)
    field.add_class(f"nb-param-{name}")
    field.tooltip = param.get("help") or None
    return field


class QuickStart(Panel):
    """Training templates with pre-configured settings, start, and recent activity."""

    title = "Quick start"

    def __init__(self, *, defaults: dict[str, dict[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        self.templates: list[dict[str, Any]] = []
        self.recommended: dict[str, Any] = {}
        self.recent: dict[str, dict[str, Any]] = {}
        self.defaults = defaults or {}  # template -> parameters that override the defaults
        self.fields: dict[str, w.Widget] = {}
        self.started: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def build(self) -> list[w.Widget]:
        t = self.t
        self.template = w.Dropdown(options=[], description=t("Template"),
                                   layout=w.Layout(width="auto", min_width="280px"))
        self.template.observe(lambda _c: self._draw_form(), names="value")
        self.description = w.HTML()
        self.form = w.VBox()
        self.form.add_class("nb-form")
        self.estimate = w.HTML()
        self.start_button = self.button("Start", self.start, style="primary")
        self.recent_html = w.HTML()
        return [self.template, self.description, self.form,
                w.HBox([self.start_button, self.estimate]),
                self.heading(t("Recent activity")), self.recent_html]

    # -- state in ------------------------------------------------------------------------------

    def feed_topics(self) -> set[str]:
        return {JOBS_TOPIC}

    def refresh(self) -> None:
        if self.client is None:
            return
        templates = self.client.get("lifecycle/templates")["templates"]
        settings = self.client.get("hardware/recommendations").get("settings") or {}
        jobs = self.client.get("lifecycle/jobs", params={"limit": RECENT})["jobs"]
        self.load(templates, settings, jobs)

    def load(self, templates: list[dict[str, Any]], settings: dict[str, Any],
             jobs: list[dict[str, Any]]) -> None:
        with self._lock:
            self.templates = templates
            self.recommended = {k: v.get("value") for k, v in settings.items()
                                if isinstance(v, dict)}
            for job in jobs:
                self.recent[job["id"]] = job
            names = [tpl["name"] for tpl in templates]
            if list(self.template.options) != names:
                current = self.template.value
                self.template.options = names
                self.template.value = current if current in names else (names[0] if names
                                                                        else None)
            self._draw_form()
            self._draw_recent()

    def on_events(self, events: list[Event]) -> None:
        with self._lock:
            changed = False
            for event in events:
                data = (event.data or {}).get("data") or {}
                if isinstance(data.get("job"), dict):
                    self.recent[data["job"]["id"]] = data["job"]
                    changed = True
            if changed:
                self._draw_recent()

    # -- widgets out ---------------------------------------------------------------------------

    def selected(self) -> dict[str, Any] | None:
        return next((tpl for tpl in self.templates if tpl["name"] == self.template.value), None)

    def _draw_form(self) -> None:
        template = self.selected()
        if template is None:
            self.form.children = []
            self.description.value = ""
            return
        overrides = self.defaults.get(template["name"], {})
        fields = {}
        for param in template.get("parameters") or []:
            if param["name"] in overrides:
                param = {**param, "default": overrides[param["name"]]}
            fields[param["name"]] = field_for(param, self.recommended.get(param["name"]))
        self.fields = fields
        self.form.children = list(fields.values())
        self.description.value = f'<div class="nb-muted">{esc(template.get("description"))}</div>'
        estimated = template.get("estimated_seconds")
        runs = template.get("runs") or 0
        text = (f"{self.t('Estimated time')}: ~{duration(estimated)} (from {runs} earlier "
                f"run{'s' if runs != 1 else ''})" if estimated else
                f"{self.t('Estimated time')}: no earlier run to go by")
        self.estimate.value = f'<span class="nb-muted nb-estimate">{esc(text)}</span>'

    def _draw_recent(self) -> None:
        jobs = sorted(self.recent.values(), key=lambda j: j.get("updated") or 0,
                      reverse=True)[:RECENT]
        rows = [[esc(j.get("name")),
                 f'<span class="nb-state nb-state-{esc(j.get("state"))}">'
                 f'{esc(j.get("state"))}</span>',
                 esc(time.strftime("%H:%M:%S", time.localtime(j.get("updated") or 0)))]
                for j in jobs]
        self.recent_html.value = table([esc(self.t(h)) for h in ("Name", "State", "")], rows,
                                       classes="nb-recent") if rows else \
            f'<div class="nb-muted">{esc(self.t("No jobs yet."))}</div>'

    # -- actions -------------------------------------------------------------------------------

    def parameters(self) -> dict[str, Any]:
        """The form's values that differ from the template's defaults."""
        template = self.selected() or {}
        params = {p["name"]: p for p in template.get("parameters") or []}
        values = {}
        for name, field in self.fields.items():
            value = field.value
            types = (params.get(name) or {}).get("types") or []
            if isinstance(field, w.Text) and types != ["str"]:
                value = parse_value(value) if value.strip() else None
            if value != (params.get(name) or {}).get("default"):
                values[name] = value
        return values

    def start(self) -> dict[str, Any] | None:
        template = self.selected()
        if template is None or self.client is None:
            return None
        body: dict[str, Any] = {"template": template["name"]}
        params = self.parameters()
        if params:
            body["parameters"] = params
        job = self.client.post("lifecycle/jobs", json=body)
        self.started.append(job)
        with self._lock:
            self.recent[job["id"]] = job
            self._draw_recent()
        self.say(f"{job['name']} ({job['id']}): {job['state']}")
        return job
