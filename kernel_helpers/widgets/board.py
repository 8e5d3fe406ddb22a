"""``Dashboard``: every panel in tabs on one live feed; ``dashboard()`` and ``show()``."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from .assets import AssetsPanel
from .base import Panel
from .compare import CompareRuns
from .context import page_options
from .hardware import HardwarePanel
from .jobs import ActiveJobs
from .monitoring import MonitoringDashboard
from .quickstart import QuickStart

__all__ = ["PANELS", "Dashboard", "dashboard", "show"]

PANELS: tuple[type[Panel], ...] = (ActiveJobs, QuickStart, MonitoringDashboard, AssetsPanel,
                                   HardwarePanel, CompareRuns)
SHARED = ("client", "feed", "direction", "lang", "labels", "actions", "live")


class Dashboard(Panel):
    """Active jobs, quick start, monitoring, assets, hardware and compare, as tabs.

    Options are those of every panel (``direction``, ``lang``, ``actions``...);
    ``panels`` picks and orders the tabs; ``options`` gives one panel its own keyword
    arguments (``{"QuickStart": {"defaults": {...}}}``).
    """

    title = "Dashboard"

    def __init__(self, *, panels: tuple[type[Panel], ...] = PANELS,
                 options: dict[str, dict[str, Any]] | None = None, **kwargs: Any) -> None:
        self.panel_types = panels
        self.panel_options = options or {}
        self.panels: dict[str, Panel] = {}
        self._shared = {k: v for k, v in kwargs.items() if k in SHARED}
        super().__init__(**kwargs)

    def build(self) -> list[w.Widget]:
        # A tab's panel is made when the tab is first shown (the page appears sooner). The
        # panels of other tabs stay on the page with no height rather than hidden: a chart
        # that loses its width (display: none, or a removed view) draws with negative sizes.
        self.bar = w.ToggleButtons(options=[(self.t(c.title), i)
                                            for i, c in enumerate(self.panel_types)],
                                   value=0, style={"button_width": "auto"})
        self.bar.add_class("nb-dashboard-tabs")
        slot_layout = w.Layout(width="100%")  # shared: a slot's own layout never changes
        self.slots = [w.Box(layout=slot_layout) for _ in self.panel_types]
        for slot in self.slots:
            slot.add_class("nb-slot")
        self.stage = w.VBox(self.slots, layout=w.Layout(width="100%"))
        self.stage.add_class("nb-stage")
        self.add_class("nb-dashboard")
        self.bar.observe(lambda change: self.show_tab(change["new"]), names="value")
        self.show_tab(0, defer=False)
        return [self.bar, self.stage]

    @property
    def selected(self) -> int:
        return int(self.bar.value)

    def show_tab(self, index: int | None, *, defer: bool = True) -> None:
        panel = self.open_tab(index, defer=defer)
        for slot_index, slot in enumerate(self.slots):
            shown = slot_index == index
            if shown and panel is not None and not slot.children:
                slot.children = (panel,)
            if shown:
                slot.remove_class("nb-offstage")
            else:
                slot.add_class("nb-offstage")
            for child in slot.children:
                if isinstance(child, Panel):
                    child.set_shown(shown)

    def open_tab(self, index: int | None, *, defer: bool = True) -> Panel | None:
        """Make the panel of tab ``index`` if it is not made yet (its state loads in the
        background unless ``defer`` is false)."""
        if index is None or not 0 <= index < len(self.panel_types):
            return None
        cls = self.panel_types[index]
        panel = self.panels.get(cls.__name__)
        if panel is None:
            shared = {**self._shared, "client": self.client, "feed": self.feed,
                      "actions": self.actions, "live": self.client is not None}
            extra = self.panel_options.get(cls.__name__, {})
            panel = cls(embedded=True, defer=defer, **shared, **extra)
            self.panels[cls.__name__] = panel
        return panel

    def __getitem__(self, name: str) -> Panel:
        """A panel by class name (made now if its tab was not shown yet)."""
        for index, cls in enumerate(self.panel_types):
            if cls.__name__ == name:
                panel = self.open_tab(index, defer=False)
                assert panel is not None
                if not self.slots[index].children:
                    self.slots[index].children = (panel,)
                    panel.set_shown(index == self.selected)
                return panel
        raise KeyError(name)

    def close(self) -> None:
        for panel in self.panels.values():
            panel.close()
        super().close()


def show(panel: type[Panel] = Dashboard, **options: Any) -> None:
    """Display a panel with the page's options (a Voila page's ``?direction=rtl&lang=fa``)."""
    from IPython.display import display

    display(panel(**{**page_options(), **options}))


def dashboard(**options: Any) -> None:
    """Display the unified dashboard (``Dashboard(**options)``)."""
    show(Dashboard, **options)
