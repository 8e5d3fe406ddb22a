"""Voila's prelaunch hook: the viewer's cell, where it is (not) put, and its configuration."""

from __future__ import annotations

import ast
from types import SimpleNamespace
from typing import Any

import nbformat
from traitlets.config import Config

from notebench.server.credentials import PREFIX, ViewerTokens
from notebench.server.voila_hook import CELL_TAG, NO_TOKEN, configure_voila, viewer_hook
from notebench.widgets.context import in_voila, readable_areas, readable_panels


def request(*, actions: bool = False, user: Any = "bob", strip_sources: bool = True,
            notebench: bool = True) -> Any:
    config = SimpleNamespace(voila_actions=actions, voila_read_areas=["jobs", "monitoring"],
                             voila_token_ttl=60.0,
                             serverapp=SimpleNamespace(connection_url="http://127.0.0.1:8888/x/"))
    services = SimpleNamespace(config=config, viewer_tokens=ViewerTokens())
    settings = {"notebench_services": services} if notebench else {}
    return SimpleNamespace(settings=settings, current_user=user,
                           voila_configuration=SimpleNamespace(strip_sources=strip_sources),
                           request=SimpleNamespace(path="/voila/render/a.ipynb"))


def notebook(language: str = "python") -> Any:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "k", "language": language, "display_name": "K"}
    nb.cells = [nbformat.v4.new_code_cell("print('page')")]
    return nb


def injected_env(nb: Any) -> dict[str, str]:
    """The environment the first cell sets (and that it is the viewer's cell)."""
    cell = nb.cells[0]
    assert cell.metadata["tags"] == [CELL_TAG]
    call = ast.parse(cell.source).body[1].value
    return ast.literal_eval(call.args[0])


def test_the_first_cell_gives_the_kernel_the_viewers_token_and_the_pages_scope() -> None:
    req = request()
    nb = viewer_hook(req, notebook(), "")
    assert len(nb.cells) == 2 and nb.cells[1].source == "print('page')"
    env = injected_env(nb)
    assert env["NOTEBENCH_SERVER_URL"] == "http://127.0.0.1:8888/x/"
    assert env["NOTEBENCH_VOILA_PAGE"] == "1" and env["NOTEBENCH_VOILA_ACTIONS"] == "0"
    assert env["NOTEBENCH_VOILA_READ_AREAS"] == "jobs,monitoring"
    token = env["NOTEBENCH_SERVER_TOKEN"]
    assert token.startswith(PREFIX)
    assert req.settings["notebench_services"].viewer_tokens.resolve(token) == "bob"
    nbformat.validate(nb)


def test_with_actions_the_page_has_no_read_limit() -> None:
    env = injected_env(viewer_hook(request(actions=True), notebook(), ""))
    assert env["NOTEBENCH_VOILA_ACTIONS"] == "1" and "NOTEBENCH_VOILA_READ_AREAS" not in env


def test_no_token_where_voila_shows_sources_or_nobody_is_logged_in() -> None:
    for req in (request(strip_sources=False), request(user=None)):
        env = injected_env(viewer_hook(req, notebook(), ""))
        assert env["NOTEBENCH_SERVER_TOKEN"] == NO_TOKEN
        assert len(req.settings["notebench_services"].viewer_tokens) == 0


def test_other_kernels_and_servers_without_notebench_are_left_alone() -> None:
    for req, nb in ((request(), notebook("julia")), (request(notebench=False), notebook())):
        assert len(viewer_hook(req, nb, "").cells) == 1


def test_the_hook_is_configured_unless_the_user_has_one() -> None:
    config = Config()
    assert configure_voila(config)
    assert config.VoilaConfiguration.prelaunch_hook is viewer_hook

    def own(req: Any, notebook: Any, cwd: str) -> None:
        return None

    config = Config()
    config.VoilaConfiguration.prelaunch_hook = own
    assert not configure_voila(config)
    assert config.VoilaConfiguration.prelaunch_hook is own


def test_the_kernel_shows_the_panels_of_the_areas_it_may_read() -> None:
    class ActiveJobs: ...

    class AssetsPanel: ...

    class MonitoringDashboard: ...

    panels = (ActiveJobs, AssetsPanel, MonitoringDashboard)
    page = {"NOTEBENCH_VOILA_PAGE": "1", "NOTEBENCH_VOILA_READ_AREAS": "jobs,monitoring"}
    assert in_voila(page) and readable_areas(page) == {"jobs", "monitoring"}
    assert readable_panels(panels, page) == (ActiveJobs, MonitoringDashboard)
    assert readable_panels(panels, {"NOTEBENCH_VOILA_PAGE": "1"}) == panels  # actions on
    assert readable_panels(panels, {}) == panels  # a notebook
