"""A real ``jupyter lab`` subprocess with notebench, for the JupyterLab extension's tests.

The extension is the one installed in this environment (the wheel's shared data under
``<prefix>/share/jupyter/labextensions/notebench``); Lab's user settings and workspaces
live in the test's folder so nothing of the developer's own Lab set-up applies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.server_process import ServerProcess

LABEXTENSION = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "notebench"


class LabServer(ServerProcess):
    """``jupyter lab`` (notebench enabled, test hooks on, app exposed as ``window.jupyterapp``)."""

    def __init__(self, root_dir: Path, *, config_dir: Path, extra: list[str] | None = None,
                 **kwargs) -> None:
        super().__init__(root_dir, extra=extra, **kwargs)
        self.config_dir = config_dir

    def command(self) -> list[str]:
        state = self.config_dir / "lab-state"
        return [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            f"--port={self.port}", "--ServerApp.port_retries=0", "--ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
            f"--ServerApp.base_url={self.base_url}", "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={state / 'user-settings'}",
            f"--LabApp.workspaces_dir={state / 'workspaces'}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.jpserver_extensions={'tests.server_hooks': True}", *self.extra,
        ]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["JUPYTER_CONFIG_DIR"] = str(self.config_dir)
        env.pop("JUPYTER_PLATFORM_DIRS", None)
        return env

    def start(self, timeout: float = 90) -> LabServer:
        quiet_lab_settings(self.config_dir / "lab-state")
        super().start(timeout)
        return self

    @property
    def lab_url(self) -> str:
        return f"{self.url}lab?token={self.token}"


def installed_labextension() -> dict:
    """The installed extension's package.json; fails when it is missing."""
    package = LABEXTENSION / "package.json"
    assert package.is_file(), (
        f"the notebench labextension is not installed in {LABEXTENSION.parent}: install the "
        "wheel (make install), or copy labext/labextension there (docs/labext.md)")
    return json.loads(package.read_text())


def quiet_lab_settings(state: Path) -> None:
    """No news prompt (it would cover the panels in screenshots and cost a request)."""
    folder = state / "user-settings" / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
