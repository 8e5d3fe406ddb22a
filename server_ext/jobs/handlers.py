"""Routes of the jobs capability (``lifecycle/...``): parse, call the service, answer."""

from __future__ import annotations

import asyncio
import mimetypes
import time
from typing import Any

from tornado.iostream import StreamClosedError

from ..errors import ApiError, bad_request
from ..events.bus import Event, encode_payload, sse_frame
from ..events.sse import EventStreamHandler
from ..handlers import NotebenchHandler
from . import states
from .logquery import query_from_args
from .service import DEFAULT_MAX_POINTS, JOBS_TOPIC, MAX_PAGE, MAX_POINTS_LIMIT, job_topic

ID = r"([jr]-[0-9a-f]{12})"
CHUNK = 1024 * 1024
#: types a browser must never render from the server's origin
_UNSAFE_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml",
                 "application/xml", "text/javascript", "application/javascript")


class JobsHandlerBase(NotebenchHandler):
    auth_area = "jobs"

    @property
    def jobs(self) -> Any:
        return self.services.jobs

    def number_arg(self, name: str, kind: type, *, low: float | None = None,
                   high: float | None = None) -> Any:
        raw = self.get_query_argument(name, None)
        if raw in (None, ""):
            return None
        try:
            value = kind(raw)
        except ValueError:
            raise bad_request(f"{name} must be a number", "invalid_parameter") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise bad_request(f"{name} must be between {low:g} and {high:g}",
                              "invalid_parameter")
        return value

    def list_arg(self, name: str) -> list[str] | None:
        raw = self.get_query_argument(name, None)
        if not raw:
            return None
        return [part.strip() for part in raw.split(",") if part.strip()] or None


class TemplatesHandler(JobsHandlerBase):
    """``GET lifecycle/templates``."""

    async def get(self) -> None:
        self.write_json({"templates": await self.jobs.templates()})


class ParametersHandler(JobsHandlerBase):
    """``GET lifecycle/parameters?path=``: a notebook's parameters."""

    async def get(self) -> None:
        path = self.get_query_argument("path", "")
        if not path:
            raise bad_request("name a notebook: ?path=<path under the server root>",
                              "missing_path")
        self.write_json(await self.jobs.notebook_parameters(path))


class JobsHandler(JobsHandlerBase):
    """``GET lifecycle/jobs`` (filters, paging); ``POST`` submits a job."""

    execute_methods = frozenset({"POST"})

    async def get(self) -> None:
        wanted = self.list_arg("state")
        if wanted:
            unknown = [s for s in wanted if s not in states.STATES]
            if unknown:
                raise bad_request(f"unknown state {unknown[0]!r}: one of "
                                  f"{', '.join(states.STATES)}", "invalid_parameter")
        kind = self.get_query_argument("kind", None) or None
        if kind is not None and kind not in ("papermill", "interactive"):
            raise bad_request("kind must be papermill or interactive", "invalid_parameter")
        limit = self.number_arg("limit", int, low=1, high=MAX_PAGE) or 100
        offset = self.number_arg("offset", int, low=0) or 0
        self.write_json(await self.jobs.list_jobs(
            states_filter=wanted, tag=self.get_query_argument("tag", None) or None, kind=kind,
            template=self.get_query_argument("template", None) or None,
            parent_id=self.get_query_argument("parent_id", None) or None,
            limit=limit, offset=offset))

    async def post(self) -> None:
        self.require_writable()
        job = await self.jobs.submit(self.json_body())
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{job['id']}")
        self.write_json(job, status=201)


class JobHandler(JobsHandlerBase):
    """``GET lifecycle/jobs/{id}``."""

    async def get(self, job_id: str) -> None:
        self.write_json(await self.jobs.get_job(job_id))


class ControlHandler(JobsHandlerBase):
    """``POST lifecycle/jobs/{id}/control``: ``{"action": pause|resume|stop|restart|cancel}``.

    Restart runs code: it also needs ``execute`` on ``kernels``.
    """

    async def post(self, job_id: str) -> None:
        self.require_writable()
        body = self.json_body()
        action = body.get("action")
        if not isinstance(action, str):
            raise bad_request("name an action: pause, resume, stop, restart or cancel",
                              "invalid_action")
        if action == "restart" and not self.authorizer.is_authorized(
                self, self.current_user, "execute", "kernels"):
            raise ApiError(403, "forbidden", "running code needs execute permission on kernels")
        job = await self.jobs.control(job_id, action, body)
        self.write_json(job, status=201 if action == "restart" else 200)


class MetricsHandler(JobsHandlerBase):
    """``GET lifecycle/jobs/{id}/metrics?names=&since=&max_points=&x=&format=``."""

    async def get(self, job_id: str) -> None:
        names = self.list_arg("names")
        since = self.number_arg("since", float)
        fmt = self.get_query_argument("format", "json")
        if fmt == "csv":
            data = await self.jobs.metrics_csv(job_id, names=names, since=since)
            self.set_header("Content-Disposition", f'attachment; filename="{job_id}-metrics.csv"')
            self.finish(data, set_content_type="text/csv; charset=utf-8")
            return
        if fmt != "json":
            raise bad_request("format must be json or csv", "invalid_parameter")
        axis = self.get_query_argument("x", "step")
        if axis not in ("step", "time"):
            raise bad_request("x must be step or time", "invalid_parameter")
        max_points = self.number_arg("max_points", int, low=1, high=MAX_POINTS_LIMIT)
        self.write_json(await self.jobs.metrics(
            job_id, names=names, since=since, axis=axis,
            max_points=max_points if max_points is not None else DEFAULT_MAX_POINTS))


class LogsHandler(JobsHandlerBase):
    """``GET lifecycle/jobs/{id}/logs?since=&tail=&level=&q=&after_id=&limit=``."""

    async def get(self, job_id: str) -> None:
        query = query_from_args(lambda name: self.get_query_argument(name, None),
                                job_id=job_id)
        self.write_json(await self.jobs.job_logs(job_id, query))


class OutputHandler(JobsHandlerBase):
    """``GET lifecycle/jobs/{id}/output``: the executed notebook as it stands."""

    async def get(self, job_id: str) -> None:
        data = await self.jobs.output(job_id)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


class ArtifactsHandler(JobsHandlerBase):
    """``GET lifecycle/artifacts/{id}``: the job's files."""

    async def get(self, job_id: str) -> None:
        self.write_json(await self.jobs.artifacts(job_id))


class ArtifactHandler(JobsHandlerBase):
    """``GET lifecycle/artifacts/{id}/{path}``: one file, as a download."""

    async def get(self, job_id: str, relative: str) -> None:
        path = await self.jobs.artifact_file(job_id, relative)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind in _UNSAFE_TYPES or kind.startswith("text/html"):
            kind = "application/octet-stream"
        size = (await asyncio.to_thread(path.stat)).st_size
        self.set_header("Content-Type", kind)
        self.set_header("Content-Length", str(size))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox")
        safe_name = path.name.replace('"', "")
        self.set_header("Content-Disposition", f'attachment; filename="{safe_name}"')
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            sent = 0
            while sent < size:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, size - sent))
                if not chunk:
                    break
                sent += len(chunk)
                self.write(chunk)
                try:
                    await self.flush()
                except StreamClosedError:
                    return
        finally:
            await asyncio.to_thread(handle.close)
        self.finish(set_content_type=kind)


class JobsStreamHandler(EventStreamHandler):
    """``GET lifecycle/jobs/stream``: state changes and progress of every job (SSE)."""

    auth_area = "jobs"

    def stream_topics(self, *args: str) -> list[str]:
        return [JOBS_TOPIC]


class JobStreamHandler(EventStreamHandler):
    """``GET lifecycle/jobs/{id}/stream``: one job's states, cells, metrics, logs (SSE).

    A new connection first gets a ``snapshot`` event (the job now, without an id).
    """

    auth_area = "jobs"

    async def get(self, *args: str) -> None:
        self._job = await self.services.jobs.get_job(args[0])
        await super().get(*args)

    def stream_topics(self, *args: str) -> list[str]:
        return [job_topic(args[0])]

    async def initial_events(self, topics: frozenset[str]) -> list[Event]:
        job = getattr(self, "_job", None)
        if job is None:
            return []
        topic = job_topic(job["id"])
        now = time.time()
        frame = sse_frame(None, "snapshot", encode_payload(None, topic, "snapshot", now, job))
        return [Event(topic, "snapshot", job, now, None, frame)]


def jobs_routes() -> list[tuple[str, type]]:
    return [
        (r"lifecycle/templates", TemplatesHandler),
        (r"lifecycle/parameters", ParametersHandler),
        (r"lifecycle/jobs", JobsHandler),
        (r"lifecycle/jobs/stream", JobsStreamHandler),
        (rf"lifecycle/jobs/{ID}", JobHandler),
        (rf"lifecycle/jobs/{ID}/stream", JobStreamHandler),
        (rf"lifecycle/jobs/{ID}/control", ControlHandler),
        (rf"lifecycle/jobs/{ID}/metrics", MetricsHandler),
        (rf"lifecycle/jobs/{ID}/logs", LogsHandler),
        (rf"lifecycle/jobs/{ID}/output", OutputHandler),
        (rf"lifecycle/artifacts/{ID}", ArtifactsHandler),
        (rf"lifecycle/artifacts/{ID}/(.+)", ArtifactHandler),
    ]
