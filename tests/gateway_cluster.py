"""A local Dask Gateway for the tests: the server (``dask-gateway-server`` with its local
backend, clusters as processes of this machine) and the cluster factory the Dask executor
is configured with (``c.NotebenchDaskCluster.cluster_factory``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSWORD = "gateway-test-password"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalGateway:
    process: subprocess.Popen[bytes]
    address: str  # the public address (the HTTP API, proxied)
    proxy_address: str  # where clients reach the schedulers (TLS through the proxy)
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_gateway(root: Path) -> LocalGateway:
    """``dask-gateway-server`` with the local backend, its clusters one worker each."""
    api, public = _free_port(), _free_port()
    config = root / "gateway_config.py"
    scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker"]
    config.write_text(
        'c.DaskGateway.backend_class = '
        '"dask_gateway_server.backends.local.UnsafeLocalBackend"\n'
        f'c.DaskGateway.address = "127.0.0.1:{api}"\n'
        f'c.Proxy.address = "127.0.0.1:{public}"\n'
        'c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"\n'
        f'c.SimpleAuthenticator.password = "{PASSWORD}"\n'
        'c.ClusterConfig.worker_cores = 1\n'
        'c.ClusterConfig.worker_memory = "1 G"\n'
        f"c.ClusterConfig.scheduler_cmd = {scheduler!r}\n"
        f"c.ClusterConfig.worker_cmd = {worker!r}\n"
        f'c.LocalBackend.clusters_directory = "{root / "clusters"}"\n')
    log = root / "gateway.log"
    command = [sys.executable, "-c", "from dask_gateway_server.app import main; main()",
               "-f", str(config)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                   start_new_session=True)
    gateway = LocalGateway(process, f"http://127.0.0.1:{public}",
                           f"tcp://127.0.0.1:{public}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{gateway.address}/api/health", timeout=2):
                return gateway
        except OSError:
            time.sleep(0.2)
    gateway.stop()
    raise TimeoutError(f"the gateway did not start: {log.read_text()[-3000:]}")


def new_cluster(address: str, proxy_address: str, username: str = "alice",
                password: str = PASSWORD, workers: int = 1) -> Any:
    """The cluster factory: a new Gateway cluster with ``workers`` workers."""
    from dask_gateway import BasicAuth, Gateway

    gateway = Gateway(address, proxy_address=proxy_address,
                      auth=BasicAuth(username, password))
    cluster = gateway.new_cluster()
    cluster.scale(workers)
    return cluster
