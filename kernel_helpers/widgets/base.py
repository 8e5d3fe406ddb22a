"""What every panel shares: options, the live feed, the connection indicator, actions."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from ..client import ApiError, Client
from ..sse import Event
from .connection import WATCH_JS, ConnectionIndicator
from .context import actions_allowed
from .fmt import esc
from .i18n import Labels
from .live import LiveFeed
from .theme import root_classes, style_widget

__all__ = ["Panel"]


class Panel(w.VBox):
    """A panel: a ``VBox`` with a title, a connection indicator and a message line.

    ``client``: the server (found from the kernel's environment by default);
    ``feed``: a shared ``LiveFeed`` (a panel alone makes its own); ``direction``:
    ``"ltr"`` or ``"rtl"``; ``lang``/``labels``: the texts shown; ``actions``: allow
    start, stop, delete (default: yes in a notebook, in Voila only when the server
    allows it); ``live=False``: no server at all (state is given with ``load``/``apply``);
    ``defer``: read the first state in a background thread.
    """

    title = "Panel"

    def __init__(self, *, client: Client | None = None, feed: LiveFeed | None = None,
                 direction: str = "ltr", lang: str | None = None,
                 labels: Mapping[str, str] | None = None, actions: bool | None = None,
                 live: bool = True, embedded: bool = False, defer: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.t = Labels(lang, labels)
        self.direction = direction
        self.lang = lang
        self.embedded = embedded
        self.shown = True  # on screen (a dashboard's other tabs are not)
        self._button_style: w.ButtonStyle | None = None
        self.actions = actions_allowed() if actions is None else bool(actions)
        self.client = client if client is not None or not live else Client()
        self._lock = threading.RLock()
        self._own_feed = feed is None and live
        self.feed = LiveFeed(self.client) if self._own_feed else feed
        self.indicator = ConnectionIndicator(self.t)
        self.message = w.HTML()
        self.message.add_class("nb-message")
        for cls in root_classes(direction):
            self.add_class(cls)
        self.add_class(f"nb-panel-{type(self).__name__.lower()}")
        if live and self._own_feed:
            self.feed.mark()  # before any state is read: the stream resumes from here
        body = self.build()
        header: list[w.Widget] = []
        if not embedded:
            header = [style_widget(),
                      w.HBox([self.heading(self.t(self.title)), self.indicator.widget],
                             layout=w.Layout(justify_content="space-between",
                                             align_items="center"))]
        self.children = [*header, *body, self.message]
        if live:
            if defer:  # read the state in the background: the panel shows at once
                threading.Thread(target=self._first_load, daemon=True,
                                 name=f"notebench-load-{type(self).__name__}").start()
            else:
                self.refresh()
            self.feed.subscribe(self)
            if self._own_feed and self.feed.wanted_topics():
                self.feed.start()
        if self._own_feed and not self.feed.wanted_topics():
            self.indicator.widget.layout.display = "none"  # nothing live to speak of

    # -- for subclasses ----------------------------------------------------------------------

    def build(self) -> list[w.Widget]:
        """The panel's widgets (called once, before any data arrives)."""
        return []

    def refresh(self) -> None:
        """Read the panel's state over REST (at start, after a reset or a reconnection)."""

    def feed_topics(self) -> set[str]:
        return set()

    def on_events(self, events: list[Event]) -> None:
        """Apply events of the panel's topics (one batch, on the feed's thread)."""

    def _first_load(self) -> None:
        self.say("loading…")
        try:
            self.refresh()
        except (ApiError, OSError, ValueError) as exc:
            self.say(str(exc), error=True)
            return
        self.say("")

    def set_shown(self, shown: bool) -> None:
        """Whether the panel is on screen; panels may skip drawing while it is not."""
        self.shown = shown

    # -- feed listener -----------------------------------------------------------------------

    def on_status(self, status: str, detail: dict[str, Any]) -> None:
        self.indicator.set(status, detail)

    def on_resync(self, reset: bool) -> None:
        """After a drop the replay from the last id brings what was missed; a ``reset``
        (the id is older than the server keeps) means reading the state again."""
        if reset:
            self.refresh()

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def heading(text: str) -> w.HTML:
        return w.HTML(f'<div class="nb-title">{esc(text)}</div>')

    def button(self, text: str, on_click: Callable[[], Any], *, action: bool = True,
               style: str = "", tooltip: str = "") -> w.Button:
        """A button; an action button is left out (hidden) when actions are not allowed."""
        if self._button_style is None:  # one style widget for all the panel's buttons
            self._button_style = w.ButtonStyle()
        button = w.Button(description=self.t(text), button_style=style, tooltip=tooltip,
                          layout=w.Layout(width="auto"), style=self._button_style)
        button.add_class(f"nb-btn-{text.lower().replace(' ', '-')}")
        if action and not self.actions:
            button.layout.display = "none"
            button.disabled = True
        button.on_click(lambda _b: self.act(on_click, action=action))
        return button

    def act(self, fn: Callable[[], Any], *, action: bool = True) -> Any:
        """Run a button's work; refusals and API errors become the message line."""
        if action and not self.actions:
            self.say(self.t("read-only") + ": this page does not allow actions", error=True)
            return None
        try:
            result = fn()
        except ApiError as exc:
            self.say(f"{exc.code}: {exc.message}", error=True)
            return None
        except (OSError, ValueError) as exc:
            self.say(str(exc), error=True)
            return None
        return result

    def say(self, text: str, *, error: bool = False) -> None:
        cls = "nb-error" if error else "nb-note"
        self.message.value = f'<div class="{cls}">{esc(text)}</div>' if text else ""

    def api_path(self, path: str) -> str:
        """A browser link (path only, so proxies keep working) to an API route."""
        base = urllib.parse.urlsplit(self.client.url).path if self.client else "/"
        base = base or "/"
        return f"{base}notebench/api/{path.lstrip('/')}"

    def close(self) -> None:
        if self.feed is not None:
            self.feed.unsubscribe(self)
            if self._own_feed:
                self.feed.stop()
        super().close()

    def _ipython_display_(self) -> None:
        from IPython.display import Javascript, display

        display(Javascript(WATCH_JS))
        display(self._repr_mimebundle_(), raw=True)
