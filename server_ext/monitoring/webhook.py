"""The optional webhook notifier: alert notifications POSTed as JSON, retried, never blocking.

Notifications wait in a bounded queue (the oldest is dropped when it is full) and one
task sends them in order with Tornado's non-blocking HTTP client (an instance of its own,
so a slow receiver never holds the connections of other code in the server). A failure
(connection error, timeout, 5xx, 429) is retried with exponential backoff; another 4xx is
not. The body follows Alertmanager's webhook format (``version`` "4", ``status``,
``alerts`` with ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``), so
receivers written for Alertmanager understand it; notebench's own alert is under
``alerts[].notebench``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
import urllib.parse
from collections import deque
from typing import Any

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

log = logging.getLogger("notebench.monitoring")


def _rfc3339(ts: float | None) -> str:
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace(
        "+00:00", "Z")


def payload(alert: dict[str, Any], *, external_url: str = "") -> dict[str, Any]:
    """The webhook body for one alert notification (firing or resolved)."""
    status = "resolved" if alert["state"] == "resolved" else "firing"
    labels = {"alertname": alert["rule"], "severity": alert["severity"], **alert["labels"]}
    entry = {
        "status": status, "labels": labels,
        "annotations": {"summary": alert["message"]},
        "startsAt": _rfc3339(alert.get("fired_at") or alert.get("pending_at")),
        "endsAt": _rfc3339(alert.get("resolved_at")),
        "generatorURL": external_url, "fingerprint": alert["id"], "notebench": alert,
    }
    return {"version": "4", "receiver": "notebench", "status": status, "alerts": [entry],
            "groupLabels": {"alertname": alert["rule"]}, "commonLabels": labels,
            "commonAnnotations": entry["annotations"], "externalURL": external_url,
            "groupKey": alert["id"], "truncatedAlerts": 0}


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: its path, query and user info often hold a
    secret (a token), so only this part of it may be logged or shown."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(an invalid URL)"
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return f"{parts.scheme}://{host}{port}" if parts.scheme and host else "(a URL)"


class WebhookNotifier:
    """Sends notifications to one URL in the background."""

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 5,
                 backoff: float = 1.0, max_backoff: float = 60.0,
                 headers: dict[str, str] | None = None, queue_max: int = 1000,
                 external_url: str = "") -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.headers = dict(headers or {})
        self.external_url = external_url
        self._queue: deque[dict[str, Any]] = deque(maxlen=max(1, queue_max))
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: AsyncHTTPClient | None = None
        # figures (stats)
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.dropped = 0
        self.in_flight = False
        self.last_error: str | None = None
        self.last_status: int | None = None

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._client = AsyncHTTPClient(force_instance=True, max_clients=2)
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def notify(self, alert: dict[str, Any]) -> None:
        """Queue a notification; returns at once (loop only)."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(payload(alert, external_url=self.external_url))
        if self._wake is not None:
            self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def figures(self) -> dict[str, Any]:
        return {"url_set": True, "sent": self.sent, "failed": self.failed,
                "retried": self.retried, "dropped": self.dropped, "queued": self.queued,
                "in_flight": self.in_flight, "last_status": self.last_status,
                "last_error": self.last_error}

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            body = self._queue.popleft()
            self.in_flight = True
            try:
                await self._deliver(body)
            finally:
                self.in_flight = False

    async def _deliver(self, body: dict[str, Any]) -> None:
        data = orjson.dumps(body)
        for attempt in range(self.retries + 1):
            retry, error = await self._post(data)
            if error is None:
                self.sent += 1
                return
            self.last_error = error
            if not retry or attempt == self.retries:
                break
            self.retried += 1
            delay = min(self.max_backoff, self.backoff * (2 ** attempt))
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
        self.failed += 1
        log.warning("alert webhook %s failed: %s", url_origin(self.url), self.last_error)

    def _redact(self, error: str) -> str:
        """An error message without the URL (an error may quote it)."""
        return error.replace(self.url, url_origin(self.url))

    async def _post(self, data: bytes) -> tuple[bool, str | None]:
        """(retry?, error or None when delivered)."""
        assert self._client is not None
        request = HTTPRequest(
            self.url, method="POST", body=data,
            headers={"Content-Type": "application/json", "User-Agent": "notebench",
                     **self.headers},
            connect_timeout=self.timeout, request_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            response = await self._client.fetch(request, raise_error=False)
        except Exception as exc:  # connection refused, DNS, timeouts
            return True, self._redact(f"{type(exc).__name__}: {exc}")
        self.last_status = response.code
        if 200 <= response.code < 300:
            return False, None
        if response.code == 599:  # Tornado's code for a timeout or a failed connection
            return True, self._redact(str(response.error or "no response"))
        retry = response.code >= 500 or response.code == 429
        return retry, f"HTTP {response.code}"
