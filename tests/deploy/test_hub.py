"""deploy/ run for real on loopback: JupyterHub (DummyAuthenticator, local-process servers)
with configurable-http-proxy, nginx with TLS in front, Prometheus behind; two users who
each run a template job, an admin who sees both, and a user who cannot reach the other."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from notebench.jobprotocol import TERMINAL
from tests.deploy.stack import DEPLOY, NGINX, Hub, Nginx, Prometheus, missing_parts, request
from tests.server_process import free_port
from tests.sse_client import open_sse
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(bool(missing_parts()),
                                reason=f"missing: {', '.join(missing_parts())}")

USERS = ("alice", "bob")
ADMIN = "ops"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = Hub(tmp_path_factory.mktemp("deploy") / "hub", settings={
        "NOTEBENCH_HUB_ADMINS": ADMIN})
    hub.start()
    try:
        hub.add_users(*USERS, ADMIN)
        for name in USERS:
            hub.start_server(name)
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def tokens(hub: Hub) -> dict[str, str]:
    return {name: hub.token_for(name) for name in (*USERS, ADMIN)}


@pytest.fixture(scope="module")
def nginx(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    proxy = Nginx(tmp_path_factory.mktemp("nginx"), upstream=f"127.0.0.1:{hub.proxy_port}")
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def prometheus(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), hub)
    server.start()
    yield server
    server.stop()


def api(nginx: Nginx, user: str, path: str, token: str, method: str = "GET",
        body: Any = None) -> Any:
    return request(f"{nginx.url}/user/{user}/notebench/api/{path}", method, body,
                   token=token, context=nginx.context())


# -- nginx ---------------------------------------------------------------------------------

def test_nginx_accepts_the_shipped_configuration(nginx: Nginx) -> None:
    result = subprocess.run([NGINX, "-t", "-c", str(nginx.folder / "nginx.conf"), "-p",
                             str(nginx.folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_tls_hsts_redirect_and_the_metrics_kept_inside(nginx: Nginx, hub: Hub) -> None:
    answer = request(f"{nginx.url}/hub/api/", context=nginx.context())
    assert answer.status == 200
    assert answer.headers["strict-transport-security"].startswith("max-age=63072000")
    plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                            f"http://127.0.0.1:{nginx.http_port}/hub/"],
                           capture_output=True, text=True, timeout=30)
    code, location = plain.stdout.split(" ", 1)
    assert code == "301" and location.startswith("https://127.0.0.1"), plain.stdout
    # Prometheus's way in (the proxy itself) answers; the public way does not exist
    assert request(f"{hub.url}/user/alice/notebench/metrics").status == 200
    for path in ("/user/alice/notebench/metrics", "/user/alice/notebench/%6Detrics",
                 "/user/alice//notebench/metrics"):
        outside = request(f"{nginx.url}{path}", context=nginx.context())
        assert outside.status == 404, path


def test_an_upload_larger_than_nginx_default_streams_through_with_its_sha256(
        nginx: Nginx, tokens: dict[str, str]) -> None:
    rows = "".join(f"{i},{i * 7 % 1000},{os.urandom(8).hex()}\n" for i in range(800_000))
    body = ("id,value,tag\n" + rows).encode()  # ~24 MiB: past nginx's default 1 MiB limit
    url = (f"{nginx.url}/user/alice/notebench/api/assets/upload/datasets?"
           "name=through-nginx.csv")
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"token {tokens['alice']}",
        "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=120, context=nginx.context()) as response:
        asset = json.loads(response.read())
    assert asset["size"] == len(body)
    assert asset["sha256"] == hashlib.sha256(body).hexdigest()


# -- jobs through nginx and the proxy, followed on the SSE stream ---------------------------

async def follow(nginx: Nginx, user: str, token: str) -> dict[str, Any]:
    """Submit a template job as ``user`` and follow its topic to the end over TLS."""
    submitted = await asyncio.to_thread(api, nginx, user, "lifecycle/jobs", token, "POST",
                                        {"template": "train_tabular",
                                         "parameters": {"epochs": 3}})
    assert submitted.status == 201, submitted.body
    job_id = submitted.body["id"]
    path = f"/user/{user}/notebench/api/stream?topics=job:{job_id}"
    headers = {"Authorization": f"token {token}"}
    stream = await open_sse(nginx.https_port, path, tls=nginx.context(),
                            headers={**headers, "Last-Event-ID": "0"})
    connected = time.time()
    assert stream.status == 200, stream.headers
    assert stream.headers["content-type"].startswith("text/event-stream")
    deadline = time.monotonic() + 300
    while not any(f.data.get("type") == "state" and f.data["data"].get("state") in
                  TERMINAL for f in stream.frames):
        assert time.monotonic() < deadline and not stream.closed, "the job did not end"
        await stream.read_frames(1, timeout=10)
    stream.close()
    # every event arrived: a second stream replays the job's log, and it holds the same ids
    replay = await open_sse(nginx.https_port, path, tls=nginx.context(),
                            headers={**headers, "Last-Event-ID": "0"})
    await replay.read_frames(len(stream.frames), timeout=30)
    replay.close()
    live = [f for f in stream.frames if f.data["ts"] > connected]  # not replayed
    return {"job_id": job_id, "ids": [f.id for f in stream.frames],
            "replayed": [f.id for f in replay.frames],
            "delays": [f.received - f.data["ts"] for f in live],
            "final": stream.frames[-1].data["data"]["state"],
            "metrics": sum(f.data.get("type") == "metrics" for f in stream.frames)}


def test_each_user_runs_a_template_job_through_nginx_and_follows_it_live(
        nginx: Nginx, tokens: dict[str, str]) -> None:
    async def both() -> list[dict[str, Any]]:
        return await asyncio.gather(*(follow(nginx, u, tokens[u]) for u in USERS))

    results = asyncio.run(both())
    delays: list[float] = []
    for user, result in zip(USERS, results, strict=True):
        assert result["final"] == "succeeded", (user, result)
        assert result["metrics"] > 0, user
        # none lost, none twice (the replay may go on past the end: the model's link)
        assert [i for i in result["replayed"] if i <= result["ids"][-1]] == result["ids"], user
        assert len(result["delays"]) > 0, f"{user}: no event arrived while it ran"
        delays += result["delays"]
        job = api(nginx, user, f"lifecycle/jobs/{result['job_id']}", tokens[user]).body
        assert job["state"] == "succeeded" and job["template"] == "train_tabular"
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
    # a figure, not a timed assertion: the benchmark of record is tests/benchmarks
    print(f"SSE delivery through nginx and the proxy: {len(delays)} live events, "
          f"median {delays[len(delays) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")


def test_lab_and_the_voila_dashboard_load_under_the_users_path(
        nginx: Nginx, hub: Hub, tokens: dict[str, str]) -> None:
    from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS, chromium_available
    from tests.integration.widgets.tiny import write_notebook

    if not chromium_available():
        pytest.skip("Debian's chromium is not installed (make test installs it as root)")
    from playwright.sync_api import sync_playwright

    write_notebook(hub.folder / "homes" / "alice" / "quick.ipynb", ["print('done')"])
    submitted = api(nginx, "alice", "lifecycle/jobs", tokens["alice"], "POST",
                    {"notebook": "quick.ipynb"})
    assert submitted.status == 201, submitted.body
    job = submitted.body["id"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True)
            page = context.new_page()
            failed: list[str] = []
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                    if "/notebench/api/" in r.url and r.status >= 400 else None)
            page.goto(f"{nginx.url}/hub/login?next=/user/alice/lab")
            page.fill("input#username_input", "alice")
            page.fill("input#password_input", "any")
            page.click("#login_submit")
            page.wait_for_url("**/user/alice/lab**", timeout=90_000)
            page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
            page.wait_for_selector("#notebench-training", state="attached", timeout=60_000)
            # the extension talks to this user's server: its jobs show in the panel
            page.wait_for_selector(f'.nb-job[data-job-id="{job}"]', state="attached",
                                   timeout=60_000)
            # the widgets under the same path: the Voila dashboard with the user's jobs
            page.goto(f"{nginx.url}/user/alice/voila/render/notebench/dashboards/"
                      "dashboard.ipynb")
            page.wait_for_selector(".nb-jobs-table", timeout=120_000)
            page.wait_for_selector(f".nb-jobs-table .nb-job-{job}", state="attached",
                                   timeout=60_000)
            assert failed == []
        finally:
            browser.close()


async def run_in_a_kernel(nginx: Nginx, user: str, token: str, code: str) -> str:
    """Start a kernel in ``user``'s server, run ``code`` over the kernel websocket (through
    nginx's upgrade and the proxy) and return what it printed."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    started = await asyncio.to_thread(request, f"{nginx.url}/user/{user}/api/kernels", "POST",
                                      {}, token=token, context=nginx.context())
    assert started.status == 201, started.body
    kernel = started.body["id"]
    url = f"wss://127.0.0.1:{nginx.https_port}/user/{user}/api/kernels/{kernel}/channels"
    socket = await websocket_connect(HTTPRequest(
        url, headers={"Authorization": f"token {token}"}, ssl_options=nginx.context()))
    msg_id = uuid.uuid4().hex
    socket.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex,
                   "username": user, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
    printed, errors = [], []
    try:
        while True:
            raw = await asyncio.wait_for(socket.read_message(), 120)
            assert raw is not None, "the kernel websocket closed"
            message = json.loads(raw)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                break
    finally:
        socket.close()
        await asyncio.to_thread(request, f"{nginx.url}/user/{user}/api/kernels/{kernel}",
                                "DELETE", token=token, context=nginx.context())
    assert not errors, errors
    return "".join(printed)


def test_a_kernel_in_a_users_server_finds_that_server(nginx: Nginx, hub: Hub,
                                                      tokens: dict[str, str]) -> None:
    code = ("import json, notebench\nclient = notebench.Client()\n"
            "print(json.dumps({'url': client.url, 'info': client.info()}))")
    for user in USERS:
        found = json.loads(asyncio.run(run_in_a_kernel(nginx, user, tokens[user], code)))
        assert found["url"].endswith(f"/user/{user}/"), found["url"]
        workspace = Path(found["info"]["workspace"]["path"])
        assert workspace == hub.folder / "homes" / user / "notebench"


def test_voila_dashboards_are_served_per_user(nginx: Nginx, tokens: dict[str, str]) -> None:
    page = "voila/render/notebench/dashboards/dashboard.ipynb"
    for user in USERS:
        answer = request(f"{nginx.url}/user/{user}/{page}", token=tokens[user],
                         context=nginx.context(), timeout=120)
        assert answer.status == 200, (user, str(answer.body)[:300])
        assert f"/user/{user}/" in answer.body  # the page's own base URL
    other = request(f"{nginx.url}/user/bob/{page}", token=tokens["alice"],
                    context=nginx.context())
    assert other.status in (302, 403), other.status


# -- who may see what -----------------------------------------------------------------------

def test_a_user_is_refused_by_the_other_users_server_and_an_admin_sees_both(
        nginx: Nginx, tokens: dict[str, str]) -> None:
    assert api(nginx, "alice", "lifecycle/jobs", tokens["alice"]).status == 200
    assert api(nginx, "bob", "lifecycle/jobs", tokens["alice"]).status == 403
    assert api(nginx, "alice", "lifecycle/jobs", tokens["bob"]).status == 403
    seen = {}
    for user in USERS:
        answer = api(nginx, user, "lifecycle/jobs", tokens[ADMIN])
        assert answer.status == 200, answer.body
        seen[user] = {j["id"] for j in answer.body["jobs"]}
        own = api(nginx, user, "lifecycle/jobs", tokens[user]).body
        assert seen[user] == {j["id"] for j in own["jobs"]}
    assert seen["alice"] and seen["bob"] and not seen["alice"] & seen["bob"]


# -- Prometheus ------------------------------------------------------------------------------

def test_prometheus_discovers_and_scrapes_every_users_server(prometheus: Prometheus) -> None:
    def both_up() -> list[dict[str, Any]] | None:
        found = prometheus.query('up{job="notebench"} == 1')
        return found if {r["metric"].get("user") for r in found} == set(USERS) else None

    found = wait_until(both_up, timeout=90)
    assert {r["metric"]["instance"] for r in found} == {f"{u}/" for u in USERS}
    wait_until(lambda: prometheus.query('up{job="jupyterhub"} == 1'), timeout=60)
    result = subprocess.run(["promtool", "check", "config",
                             str(prometheus.folder / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "notebench-dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_every_dashboard_expression_returns_data(prometheus: Prometheus) -> None:
    wait_until(lambda: len(prometheus.query('up{job="notebench"} == 1')) == len(USERS),
               timeout=90)
    gpus = {r["metric"]["user"]: float(r["value"][1])
            for r in prometheus.query("notebench_gpus")}
    assert set(gpus) == set(USERS)
    # per-GPU series exist only where NVML sees a GPU (checked on a GPU machine)
    per_gpu = [e for e in dashboard_expressions() if "notebench_gpu_" in e]
    assert (per_gpu and all(count == 0 for count in gpus.values())) or any(gpus.values())

    def answered(expr: str) -> bool:  # a rate needs two scrapes in its window
        try:
            wait_until(lambda: prometheus.query(expr), timeout=20)
        except AssertionError:
            return False
        return True

    empty = [e for e in dashboard_expressions()
             if (e not in per_gpu or any(gpus.values())) and not answered(e)]
    assert empty == []


# -- the idle culler -------------------------------------------------------------------------

STEPS = ("import notebench\nfor step in range(steps):\n"
         "    notebench.report(step=step, loss=1 / (step + 1))")
BUSY = "import time\nfor _ in range(int(seconds * 10)):\n    time.sleep(0.1)"


def test_the_culler_stops_an_idle_server_and_keeps_one_with_a_running_job(
        tmp_path: Path) -> None:
    from tests.integration.widgets.tiny import write_notebook

    hub = Hub(tmp_path / "hub", settings={
        "NOTEBENCH_HUB_CULL_TIMEOUT": "12", "NOTEBENCH_HUB_CULL_EVERY": "2",
        "NOTEBENCH_HUB_ACTIVITY_INTERVAL": "2"})
    hub.start()
    try:
        hub.add_users("carol", "dave")
        hub.start_server("carol")
        write_notebook(tmp_path / "hub" / "homes" / "carol" / "busy.ipynb", [BUSY],
                       parameters="seconds: float = 600")
        token = hub.token_for("carol")
        submitted = request(f"{hub.url}/user/carol/notebench/api/lifecycle/jobs", "POST",
                            {"notebook": "busy.ipynb"}, token=token)
        assert submitted.status == 201, submitted.body
        job = f"{hub.url}/user/carol/notebench/api/lifecycle/jobs/{submitted.body['id']}"
        wait_until(lambda: request(job, token=token).body["state"] == "running", timeout=120)
        started = time.monotonic()  # the Hub counts dave's idleness from the spawn
        hub.start_server("dave")
        wait_until(lambda: not hub.server_running("dave"), timeout=120)
        idle_for = time.monotonic() - started
        assert idle_for >= 12  # not before the timeout
        assert hub.server_running("carol")  # past the timeout too, busy with its job
        assert request(job, token=token).body["state"] == "running"
        request(f"{job}/control", "POST", {"action": "stop"}, token=token)
    finally:
        hub.stop()


# -- jobs on the shared Dask cluster --------------------------------------------------------

def test_a_users_job_runs_on_the_shared_dask_cluster_and_reports_through_nginx(
        tmp_path: Path) -> None:
    """The Hub's DASK_SCHEDULER: the user's server submits to the cluster; the worker sends
    the job's output back through nginx (TLS) and the proxy with the job's own token."""
    from tests.dask_cluster import start_cluster
    from tests.integration.widgets.tiny import write_notebook

    proxy_port = free_port()
    front = Nginx(tmp_path / "nginx", upstream=f"127.0.0.1:{proxy_port}")
    front.config()  # the certificate the worker must trust
    cluster = start_cluster(tmp_path, {"cpu-worker": ("CPU=2",)},
                            {"cpu-worker": {"SSL_CERT_FILE": str(front.cert)}})
    hub = Hub(tmp_path / "hub", proxy_port=proxy_port, settings={
        "NOTEBENCH_HUB_DASK_SCHEDULER": cluster.address,
        "NOTEBENCH_HUB_WORKER_URL": front.url})
    try:
        hub.start()
        front.start()
        hub.add_users("erin")
        hub.start_server("erin")
        token = hub.token_for("erin")
        write_notebook(hub.folder / "homes" / "erin" / "steps.ipynb", [STEPS],
                       parameters="steps: int = 5")
        submitted = api(front, "erin", "lifecycle/jobs", token, "POST",
                        {"notebook": "steps.ipynb"})
        assert submitted.status == 201, submitted.body
        path = f"lifecycle/jobs/{submitted.body['id']}"

        def ended() -> dict[str, Any] | None:
            job = api(front, "erin", path, token).body
            return job if job["state"] in TERMINAL else None

        done = wait_until(ended, timeout=180)
        assert done["state"] == "succeeded", (done["reason"], done["error"])
        runner = done["processes"]["runner"]
        assert runner["executor"] == "dask" and runner["worker"].startswith("tcp://"), runner
        metrics = api(front, "erin", f"{path}/metrics", token).body
        losses = next(s for s in metrics["series"] if s["name"] == "loss")
        assert losses["count"] == 5
    finally:
        front.stop()
        hub.stop()
        cluster.stop()


# -- nginx's rate limit (last: it spends the address's allowance) --------------------------

def test_nginx_limits_the_request_rate_on_the_apis(nginx: Nginx) -> None:
    url = f"{nginx.url}/hub/api/"
    context = nginx.context()

    def one(_: int) -> int:
        return request(url, context=context).status

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(one, range(400)))
    assert statuses.count(429) > 0, statuses  # past the burst: refused, not queued
    assert statuses.count(200) >= 100  # the burst itself passes
    assert set(statuses) <= {200, 429}
    # the allowance comes back (50 requests a second)
    wait_until(lambda: request(url, context=context).status == 200, timeout=30)
