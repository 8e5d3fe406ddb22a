"""Voila's ``prelaunch_hook``: a page's kernel acts as the person viewing the page.

Before Voila starts a page's kernel, the hook mints a token for the viewer
(``req.current_user``) and puts a first cell into the notebook that sets the kernel's
``NOTEBENCH_SERVER_URL``/``TOKEN`` (so ``notebench.Client`` calls the API as the viewer),
marks the kernel as a Voila page and passes it the page's scope (``voila_actions``, the
readable areas) for the panels to show. The server enforces that scope
(``NotebenchHandler.prepare``); the kernel only uses it to leave out what would be refused.

Voila strips the sources of a page's cells from the HTML it sends (its default,
``VoilaConfiguration.strip_sources``); where a server shows sources, no token is put into
the page, whose panels are then refused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import nbformat

from .credentials import PREFIX

if TYPE_CHECKING:
    from .services import Services

__all__ = ["CELL_TAG", "ENV_PAGE", "ENV_READ_AREAS", "NO_TOKEN", "configure_voila", "viewer_hook"]

ENV_URL = "NOTEBENCH_SERVER_URL"
ENV_TOKEN = "NOTEBENCH_SERVER_TOKEN"
ENV_ACTIONS = "NOTEBENCH_VOILA_ACTIONS"
ENV_PAGE = "NOTEBENCH_VOILA_PAGE"
ENV_READ_AREAS = "NOTEBENCH_VOILA_READ_AREAS"
#: the tag of the injected cell
CELL_TAG = "notebench-viewer"
#: what a page gets when it gets no token: refused by the server, and never empty, so the
#: kernel's client cannot fall back on other credentials
NO_TOKEN = PREFIX + "none"

log = logging.getLogger("notebench")


def configure_voila(config: Any) -> bool:
    """Make ``viewer_hook`` Voila's ``prelaunch_hook`` unless the user set one; whether it
    did. Runs when extensions link, before Voila reads its configuration."""
    if "prelaunch_hook" in config.VoilaConfiguration:
        log.warning("notebench: VoilaConfiguration.prelaunch_hook is set; Voila pages get no "
                    "viewer token unless that hook calls notebench.server.voila_hook."
                    "viewer_hook(req, notebook, cwd)")
        return False
    config.VoilaConfiguration.prelaunch_hook = viewer_hook
    return True


def viewer_hook(req: Any, notebook: Any, cwd: str) -> Any:
    """Voila's ``prelaunch_hook(req, notebook, cwd)``: the notebook with the viewer's cell
    first (unchanged where notebench is not loaded or the kernel is not Python)."""
    services: Services | None = req.settings.get("notebench_services")
    if services is None or not _is_python(notebook):
        return notebook
    config = services.config
    env = {ENV_PAGE: "1", ENV_ACTIONS: "1" if config.voila_actions else "0",
           ENV_TOKEN: NO_TOKEN}
    if not config.voila_actions:
        env[ENV_READ_AREAS] = ",".join(config.voila_read_areas)
    serverapp = getattr(config, "serverapp", None)
    if serverapp is not None:
        env[ENV_URL] = serverapp.connection_url.rstrip("/") + "/"
    user = req.current_user
    voila = getattr(req, "voila_configuration", None)
    if voila is not None and not voila.strip_sources:
        log.warning("notebench: Voila shows cell sources (strip_sources is off): the page "
                    "%s gets no viewer token", req.request.path)
    elif user is not None:
        env[ENV_TOKEN] = services.viewer_tokens.mint(user, config.voila_token_ttl)
    notebook.cells.insert(0, _cell(env, notebook))
    return notebook


def _cell(env: dict[str, str], notebook: Any) -> Any:
    source = (f"import os as _notebench_os\n_notebench_os.environ.update({env!r})\n"
              "del _notebench_os")
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [CELL_TAG]})
    if (notebook.get("nbformat"), notebook.get("nbformat_minor", 0)) < (4, 5):
        cell.pop("id", None)  # cell ids came with nbformat 4.5
    return cell


def _is_python(notebook: Any) -> bool:
    metadata = notebook.get("metadata", {})
    language = (metadata.get("kernelspec", {}).get("language")
                or metadata.get("language_info", {}).get("name") or "python")
    return str(language).lower() == "python"
