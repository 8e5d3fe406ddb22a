"""JupyterHub for a team that trains with notebench.

Every user's single-user server runs notebench; jobs may run on a shared Dask cluster (a
scheduler address, or a factory such as one for Dask Gateway); jupyterhub-idle-culler stops
idle servers but never one with a running or queued job (notebench reports the server active
while work is in flight); Prometheus finds every running user's ``notebench/metrics`` through the
``notebench-prometheus-sd`` service. nginx (deploy/nginx.conf) terminates TLS in front of
the proxy. docs/deploy.md walks through the whole set-up.

Settings come from ``NOTEBENCH_HUB_*`` environment variables (the systemd unit's
``EnvironmentFile``), so one file serves every host; the defaults are a single machine.
``NOTEBENCH_HUB_EXTRA_CONFIG`` names a file loaded last (site overrides: an authenticator,
a spawner).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (JupyterHub's config loader)


def setting(name: str, default: str) -> str:
    """``NOTEBENCH_HUB_<name>`` from the environment, or ``default``."""
    return os.environ.get(f"NOTEBENCH_HUB_{name}", default)


def seconds(name: str, default: int) -> int:
    return int(setting(name, str(default)))


STATE_DIR = Path(setting("STATE_DIR", "/var/lib/jupyterhub"))
PUBLIC_URL = setting("BIND_URL", "http://127.0.0.1:8000")  # the proxy: nginx's upstream
HUB_URL = setting("HUB_BIND_URL", "http://127.0.0.1:8081")
SD_PORT = seconds("SD_PORT", 8090)
ADMINS = set(setting("ADMINS", "").split())
DASK_SCHEDULER = setting("DASK_SCHEDULER", "")  # tcp://host:8786
DASK_FACTORY = setting("DASK_CLUSTER_FACTORY", "")  # module.function returning a cluster
WORKER_URL = setting("WORKER_URL", PUBLIC_URL)  # how the workers reach the Hub (nginx)

# -- the Hub, its database and the proxy -------------------------------------------------
c.JupyterHub.bind_url = PUBLIC_URL
c.JupyterHub.hub_bind_url = HUB_URL
c.JupyterHub.db_url = f"sqlite:///{STATE_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE_DIR / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.api_url = setting("PROXY_API_URL", "http://127.0.0.1:8001")
c.ConfigurableHTTPProxy.command = shlex.split(
    setting("PROXY_COMMAND", "configurable-http-proxy"))
c.ConfigurableHTTPProxy.pid_file = str(STATE_DIR / "proxy.pid")
# A request through the proxy is not activity: Prometheus scrapes every server through it,
# and counting scrapes would keep every server alive. Each server reports its own activity
# (kernels, API use, notebench's running and queued jobs) to the Hub instead.
c.JupyterHub.last_activity_interval = 0

# -- single-user servers: notebench in each -----------------------------------------------
# the servers run the Hub's environment (where notebench is installed) unless told otherwise
c.Spawner.cmd = [setting("SINGLEUSER", str(Path(sys.executable).with_name(
    "jupyterhub-singleuser")))]
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = seconds("SPAWN_TIMEOUT", 120)
c.Spawner.start_timeout = seconds("SPAWN_TIMEOUT", 120)
notebench_args = [
    # Prometheus scrapes notebench/metrics through the proxy without a user's token;
    # nginx refuses that path from outside (deploy/nginx.conf)
    "--NotebenchMonitoringService.metrics_public=True",
]
if DASK_SCHEDULER or DASK_FACTORY:
    notebench_args.append("--NotebenchJobService.executor_class="
                          "notebench.server.jobs.dask_executor.DaskExecutor")
if DASK_SCHEDULER:
    notebench_args.append(f"--NotebenchDaskCluster.scheduler_address={DASK_SCHEDULER}")
elif DASK_FACTORY:  # e.g. a function that returns a Dask Gateway cluster (docs/cluster.md)
    notebench_args.append(f"--NotebenchDaskCluster.cluster_factory={DASK_FACTORY}")
c.Spawner.args = notebench_args
c.Spawner.environment = {
    # how often a server tells the Hub it is busy (the culler reads it)
    "JUPYTERHUB_ACTIVITY_INTERVAL": str(seconds("ACTIVITY_INTERVAL", 60)),
}


def worker_reachable_url(spawner) -> None:  # type: ignore[no-untyped-def]
    """Workers send a job's output back to its user's server through the public URL (the
    only address of that server the cluster can reach)."""
    if DASK_SCHEDULER or DASK_FACTORY:
        url = f"{WORKER_URL.rstrip('/')}/user/{spawner.user.name}/"
        option = "--NotebenchDaskCluster.server_url="
        kept = [a for a in spawner.args if not a.startswith(option)]  # a spawner is reused
        spawner.args = [*kept, f"{option}{url}"]


c.Spawner.pre_spawn_hook = worker_reachable_url

# -- the idle culler and Prometheus discovery, as Hub services --------------------------
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                    f"--timeout={seconds('CULL_TIMEOUT', 3600)}",
                    f"--cull-every={seconds('CULL_EVERY', 300)}"],
    },
    {
        "name": "notebench-prometheus-sd",
        "url": f"http://127.0.0.1:{SD_PORT}",
        "command": [sys.executable, "-m", "notebench.server.hub.prometheus_sd",
                    f"--port={SD_PORT}", f"--proxy-address={PUBLIC_URL.split('://')[1]}"],
    },
]
prometheus_token_file = setting("PROMETHEUS_TOKEN_FILE", "")
if prometheus_token_file:  # Prometheus's own identity: the targets and the Hub's metrics
    c.JupyterHub.services.append({
        "name": "prometheus",
        "api_token": Path(prometheus_token_file).read_text().strip(),
    })

# -- roles: least privilege for each service; admins see every user's jobs --------------
c.JupyterHub.load_roles = [
    {"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
    {"name": "notebench-prometheus-sd", "services": ["notebench-prometheus-sd"],
     "scopes": ["list:users", "read:users:name", "read:servers"]},
    # a user reaches only their own server (JupyterHub's default user role); a member of
    # this role reaches every user's server, hence every user's jobs, and the admin page
    {"name": "notebench-admin", "users": sorted(ADMINS),
     "scopes": ["admin-ui", "list:users", "read:users", "read:servers", "access:servers"]},
]
if prometheus_token_file:
    c.JupyterHub.load_roles.append(
        {"name": "prometheus", "services": ["prometheus"],
         "scopes": ["read:metrics", "access:services!service=notebench-prometheus-sd"]})

extra = setting("EXTRA_CONFIG", "")
if extra:
    load_subconfig(extra)  # type: ignore[name-defined]  # noqa: F821
