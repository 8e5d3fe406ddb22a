"""The webhook notifier against real local HTTP servers: retries, resolved notices, silence,
and a dead receiver that blocks nothing."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from tornado import web
from tornado.httpserver import HTTPServer

from tests.server_process import free_port

from .conftest import INTERVAL, wait_for

RULES = [{"name": "hook_rule", "metric": "hook_value", "threshold": 0, "severity": "critical",
          "message": "hook value {value:g}"}]


class Receiver:
    """A local HTTP server that fails the first ``failures`` POSTs with 503."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.bodies: list[dict] = []
        receiver = self

        class Hook(web.RequestHandler):
            def post(self) -> None:
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.set_status(503)
                    return
                receiver.bodies.append(orjson.loads(self.request.body))
                self.write({"ok": True})

        self.app = web.Application([(r"/hook", Hook)])
        self.port = free_port()
        self.server: HTTPServer | None = None

    def start(self) -> None:
        self.server = self.app.listen(self.port, address="127.0.0.1")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def receiver():
    hook = Receiver(failures=2)
    yield hook
    hook.stop()


@pytest.fixture
def monitoring_config(receiver):
    return {"interval": INTERVAL, "rules": RULES,
            "webhook_url": f"http://127.0.0.1:{receiver.port}/hook",
            "webhook_backoff": 0.05, "webhook_retries": 4, "webhook_timeout": 5}


async def test_webhook_reaches_a_local_server_with_retries(receiver, source, alerts, api,
                                                           monitoring):
    receiver.start()
    await source("hook_value", 3)
    firing = await alerts.wait("hook_rule", "firing")
    await wait_for(lambda: receiver.bodies)
    assert receiver.attempts == 3  # two 503s, then delivered
    body = receiver.bodies[0]
    assert body["status"] == "firing" and body["version"] == "4"
    [entry] = body["alerts"]
    assert entry["fingerprint"] == firing["id"]
    assert entry["labels"]["alertname"] == "hook_rule"
    assert entry["labels"]["severity"] == "critical"
    assert entry["annotations"]["summary"] == "hook value 3"
    assert entry["notebench"]["state"] == "firing"
    await source("hook_value", 0)
    await alerts.wait("hook_rule", "resolved")
    await wait_for(lambda: len(receiver.bodies) == 2)
    assert receiver.bodies[1]["status"] == "resolved"
    assert receiver.bodies[1]["alerts"][0]["endsAt"].endswith("Z")
    stats = (await api("GET", "monitoring/stats")).body["webhook"]
    assert stats["sent"] == 2 and stats["retried"] == 2 and stats["failed"] == 0

    # a silenced identity is not notified (firing nor resolved)
    await api("POST", f"monitoring/alerts/{firing['id']}/silence", {"duration": "10m"})
    await source("hook_value", 5)
    again = await alerts.wait("hook_rule", "firing")
    await source("hook_value", 0)
    await alerts.wait("hook_rule", "resolved", episode=again["episode"])
    await asyncio.sleep(0.3)
    assert len(receiver.bodies) == 2
