"""``AssetsPanel``: models, datasets, checkpoints... per tab; upload, import, delete, trash.

Browser files come through ``FileUpload``, which sends a whole file as one widget
message: Tornado caps websocket messages at 10 MiB, so files above ``UPLOAD_LIMIT``
(8 MiB) are refused here (the JupyterLab extension and ``notebench.assets.upload``
stream larger ones). Files already on the server's disk are imported with a file chooser
whose sandbox is a configured import folder (``c.NotebenchAssetRegistry.import_dirs``), never the
whole disk: whoever views a Voila page is not necessarily the machine's owner.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from typing import Any

import ipywidgets as w

from ..sse import Event
from .base import Panel
from .fmt import esc, human_bytes, table

__all__ = ["UPLOAD_LIMIT", "AssetsPanel"]

UPLOAD_LIMIT = 8 * 1024 * 1024
LISTED = 200


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class AssetsPanel(Panel):
    """A tab per category: table (name, size, sha256, type, tags, download) and actions."""

    title = "Models and assets"

    def __init__(self, **kwargs: Any) -> None:
        self.categories: list[str] = []
        self.items: dict[str, list[dict[str, Any]]] = {}
        self.trash: list[dict[str, Any]] = []
        self.import_dirs: list[str] | None = None  # None: not read yet
        self.chooser: Any = None
        super().__init__(**kwargs)

    def build(self) -> list[w.Widget]:
        t = self.t
        self.tabs = w.Tab()
        self.tabs.observe(lambda _c: self._draw(), names="selected_index")
        self.pick = w.Dropdown(options=[], description=t("Asset"),
                               layout=w.Layout(width="auto", min_width="240px"))
        self.delete_button = self.button("Delete", self.delete_selected, style="danger")
        self.upload = w.FileUpload(multiple=False, description=t("Upload"))
        self.upload.add_class("nb-upload")
        self.upload.observe(lambda _c: self.act(self.upload_selected), names="value")
        if not self.actions:
            self.upload.layout.display = "none"
        self.import_box = w.VBox()
        self.trash_html = w.HTML()
        self.trash_pick = w.Dropdown(options=[], description=t("Trash"),
                                     layout=w.Layout(width="auto", min_width="240px"))
        self.restore_button = self.button("Restore", self.restore_selected)
        toolbar = w.HBox([self.pick, self.delete_button, self.upload])
        toolbar.add_class("nb-toolbar")
        trash_bar = w.HBox([self.trash_pick, self.restore_button])
        trash_bar.add_class("nb-toolbar")
        return [self.tabs, toolbar, self.import_box, self.heading(t("Trash")),
                self.trash_html, trash_bar]

    # -- state in ------------------------------------------------------------------------------

    @property
    def category(self) -> str | None:
        index = self.tabs.selected_index
        if index is None or index >= len(self.categories):
            return None
        return self.categories[index]

    def feed_topics(self) -> set[str]:
        return {"assets"}

    def refresh(self) -> None:
        if self.client is None:
            return
        roots = self.client.get("assets/roots")
        lists = {r["category"]: self.client.get(f"assets/list/{_quote(r['category'])}",
                                                params={"limit": LISTED})["items"]
                 for r in roots["roots"]}
        self.load(roots, lists, self.client.get("assets/trash")["items"])

    def load(self, roots: dict[str, Any], lists: dict[str, list[dict[str, Any]]],
             trash: list[dict[str, Any]]) -> None:
        with self._lock:
            categories = [r["category"] for r in roots.get("roots", [])]
            if categories != self.categories:
                self.categories = categories
                self.tabs.children = [w.HTML() for _ in categories]
                self.tabs.titles = tuple(self.t(c.capitalize()) for c in categories)
                if categories and self.tabs.selected_index is None:
                    self.tabs.selected_index = 0
            self.items = lists
            self.trash = trash
            dirs = list(roots.get("import_dirs") or [])
            if dirs != self.import_dirs:
                self.import_dirs = dirs
                self._build_import()
            self._draw()

    def on_events(self, events: list[Event]) -> None:
        if events:
            self.refresh()

    # -- widgets out ---------------------------------------------------------------------------

    def _draw(self) -> None:
        for category, view in zip(self.categories, self.tabs.children, strict=False):
            view.value = self._table(self.items.get(category, []))
        current = self.items.get(self.category or "", [])
        options = [(f"{a['name']} ({human_bytes(a['size'])})", a["id"]) for a in current]
        if list(self.pick.options) != options:
            self.pick.options = options
        mine = [a for a in self.trash if a.get("category") == self.category]
        self.trash_html.value = self._table(mine, download=False) if mine else \
            '<div class="nb-muted">—</div>'
        trash_options = [(a["name"], a["id"]) for a in mine]
        if list(self.trash_pick.options) != trash_options:
            self.trash_pick.options = trash_options

    def _table(self, assets: list[dict[str, Any]], *, download: bool = True) -> str:
        t = self.t
        rows = []
        for a in assets:
            digest = a.get("sha256") or ""
            href = self.api_path(f"assets/download/{a['id']}")
            link = (f'<a class="nb-download" href="{esc(href)}" download="{esc(a["name"])}">'
                    f'{esc(t("Download"))}</a>') if download else ""
            rows.append([esc(a["name"]), esc(human_bytes(a.get("size") or 0)),
                         f'<code class="nb-sha" title="{esc(digest)}">{esc(digest[:12])}</code>',
                         esc(a.get("format") or a.get("kind")), esc(", ".join(a.get("tags") or [])),
                         link])
        if not rows:
            return '<div class="nb-muted">—</div>'
        return table([esc(t(h)) for h in ("Name", "Size", "sha256", "Type", "Tags", "")], rows,
                     classes="nb-assets")

    def _build_import(self) -> None:
        if not self.import_dirs or not self.actions:
            note = "" if not self.actions else \
                "Import from the server's disk: no import folder is configured " \
                "(c.NotebenchAssetRegistry.import_dirs)."
            self.import_box.children = [w.HTML(f'<div class="nb-note">{esc(note)}</div>')]
            self.chooser = None
            return
        from ipyfilechooser import FileChooser
        from ipyfilechooser.errors import InvalidPathError

        folder = self.import_dirs[0]
        try:
            self.chooser = FileChooser(folder, sandbox_path=folder, title=self.t("Import"),
                                       show_only_dirs=False)
        except InvalidPathError:
            note = f"the import folder {folder} does not exist"
            self.import_box.children = [w.HTML(f'<div class="nb-error">{esc(note)}</div>')]
            self.chooser = None
            return
        self.import_button = self.button("Import", self.import_selected)
        self.import_box.children = [w.HBox([self.chooser, self.import_button])]

    # -- actions -------------------------------------------------------------------------------

    def upload_selected(self) -> dict[str, Any] | None:
        files = self.upload.value
        if not files:
            return None
        item = files[0]
        size = int(item["size"])
        if size > UPLOAD_LIMIT:
            self.upload.value = ()
            raise ValueError(f"{item['name']} is {human_bytes(size)}: files over "
                             f"{human_bytes(UPLOAD_LIMIT)} go through JupyterLab's notebench "
                             "panel or notebench.assets.upload()")
        if self.client is None or self.category is None:
            return None
        data = bytes(item["content"])
        digest = hashlib.sha256(data).hexdigest()
        asset = self.client.post(f"assets/upload/{_quote(self.category)}", data=data,
                                 params={"name": item["name"], "sha256": digest})
        self.upload.value = ()
        self.say(f"{asset['name']}: {human_bytes(asset['size'])}, sha256 {asset['sha256']}")
        self.refresh()
        return asset

    def import_selected(self) -> dict[str, Any] | None:
        if self.chooser is None or self.client is None or self.category is None:
            return None
        chosen = self.chooser.selected
        if not chosen:
            raise ValueError("choose a file first")
        asset = self.client.post("assets/import", json={
            "category": self.category, "path": chosen, "import_dir": 0})
        self.say(f"{asset['name']}: imported, sha256 {asset.get('sha256')}")
        self.refresh()
        return asset

    def delete_selected(self) -> None:
        if self.pick.value and self.client is not None:
            self.client.delete(f"assets/{self.pick.value}")
            self.refresh()

    def restore_selected(self) -> None:
        if self.trash_pick.value and self.client is not None:
            self.client.post(f"assets/trash/{self.trash_pick.value}/restore", json={})
            self.refresh()
