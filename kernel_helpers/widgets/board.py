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
        shared = {**self._shared, "client": self.client, "feed": self.feed,
                  "actions": self.actions, "live": self.client is not None}
        for index, cls in enumerate(self.panel_types):
            extra = self.panel_options.get(cls.__name__, {})
            # the first tab reads its state now; the others in the background
            self.panels[cls.__name__] = cls(embedded=True, defer=index > 0, **shared, **extra)
        self.tabs = w.Tab(children=list(self.panels.values()),
                          titles=tuple(self.t(p.title) for p in self.panels.values()))
        self.tabs.add_class("nb-dashboard-tabs")
        self.add_class("nb-dashboard")
        return [self.tabs]

    def __getitem__(self, name: str) -> Panel:
        return self.panels[name]

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
