"""A Voila page's kernel calls the API as the person viewing the page, within the page's scope.

Voila runs as an extension of the test server; each page is a tiny notebook in the server's
root that prints what the server put into its kernel's environment (tests only: a real
page never shows its token).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import jupyter_core.paths
import nbformat
import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User

from notebench.server.credentials import PREFIX
from tests.waiting import wait_for

PAGE = """
import os
for name in ("TOKEN", "PAGE", "ACTIONS", "READ_AREAS"):
    key = "NOTEBENCH_SERVER_TOKEN" if name == "TOKEN" else "NOTEBENCH_VOILA_" + name
    print(f"{name}=[{os.environ.get(key, '')}]")
"""
START_RUN = """
import notebench
run = notebench.start_run("a run on a Voila page")
print(f"RUN=[{run.id}]")
"""
RENDER_TIMEOUT = 180


@pytest.fixture
def jp_nbconvert_templates(jp_nbconvert_templates: None, jp_data_dir: Path) -> None:
    """Voila's templates too, in the test's data folder (the installed ones are out of the
    test environment's Jupyter path); looked up before the environment changes."""
    found = [p for p in jupyter_core.paths.jupyter_path("voila", "templates")
             if Path(p).is_dir()]
    assert found, "Voila's templates are not installed"
    shutil.copytree(found[0], jp_data_dir / "voila" / "templates")


class TwoUsers(IdentityProvider):
    """``Authorization: token alice-token`` is alice, ``bob-token`` bob; nothing else is."""

    users = {"alice-token": "alice", "bob-token": "bob"}

    def get_user(self, handler: Any) -> User | None:
        match = self.auth_header_pat.match(handler.request.headers.get("Authorization", ""))
        name = self.users.get(match.group(2)) if match else None
        return User(name) if name else None


class BobReadsJobsAndAssets(Authorizer):
    """Alice may do anything; bob may not write or run anything in jobs or assets."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return user.username != "bob" or action == "read" or resource not in (
            "notebench:jobs", "notebench:assets")


def voila_server(*, actions: bool, **serverapp: Any) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"notebench.server": True,
                                              "tests.server_hooks": True,
                                              "voila.server_extension": True}, **serverapp},
        "NotebenchApp": {"voila_actions": actions},
    }


TWO_USERS = voila_server(actions=True, identity_provider_class=TwoUsers,
                         authorizer_class=BobReadsJobsAndAssets)


def write_page(root: Any, name: str, *sources: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, root / name)
    return name


async def render(jp_fetch: Any, name: str, token: str) -> dict[str, str]:
    """Open a page as the user of ``token``: what its kernel printed, and the HTML."""
    response = await jp_fetch("voila", "render", name, request_timeout=RENDER_TIMEOUT,
                              headers={"Authorization": f"token {token}"})
    assert response.code == 200
    html = response.body.decode()
    printed = dict(re.findall(r"([A-Z_]+)=\[([^\]]*)\]", html))
    assert "TOKEN" in printed, html[-3000:]
    printed["html"] = html
    return printed


def as_viewer(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


@pytest.mark.parametrize("jp_server_config", [TWO_USERS])
async def test_a_voila_page_calls_the_api_as_its_viewer_with_the_viewers_rights(
        jp_fetch, api, jp_root_dir):
    write_page(jp_root_dir, "run.ipynb", PAGE, START_RUN)
    write_page(jp_root_dir, "page.ipynb", PAGE)
    alice_page = await render(jp_fetch, "run.ipynb", "alice-token")
    bob_page = await render(jp_fetch, "page.ipynb", "bob-token")
    alice, bob, run_id = alice_page["TOKEN"], bob_page["TOKEN"], alice_page["RUN"]
    assert alice.startswith(PREFIX) and bob.startswith(PREFIX) and alice != bob
    assert bob_page["PAGE"] == "1" and bob_page["ACTIONS"] == "1"
    for page in (alice_page, bob_page):
        # the injected cell's source stays on the server: the token shows only where the
        # page printed it
        assert "environ.update" not in page["html"]
        assert page["html"].count(PREFIX) == 1

    # bob's page reads what bob may read
    async def running() -> bool:
        job = await api("GET", f"lifecycle/jobs/{run_id}", headers=as_viewer(bob))
        if job.status == 404:  # the server finds a kernel's new run on its next tick
            return False
        assert job.status == 200, job.body
        return job.body["state"] == "running"

    await wait_for(running, timeout=60)
    assert (await api("GET", "lifecycle/jobs", headers=as_viewer(bob))).status == 200
    assert (await api("GET", "assets/roots", headers=as_viewer(bob))).status == 200
    # and may not do what bob may not do, though the page allows actions
    for method, path, body, area in (
            ("POST", f"lifecycle/jobs/{run_id}/control", {"action": "stop"}, "jobs"),
            ("DELETE", f"lifecycle/jobs/{run_id}", None, "jobs"),
            ("POST", "assets/upload/datasets", b"a,b\n1,2\n", "assets")):
        params = {"name": "table.csv"} if area == "assets" else None
        refused = await api(method, path, body, params=params, headers=as_viewer(bob))
        assert refused.status == 403, (method, path, refused.body)
        # the authorizer's answer for bob
        assert refused.body["error"]["message"] == f"not allowed to write notebench:{area}"
    # what bob may write, his page may: with the token alone (no XSRF cookie)
    published = await api("POST", "_test/publish", {"topic": "logs"}, headers=as_viewer(bob),
                          validate=False)
    assert published.status == 200, published.body

    # alice's page may stop the run
    stopped = await api("POST", f"lifecycle/jobs/{run_id}/control", {"action": "stop"},
                        headers=as_viewer(alice))
    assert stopped.status == 200, stopped.body
    assert stopped.body["state"] == "stopping"


@pytest.mark.parametrize("jp_server_config", [voila_server(actions=False)])
async def test_without_actions_a_page_reads_its_areas_and_writes_nothing_even_as_the_owner(
        jp_fetch, api, jp_root_dir, jp_auth_header):
    write_page(jp_root_dir, "page.ipynb", PAGE)
    page = await render(jp_fetch, "page.ipynb", jp_auth_header["Authorization"].split()[1])
    token = page["TOKEN"]
    assert token.startswith(PREFIX)
    assert page["ACTIONS"] == "0" and page["READ_AREAS"] == "hardware,monitoring,jobs"
    viewer = as_viewer(token)
    for path in ("info", "lifecycle/jobs", "monitoring/alerts", "hardware"):
        answer = await api("GET", path, headers=viewer)
        assert answer.status == 200, (path, answer.body)
    refused = await api("GET", "assets/roots", headers=viewer)
    assert refused.status == 403 and "voila_read_areas" in refused.body["error"]["message"]
    # a stream is read topic by topic: the assets topic is out of the page's areas
    refused = await api("GET", "stream", params={"topics": "assets"}, headers=viewer)
    assert refused.status == 403, refused.body
    past_auth = await api("GET", "stream", params={"topics": "jobs,no-such-topic"},
                          headers=viewer)
    assert past_auth.status == 400 and past_auth.body["error"]["code"] == "unknown_topic"
    for method, path, body in (("DELETE", "lifecycle/jobs/j-0123456789ab", None),
                               ("POST", "lifecycle/jobs", {"notebook": "page.ipynb"})):
        refused = await api(method, path, body, headers=viewer)
        assert refused.status == 403, (method, path, refused.body)
        assert "read-only" in refused.body["error"]["message"]
    # the owner's own token may still do all of it
    assert (await api("GET", "assets/roots")).status == 200


@pytest.mark.parametrize("jp_server_config", [voila_server(actions=True)])
async def test_a_viewer_token_authenticates_nothing_but_notebench(jp_fetch, services):
    token = services.viewer_tokens.mint(User("owner"), ttl=60)
    assert (await jp_fetch("notebench", "api", "info", headers=as_viewer(token))).code == 200
    for parts in (("api", "contents"), ("api", "kernels"), ("api", "me")):
        response = await jp_fetch(*parts, headers=as_viewer(token), raise_error=False)
        assert response.code == 403, parts
    page = await jp_fetch("voila", "render", "x.ipynb", headers=as_viewer(token),
                          raise_error=False, follow_redirects=False)
    assert page.code == 302 and "login" in page.headers["Location"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("jp_server_config", [voila_server(actions=True)])
async def test_an_expired_or_unknown_viewer_token_is_refused(api, services):
    clock = FakeClock()
    services.viewer_tokens.clock = clock
    ttl = services.config.voila_token_ttl
    token = services.viewer_tokens.mint(User("owner"), ttl=ttl)
    assert (await api("GET", "info", headers=as_viewer(token))).status == 200
    clock.now += ttl
    for candidate in (token, PREFIX + "none"):
        refused = await api("GET", "info", headers=as_viewer(candidate))
        assert refused.status == 403
        assert "expired" in refused.body["error"]["message"]
