"""Request statistics of the whole server: counts and latency per route.

Every request Tornado finishes passes through the application's ``log_function``; the
monitoring service wraps it (``install``), so each request is counted without touching
any handler, jupyter_server's own included. Routes are named by their URL pattern (the
base URL left out, groups as ``{}``). Server-Sent Events streams are counted apart: their
"latency" is how long the client stayed. The key space is bounded: routes are the
application's handler classes, and methods outside the standard ones count as ``OTHER``
(anyone may send ``X123 /``), for these figures and for the wrapped log function's.
"""

from __future__ import annotations

import bisect
import contextlib
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from tornado.log import access_log

from ..events.sse import EventStreamHandler

#: upper bounds (seconds) of the latency histogram exported to Prometheus
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: methods counted by name; any other is counted as ``OTHER_METHOD``
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
OTHER_METHOD = "OTHER"


def method_key(method: str | None) -> str:
    """The method as counted: a standard one, or ``OTHER``."""
    method = method or "GET"
    return method if method in KNOWN_METHODS else OTHER_METHOD


class RouteStats:
    """Figures of one (method, route)."""

    __slots__ = ("buckets", "count", "latencies", "statuses", "streams", "sum")

    def __init__(self, window: int) -> None:
        self.count = 0
        self.sum = 0.0
        self.streams = 0
        self.statuses: dict[str, int] = {}
        self.latencies: deque[float] = deque(maxlen=window)
        self.buckets = [0] * (len(BUCKETS) + 1)

    def add(self, seconds: float, status: int, stream: bool) -> None:
        self.count += 1
        klass = f"{status // 100}xx"
        self.statuses[klass] = self.statuses.get(klass, 0) + 1
        if stream:
            self.streams += 1
            return
        self.sum += seconds
        self.latencies.append(seconds)
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1


class RequestStats:
    """Counts and latencies of every request, by method and route."""

    def __init__(self, window: int = 2048) -> None:
        self.window = window
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.total = 0
        self._names: dict[type, str] = {}
        self._app: Any = None
        self._original: Callable[..., Any] | None = None
        self._wrapper: Callable[..., Any] | None = None

    # -- hooking into the application ------------------------------------------------------

    def install(self, web_app: Any) -> None:
        """Wrap the application's ``log_function`` (restored by ``uninstall``)."""
        self._app = web_app
        base_url = str(web_app.settings.get("base_url", "/"))
        self._names = route_names(web_app, base_url)
        original = web_app.settings.get("log_function")

        def log_function(handler: Any) -> None:
            with contextlib.suppress(Exception):
                self.record(handler)
            if original is not None:
                request = handler.request
                raw_method = request.method
                if raw_method not in KNOWN_METHODS:
                    # jupyter_server's own request metrics label the raw method: one
                    # labelled histogram per invented method otherwise
                    request.method = OTHER_METHOD
                try:
                    original(handler)
                finally:
                    request.method = raw_method
            else:  # Tornado's default access log (jupyter_server always sets its own)
                status = handler.get_status()
                method = (access_log.info if status < 400 else
                          access_log.warning if status < 500 else access_log.error)
                method("%d %s %.2fms", status, handler._request_summary(),
                       1000.0 * handler.request.request_time())

        self._original = original
        self._wrapper = log_function
        web_app.settings["log_function"] = log_function

    def uninstall(self) -> None:
        app = self._app
        if app is not None and app.settings.get("log_function") is self._wrapper:
            if self._original is None:
                app.settings.pop("log_function", None)
            else:
                app.settings["log_function"] = self._original
        self._app = None

    def record(self, handler: Any) -> None:
        request = handler.request
        route = self._names.get(type(handler)) or type(handler).__name__
        key = (method_key(request.method), route)
        stats = self.routes.get(key)
        if stats is None:
            stats = self.routes[key] = RouteStats(self.window)
        stats.add(request.request_time(), handler.get_status(),
                  isinstance(handler, EventStreamHandler))
        self.total += 1

    # -- reading -------------------------------------------------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for (method, route), stats in sorted(self.routes.items(), key=lambda kv: kv[0][1]):
            ordered = sorted(stats.latencies)
            entry: dict[str, Any] = {
                "method": method, "route": route, "count": stats.count,
                "statuses": dict(stats.statuses), "streams": stats.streams,
                "latency_ms": None,
            }
            if ordered:
                entry["latency_ms"] = {
                    "p50": _ms(_percentile(ordered, 50)), "p90": _ms(_percentile(ordered, 90)),
                    "p99": _ms(_percentile(ordered, 99)), "max": _ms(ordered[-1]),
                    "mean": _ms(sum(ordered) / len(ordered)), "window": len(ordered),
                }
            out.append(entry)
        return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _percentile(ordered: list[float], q: float) -> float:
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


_GROUP = re.compile(r"\((?:\?P<(\w+)>)?(?:[^()]|\([^()]*\))*\)")


def route_name(pattern: str, base_url: str) -> str:
    """``/base/notebench/api/jobs/(j-[0-9a-f]+)$`` -> ``/notebench/api/jobs/{}``."""
    text = pattern.rstrip("$")
    text = _GROUP.sub(lambda m: "{" + (m.group(1) or "") + "}", text)
    text = text.replace("\\", "")
    prefix = base_url.rstrip("/")
    if prefix and text.startswith(prefix + "/"):
        text = text[len(prefix):]
    return text or "/"


def route_names(web_app: Any, base_url: str) -> dict[type, str]:
    """Handler class -> its (first) route, from the application's routers."""
    names: dict[type, str] = {}

    def walk(router: Any) -> None:
        for rule in getattr(router, "rules", []):
            target = rule.target
            if hasattr(target, "rules"):
                walk(target)
                continue
            regex = getattr(rule.matcher, "regex", None)
            if isinstance(target, type) and regex is not None and target not in names:
                names[target] = route_name(regex.pattern, base_url)

    walk(web_app.default_router)
    walk(web_app.wildcard_router)
    return names
