"""The connection indicator, and the page-side watch that outlives a dead kernel.

A kernel does not outlive its server (ipykernel exits with its parent), so once the
server goes away nothing in the kernel can update the page. The watch is a few lines of
JavaScript displayed with the panels: it asks the server's ``info`` route every few
seconds and, when the server stops answering or answers as another process (restarted),
marks every panel so that its indicator says the server went away and how to reload.
"""

from __future__ import annotations

from typing import Any

from .fmt import esc
from .i18n import Labels
from .live import GONE, LIVE, RECONNECTING

__all__ = ["GONE_HINT", "WATCH_JS", "ConnectionIndicator"]

GONE_HINT = ("The server went away: this page's live data stopped. Start the server again, "
             "then reload this page.")

WATCH_JS = """
(function () {
  if (window.__notebenchWatch) { return; }
  window.__notebenchWatch = true;
  var base = '/';
  try {
    var cfg = document.getElementById('jupyter-config-data');
    base = JSON.parse(cfg.textContent).baseUrl || '/';
  } catch (e) { /* no page config: the server root */ }
  var url = base.replace(/\\/?$/, '/') + 'notebench/api/info';
  var started = null, misses = 0, gone = false;
  function mark() {
    var roots = document.querySelectorAll('.nb-root');
    for (var i = 0; i < roots.length; i++) { roots[i].setAttribute('data-nb-gone', '1'); }
  }
  function check() {
    if (gone) { mark(); return; }
    // a JupyterHub server checks XSRF on cookie-authenticated API reads too
    var xsrf = (document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]*)/) || [])[1];
    var headers = xsrf ? {'X-XSRFToken': decodeURIComponent(xsrf)} : {};
    var options = {credentials: 'same-origin', cache: 'no-store', headers: headers};
    fetch(url, options).then(function (r) {
      if (!r.ok) { throw new Error('HTTP ' + r.status); }
      return r.json();
    }).then(function (info) {
      misses = 0;
      if (started === null) { started = info.started; }
      else if (info.started !== started) { gone = true; mark(); }
    }).catch(function () {
      misses += 1;
      if (misses >= 2) { gone = true; mark(); }
    });
  }
  check();
  window.__notebenchWatchTimer = setInterval(check, 2000);
})();
"""


class ConnectionIndicator:
    """An ``HTML`` widget showing the live feed's state (live, reconnecting, gone)."""

    def __init__(self, labels: Labels) -> None:
        import ipywidgets as w

        self.labels = labels
        self.widget = w.HTML(self.render("connecting", {}))
        self.widget.add_class("nb-conn-box")
        self.status = "connecting"

    def render(self, status: str, detail: dict[str, Any]) -> str:
        t = self.labels
        text = t(status)
        if status == RECONNECTING and detail.get("attempt"):
            text += f" ({int(detail['attempt'])})"
        title = esc(detail.get("error") or "")
        gone_hint = esc(t(GONE_HINT))
        state_hint = gone_hint if status == GONE else ""
        return (f'<span class="nb-conn nb-conn-{esc(status)}" data-status="{esc(status)}" '
                f'title="{title}"><span class="nb-dot"></span>'
                f'<span class="nb-conn-state">{esc(text)}</span>'
                f'<span class="nb-gone">{gone_hint}</span></span>'
                + (f'<div class="nb-error nb-conn-state">{state_hint}</div>'
                   if state_hint else ""))

    def set(self, status: str, detail: dict[str, Any]) -> None:
        self.status = status
        self.widget.value = self.render(status, detail)

    @property
    def live(self) -> bool:
        return self.status == LIVE
