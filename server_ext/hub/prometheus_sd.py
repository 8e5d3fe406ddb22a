"""``notebench-prometheus-sd``: Prometheus HTTP service discovery from the Hub's API.

A JupyterHub service (``python -m notebench.server.hub.prometheus_sd``, started by the Hub,
deploy/jupyterhub_config.py). ``GET <prefix>targets`` answers Prometheus's ``http_sd_configs``
with one target group per ready server: the proxy's address, the server's
``notebench/metrics`` path, and ``user`` / ``server_name`` labels.

Least privilege on both sides: the service's own Hub token needs only ``list:users``,
``read:users:name`` and ``read:servers``; a caller needs a Hub token allowed to access this
service (``access:services!service=notebench-prometheus-sd``), which Prometheus holds and
nothing else needs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any
from urllib.parse import urlencode

from jupyterhub.services.auth import HubAuth, HubAuthenticated
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

PAGE = "application/jupyterhub-pagination+json"
PAGE_SIZE = 200


async def ready_servers(api_url: str, token: str) -> list[dict[str, Any]]:
    """``[{"user", "server_name", "url"}]`` of every ready server, page by page."""
    client = AsyncHTTPClient()
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        query = urlencode({"state": "ready", "offset": offset, "limit": PAGE_SIZE})
        response = await client.fetch(HTTPRequest(
            f"{api_url.rstrip('/')}/users?{query}",
            headers={"Authorization": f"token {token}", "Accept": PAGE}, request_timeout=30))
        page = json.loads(response.body)
        for user in page["items"]:
            for name, server in (user.get("servers") or {}).items():
                if server.get("ready") and server.get("url"):
                    found.append({"user": user["name"], "server_name": name,
                                  "url": server["url"]})
        following = (page.get("_pagination") or {}).get("next")
        if not following:
            return found
        offset = int(following["offset"])


def target_groups(servers: list[dict[str, Any]], proxy_address: str) -> list[dict[str, Any]]:
    """Prometheus's target groups: one per server, scraped through the proxy."""
    return [{"targets": [proxy_address],
             "labels": {"user": s["user"], "server_name": s["server_name"],
                        "__metrics_path__": f"{s['url'].rstrip('/')}/notebench/metrics"}}
            for s in servers]


class TargetsHandler(HubAuthenticated, web.RequestHandler):
    """``GET targets``: the target groups, for callers the Hub lets access this service."""

    def initialize(self, hub_auth: HubAuth, proxy_address: str) -> None:
        self.hub_auth = hub_auth
        self.proxy_address = proxy_address

    @web.authenticated
    async def get(self) -> None:
        servers = await ready_servers(self.hub_auth.api_url, self.hub_auth.api_token)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(target_groups(servers, self.proxy_address)))


def make_app(proxy_address: str, hub_auth: HubAuth | None = None) -> web.Application:
    auth = hub_auth or HubAuth()
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return web.Application([
        (rf"{prefix.rstrip('/')}/targets", TargetsHandler,
         {"hub_auth": auth, "proxy_address": proxy_address}),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="notebench-prometheus-sd", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--proxy-address", required=True,
                        help="host:port where Prometheus reaches the Hub's proxy")
    args = parser.parse_args(argv)

    async def serve() -> None:
        make_app(args.proxy_address).listen(args.port, args.ip)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
