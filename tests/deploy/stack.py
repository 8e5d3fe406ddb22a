"""The deployment of deploy/ on loopback, for tests: JupyterHub with configurable-http-proxy
and its services, nginx with a self-signed certificate in front, Prometheus behind.

Each part runs the shipped file; the only changes are the addresses, ports and paths a site
changes too (docs/deploy.md lists them), made by ``render``."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.server_process import ROOT, free_port
from tests.waiting import wait_until

DEPLOY = ROOT / "deploy"
PROXY = DEPLOY / "node_modules" / ".bin" / "configurable-http-proxy"
HUB_BIN = Path(sys.executable).parent / "jupyterhub"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def missing_parts() -> list[str]:
    """What this machine lacks to run the stack (``make test`` installs all of it)."""
    parts = {"jupyterhub (pip, test extra)": HUB_BIN,
             "configurable-http-proxy (npm, deploy/package.json)": PROXY,
             "nginx (Debian)": Path(NGINX), "prometheus (Debian)": Path(PROMETHEUS)}
    return [name for name, path in parts.items() if not path.exists()]


def render(text: str, replacements: dict[str, str]) -> str:
    """The shipped file with a site's values: every original must be there to replace."""
    for original, value in replacements.items():
        assert original in text, f"{original!r} is no longer in the shipped file"
        text = text.replace(original, value)
    return text


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), valid for a day."""
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def request(url: str, method: str = "GET", body: Any = None, *, token: str | None = None,
            context: ssl.SSLContext | None = None, timeout: float = 30) -> Answer:
    """One HTTP(S) request; JSON in and out where there is JSON."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"token {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Answer(status, parsed, {k.lower(): v for k, v in got.items()})


@dataclass
class Process:
    """A part of the stack: its process and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Until ``probe()`` holds (refused connections count as not yet); fails at once,
        with the log's tail, if the process ended."""
        def ready() -> bool:
            assert self.proc.poll() is None, f"{self.name} ended:\n{self.tail()}"
            try:
                return probe()
            except OSError:
                return False

        wait_until(ready, timeout=timeout)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start(name: str, command: list[str], folder: Path, env: dict[str, str] | None = None
          ) -> Process:
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    return Process(name, proc, log)


@dataclass
class Hub:
    """JupyterHub from deploy/jupyterhub_config.py, its proxy and its services."""

    folder: Path
    settings: dict[str, str] = field(default_factory=dict)
    driver_token: str = field(default_factory=lambda: secrets.token_hex(16))
    prometheus_token: str = field(default_factory=lambda: secrets.token_hex(16))
    proxy_port: int = field(default_factory=free_port)
    sd_port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def url(self) -> str:
        """The proxy's public side (what nginx forwards to)."""
        return f"http://127.0.0.1:{self.proxy_port}"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "homes").mkdir(exist_ok=True)
        token_file = self.folder / "prometheus-token"
        token_file.write_text(self.prometheus_token)
        env = {
            "NOTEBENCH_HUB_STATE_DIR": str(self.folder),
            "NOTEBENCH_HUB_BIND_URL": self.url,
            "NOTEBENCH_HUB_HUB_BIND_URL": f"http://127.0.0.1:{free_port()}",
            "NOTEBENCH_HUB_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
            "NOTEBENCH_HUB_PROXY_COMMAND": str(PROXY),
            "NOTEBENCH_HUB_SD_PORT": str(self.sd_port),
            "NOTEBENCH_HUB_PROMETHEUS_TOKEN_FILE": str(token_file),
            "NOTEBENCH_HUB_EXTRA_CONFIG": str(Path(__file__).with_name("hub_test_config.py")),
            "NOTEBENCH_TEST_HOMES": str(self.folder / "homes"),
            "NOTEBENCH_TEST_DRIVER_TOKEN": self.driver_token,
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16),
            **self.settings,
        }
        self.process = start("jupyterhub", [str(HUB_BIN), "-f",
                                            str(DEPLOY / "jupyterhub_config.py")],
                             self.folder, env)
        self.process.wait_ready(lambda: self.api("GET", "").status == 200, timeout=120)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def api(self, method: str, path: str, body: Any = None, token: str | None = None
            ) -> Answer:
        """The Hub's REST API through the proxy, as the test driver unless ``token``."""
        return request(f"{self.url}/hub/api/{path}", method, body,
                       token=token or self.driver_token)

    def add_users(self, *names: str) -> None:
        answer = self.api("POST", "users", {"usernames": list(names)})
        assert answer.status in (201, 409), answer.body

    def start_server(self, name: str) -> None:
        answer = self.api("POST", f"users/{name}/server")
        assert answer.status in (201, 202, 400), answer.body  # 400: already running

        def ready() -> bool:
            assert self.process is not None and self.process.proc.poll() is None
            server = (self.api("GET", f"users/{name}").body.get("servers") or {}).get("")
            return bool(server and server.get("ready"))

        wait_until(ready, timeout=180, interval=0.5)

    def server_running(self, name: str) -> bool:
        return bool(self.api("GET", f"users/{name}").body.get("servers"))

    def token_for(self, name: str) -> str:
        answer = self.api("POST", f"users/{name}/tokens", {"note": "tests", "expires_in": 3600})
        assert answer.status == 201, answer.body
        return answer.body["token"]


@dataclass
class Nginx:
    """nginx from deploy/nginx.conf, TLS with a certificate made here."""

    folder: Path
    upstream: str  # host:port of the Hub's proxy
    https_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def config(self) -> Path:
        """The certificate and the rendered configuration (once): workers that must trust
        the certificate may start before nginx does."""
        path = self.folder / "nginx.conf"
        if path.exists():
            return path
        self.folder.mkdir(parents=True, exist_ok=True)
        cert, key = make_certificate(self.folder)
        text = render((DEPLOY / "nginx.conf").read_text(), {
            "pid /run/nginx.pid;": f"pid {self.folder / 'nginx.pid'};",
            "/var/log/nginx/": f"{self.folder}/",
            "listen 80;": f"listen 127.0.0.1:{self.http_port};",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{self.https_port} ssl http2;",
            "/etc/notebench/tls/fullchain.pem": str(cert),
            "/etc/notebench/tls/privkey.pem": str(key),
            "server 127.0.0.1:8000;": f"server {self.upstream};",
        })
        path.write_text(text)
        return path

    @property
    def cert(self) -> Path:
        return self.folder / "fullchain.pem"

    def start(self) -> None:
        path = self.config()
        self.process = start("nginx", [NGINX, "-c", str(path), "-p", str(self.folder),
                                       "-g", "daemon off;"], self.folder)
        self.process.wait_ready(
            lambda: request(f"{self.url}/hub/api/", context=self.context()).status == 200,
            timeout=30)

    def context(self) -> ssl.SSLContext:
        """A client that trusts the test certificate (and checks it)."""
        return ssl.create_default_context(cafile=str(self.cert))

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class Prometheus:
    """Prometheus from deploy/prometheus.yml and deploy/alerts.yml."""

    folder: Path
    hub: Hub
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEPLOY / "alerts.yml", self.folder / "alerts.yml")
        token_file = self.folder / "jupyterhub-token"
        token_file.write_text(self.hub.prometheus_token)
        text = render((DEPLOY / "prometheus.yml").read_text(), {
            "scrape_interval: 15s": "scrape_interval: 1s",
            "evaluation_interval: 15s": "evaluation_interval: 1s",
            "refresh_interval: 30s": "refresh_interval: 1s",
            '"127.0.0.1:8000"': f'"127.0.0.1:{self.hub.proxy_port}"',
            "http://127.0.0.1:8090/": f"http://127.0.0.1:{self.hub.sd_port}/",
            "/etc/prometheus/jupyterhub-token": str(token_file),
        })
        config = self.folder / "prometheus.yml"
        config.write_text(text)
        self.process = start("prometheus", [
            PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}"], self.folder)
        self.process.wait_ready(lambda: request(f"{self.url}/-/ready").status == 200,
                                timeout=60)

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = request(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert answer.status == 200 and answer.body["status"] == "success", answer.body
        return answer.body["data"]["result"]

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

