"""Look of the panels: one stylesheet on JupyterLab's CSS variables, and text direction.

JupyterLab and Voila (``?theme=dark``) define the ``--jp-*`` variables of their light
and dark themes; the panels use only those, so they follow the theme. ``direction="rtl"``
lays a panel out right to left (labels, tables, buttons, the value axis on the right);
charts keep time running left to right.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DIRECTIONS", "STYLE", "root_classes", "style_widget"]

DIRECTIONS = ("ltr", "rtl")

STYLE = """
<style>
.nb-root { font-family: var(--jp-ui-font-family); font-size: var(--jp-ui-font-size1);
  color: var(--jp-ui-font-color1); background: var(--jp-layout-color0);
  container-type: inline-size; box-sizing: border-box; width: 100%; min-width: 0;
  padding: 4px; }
.nb-root * { box-sizing: border-box; }
.nb-root.nb-rtl { direction: rtl; text-align: right; }
.nb-root .widget-label, .nb-root .widget-html-content { color: var(--jp-ui-font-color1); }
.nb-root.nb-rtl .widget-label, .nb-root.nb-rtl .widget-html-content { direction: rtl;
  text-align: right; }
.nb-title { font-size: var(--jp-ui-font-size2); font-weight: 600; margin: 2px 0 6px; }
.nb-muted { color: var(--jp-ui-font-color2); }
.nb-note { color: var(--jp-ui-font-color2); font-size: var(--jp-ui-font-size0); }
.nb-error { color: var(--jp-error-color1); }
.nb-table { border-collapse: collapse; width: 100%; font-size: var(--jp-ui-font-size1); }
.nb-table th { background: var(--jp-layout-color2); color: var(--jp-ui-font-color1);
  font-weight: 600; text-align: start; }
.nb-table th, .nb-table td { border-bottom: 1px solid var(--jp-border-color2);
  padding: 3px 6px; text-align: start; vertical-align: top; overflow-wrap: anywhere; }
.nb-table tr.nb-differs td { background: var(--jp-warn-color3); }
.nb-table code, .nb-code { font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size); }
.nb-state { border-radius: 8px; padding: 0 6px; white-space: nowrap;
  background: var(--jp-layout-color3); color: var(--jp-ui-font-color1); }
.nb-state-running { background: var(--jp-info-color2); }
.nb-state-paused, .nb-state-stopping { background: var(--jp-warn-color2); }
.nb-state-succeeded { background: var(--jp-success-color2); }
.nb-state-failed { background: var(--jp-error-color2); }
.nb-row { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 8px;
  border-bottom: 1px solid var(--jp-border-color2); padding: 3px 0; }
.nb-row.nb-head { font-weight: 600; background: var(--jp-layout-color2); }
.nb-cell { flex: 0 0 auto; min-width: 0; }
.nb-cell-name { flex: 1 1 140px; overflow: hidden; text-overflow: ellipsis; }
.nb-cell-progress { flex: 1 1 120px; }
.nb-cell-num { width: 84px; }
.nb-row .widget-button { width: auto; }
.nb-toolbar { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; }
.nb-conn { white-space: nowrap; }
.nb-conn .nb-dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%;
  margin: 0 4px; background: var(--jp-ui-font-color3); vertical-align: middle; }
.nb-conn-live .nb-dot { background: var(--jp-success-color1); }
.nb-conn-reconnecting .nb-dot, .nb-conn-connecting .nb-dot { background: var(--jp-warn-color1); }
.nb-conn-gone .nb-dot { background: var(--jp-error-color1); }
.nb-gone { display: none; color: var(--jp-error-color1); font-weight: 600; }
.nb-root[data-nb-gone] .nb-gone { display: block; }
.nb-root[data-nb-gone] .nb-conn-state { display: none; }
.nb-log { font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size);
  background: var(--jp-layout-color1); color: var(--jp-ui-font-color1); max-height: 220px;
  overflow: auto; white-space: pre-wrap; margin: 0; padding: 4px; direction: ltr;
  text-align: left; }
.nb-log .nb-level-warning { color: var(--jp-warn-color1); }
.nb-log .nb-level-error, .nb-log .nb-level-critical { color: var(--jp-error-color1); }
.nb-chart { direction: ltr; min-width: 0; flex: 1 1 300px; }
.nb-charts { display: flex; flex-wrap: wrap; gap: 4px; }
.nb-chart-figure { min-width: 0; }
.nb-legend { margin: 0; min-width: 0; }
.nb-legend .widget-html-content { line-height: 1.4; }
.nb-legend-items { display: flex; flex-wrap: wrap; justify-content: center; gap: 2px 14px;
  padding: 0 8px 4px; font-size: var(--jp-ui-font-size0); color: var(--jp-ui-font-color1); }
.nb-legend-item { display: inline-flex; align-items: center; gap: 5px; white-space: nowrap; }
.nb-legend-swatch { display: inline-block; width: 16px; height: 3px; border-radius: 2px; }
.nb-gpu-note { min-width: 0; max-width: 100%; margin-bottom: 6px; }
.nb-gpu-note .widget-html-content { min-width: 0; overflow: hidden; }
.nb-gpu-note .nb-muted { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.nb-root .bqplot text, .nb-root .bqplot .tick text { fill: var(--jp-ui-font-color1) !important; }
.nb-root .bqplot .axis path, .nb-root .bqplot .axis line { stroke: var(--jp-border-color1); }
.nb-root .bqplot .mainheading { fill: var(--jp-ui-font-color1) !important;
  font-size: var(--jp-ui-font-size1); font-weight: 600; }
.nb-root .bqplot > svg { background: transparent; }
.nb-root .jupyter-widgets.widget-tab > .lm-TabBar .lm-TabBar-tab {
  color: var(--jp-ui-font-color1); background: var(--jp-layout-color2); }
.nb-stage { position: relative; }
.nb-slot.nb-offstage { position: absolute !important; top: 0; left: -40000px; width: 100%;
  visibility: hidden; pointer-events: none; }
.nb-dashboard-tabs .widget-toggle-button { margin: 0 2px 4px 0; }
@container (max-width: 560px) {
  .nb-cell-num { width: 64px; }
  .nb-cell-name { flex-basis: 100%; }
  .nb-hide-narrow { display: none; }
}
</style>
"""


def style_widget() -> Any:
    """The stylesheet as an ``HTML`` widget (repeating it in several panels is harmless)."""
    import ipywidgets as w

    return w.HTML(STYLE, layout=w.Layout(display="none"))


def root_classes(direction: str) -> list[str]:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    return ["nb-root", "nb-rtl"] if direction == "rtl" else ["nb-root"]
