"""Routes of the jobs capability (``lifecycle/...``): parse, call the service, answer."""

from __future__ import annotations

import asyncio
import datetime
import mimetypes
import time
from typing import TYPE_CHECKING, cast

from tornado.iostream import StreamClosedError

from notebench.jobprotocol import JOBS_TOPIC, job_topic

from ..bounds import MAX_SAFE_INT, MAX_TIME, parse_number
from ..disposition import content_disposition
from ..errors import bad_request
from ..events.bus import Event, encode_payload, sse_frame
from ..events.sse import EventStreamHandler
from ..handlers import NotebenchHandler
from ..logs.query import query_from_args
from . import states
from .ingest_handlers import ingest_routes
from .store import SORT_KEYS
from .sweeps import SWEEP_ID

if TYPE_CHECKING:
    from .service import NotebenchJobService

MAX_PAGE = 500  # jobs in one page of the list
DEFAULT_MAX_POINTS = 1000  # buckets per series when the client names none
MAX_POINTS_LIMIT = 10_000
ID = r"([jr]-[0-9a-f]{12})"
SID = f"({SWEEP_ID})"
CHUNK = 1024 * 1024
CSV_TYPE = "text/csv; charset=utf-8"
#: types a browser must never render from the server's origin
_UNSAFE_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml",
                 "application/xml", "text/javascript", "application/javascript")


class JobsHandlerBase(NotebenchHandler):
    auth_area = "jobs"

    @property
    def jobs(self) -> NotebenchJobService:
        return cast("NotebenchJobService", self.services.jobs)  # its routes: its service

    def bool_arg(self, name: str) -> bool | None:
        raw = self.get_query_argument(name, None)
        if raw in (None, ""):
            return None
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise bad_request(f"{name} must be true or false", "invalid_parameter")

    def time_arg(self, name: str) -> float | None:
        """Seconds since the epoch, or an ISO 8601 date or time (naive: local time)."""
        raw = self.get_query_argument(name, None)
        if raw in (None, ""):
            return None
        try:
            float(raw)
        except ValueError:
            pass
        else:
            return parse_number(name, raw, float, low=-MAX_TIME, high=MAX_TIME)
        try:
            return datetime.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise bad_request(f"{name} must be seconds since the epoch or an ISO 8601 date",
                              "invalid_parameter") from None

    def list_arg(self, name: str) -> list[str] | None:
        raw = self.get_query_argument(name, None)
        if not raw:
            return None
        return [part.strip() for part in raw.split(",") if part.strip()] or None


class TemplatesHandler(JobsHandlerBase):
    """``GET lifecycle/templates``."""

    async def get(self) -> None:
        self.write_json(await self.jobs.templates())


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
        offset = self.number_arg("offset", int, low=0, high=MAX_SAFE_INT) or 0
        sort = self.get_query_argument("sort", None) or "-created"
        if sort.lstrip("-") not in SORT_KEYS:
            raise bad_request(f"sort must be one of {', '.join(SORT_KEYS)} (a leading '-' "
                              "for descending)", "invalid_parameter")
        self.write_json(await self.jobs.list_jobs(
            states_filter=wanted, tag=self.get_query_argument("tag", None) or None, kind=kind,
            template=self.get_query_argument("template", None) or None,
            parent_id=self.get_query_argument("parent_id", None) or None,
            limit=limit, offset=offset, starred=self.bool_arg("starred"),
            sweep_id=self.get_query_argument("sweep_id", None) or None,
            created_after=self.time_arg("created_after"),
            created_before=self.time_arg("created_before"),
            name_contains=self.get_query_argument("q", None) or None, sort=sort))

    async def post(self) -> None:
        self.require_writable()
        job = await self.jobs.submit(self.json_body())
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{job['id']}")
        self.write_json(job, status=201)


class JobHandler(JobsHandlerBase):
    """``GET lifecycle/jobs/{id}``; ``PATCH`` (name, notes, starred, tags); ``DELETE`` (trash).

    A job's own token may read its record (``GET``), nothing more."""

    job_token_scope = True
    job_token_methods = frozenset({"GET"})

    async def get(self, job_id: str) -> None:
        self.write_json(await self.jobs.get_job(job_id))

    async def patch(self, job_id: str) -> None:
        self.require_writable()
        self.write_json(await self.jobs.update_job(job_id, self.json_body()))

    async def delete(self, job_id: str) -> None:
        self.require_writable()
        self.write_json(await self.jobs.delete_job(job_id))


class RunsMetricsHandler(JobsHandlerBase):
    """``GET lifecycle/jobs/metrics?ids=&names=&max_points=&layout=``: runs on one step
    axis (``layout=columns``: one array per bucket field instead of bucket objects)."""

    async def get(self) -> None:
        max_points = self.number_arg("max_points", int, low=1, high=MAX_POINTS_LIMIT)
        self.finish(await self.jobs.runs_metrics_json(
            self.list_arg("ids") or [], self.list_arg("names"),
            max_points if max_points is not None else DEFAULT_MAX_POINTS,
            self.get_query_argument("layout", "buckets")))


class CompareHandler(JobsHandlerBase):
    """``GET lifecycle/jobs/compare?ids=&modes=loss:min,acc:max``: the compare table."""

    async def get(self) -> None:
        modes = {}
        for item in self.list_arg("modes") or []:
            name, _, mode = item.rpartition(":")
            if not name or mode not in ("min", "max"):
                raise bad_request("modes must be name:min or name:max, comma-separated",
                                  "invalid_parameter")
            modes[name] = mode
        self.write_json(await self.jobs.compare(self.list_arg("ids") or [], modes or None))


class SweepsHandler(JobsHandlerBase):
    """``GET lifecycle/sweeps`` (newest first); ``POST`` submits one job per combination."""

    execute_methods = frozenset({"POST"})

    async def get(self) -> None:
        limit = self.number_arg("limit", int, low=1, high=MAX_PAGE) or 100
        offset = self.number_arg("offset", int, low=0, high=MAX_SAFE_INT) or 0
        self.write_json(await self.jobs.list_sweeps(limit, offset))

    async def post(self) -> None:
        self.require_writable()
        sweep = await self.jobs.submit_sweep(self.json_body())
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{sweep['id']}")
        self.write_json(sweep, status=201)


class SweepHandler(JobsHandlerBase):
    """``GET lifecycle/sweeps/{id}``: the sweep, its jobs' ids and their compare table."""

    async def get(self, sweep_id: str) -> None:
        self.write_json(await self.jobs.get_sweep(sweep_id))


class TrashHandler(JobsHandlerBase):
    """``GET lifecycle/trash``: jobs in the trash, its disk use and retention."""

    async def get(self) -> None:
        self.write_json(await self.jobs.list_trash())


class TrashPurgeHandler(JobsHandlerBase):
    """``POST lifecycle/trash/purge``: ``{"older_than_days": N}`` (default: the retention)."""

    async def post(self) -> None:
        self.require_writable()
        days = self.json_body().get("older_than_days")
        if days is not None and (not isinstance(days, (int, float)) or isinstance(days, bool)):
            raise bad_request("older_than_days must be a number", "invalid_parameter")
        self.write_json(await self.jobs.purge_trash(days))


class TrashRestoreHandler(JobsHandlerBase):
    """``POST lifecycle/trash/{id}/restore``."""

    async def post(self, job_id: str) -> None:
        self.require_writable()
        self.write_json(await self.jobs.restore_job(job_id))


class TrashItemHandler(JobsHandlerBase):
    """``DELETE lifecycle/trash/{id}``: purge one job for good."""

    async def delete(self, job_id: str) -> None:
        self.require_writable()
        self.write_json(await self.jobs.purge_job(job_id))


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
        if action == "restart":
            await self.require_execute()
        job = await self.jobs.control(job_id, action, body)
        self.write_json(job, status=201 if action == "restart" else 200)


class MetricsHandler(JobsHandlerBase):
    """``GET lifecycle/jobs/{id}/metrics?names=&since=&max_points=&x=&format=``."""

    async def get(self, job_id: str) -> None:
        names = self.list_arg("names")
        since = self.number_arg("since", float, low=-MAX_TIME, high=MAX_TIME)
        fmt = self.get_query_argument("format", "json")
        if fmt == "csv":
            parts = self.jobs.metrics_csv(job_id, names=names, since=since)
            first = await anext(parts)  # 404 for an unknown job, before any byte is sent
            self.set_header("Content-Type", CSV_TYPE)
            self.set_header("Content-Disposition", content_disposition(f"{job_id}-metrics.csv"))
            self.write(first)
            try:
                async for data in parts:
                    await self.flush()  # the client reads one part while the next is made
                    self.write(data)
            except StreamClosedError:
                return  # the client left
            self.finish(set_content_type=CSV_TYPE)
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
        self.set_header("Content-Disposition", content_disposition(path.name))
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


class ClusterHandler(JobsHandlerBase):
    """``GET lifecycle/cluster``: where jobs run: the workers, their resources and jobs."""

    async def get(self) -> None:
        self.write_json(await self.jobs.cluster())


def jobs_routes() -> list[tuple[str, type]]:
    return [
        (r"lifecycle/templates", TemplatesHandler),
        (r"lifecycle/cluster", ClusterHandler),
        (r"lifecycle/parameters", ParametersHandler),
        (r"lifecycle/jobs", JobsHandler),
        (r"lifecycle/jobs/stream", JobsStreamHandler),
        (r"lifecycle/jobs/metrics", RunsMetricsHandler),
        (r"lifecycle/jobs/compare", CompareHandler),
        (rf"lifecycle/jobs/{ID}", JobHandler),
        (rf"lifecycle/jobs/{ID}/stream", JobStreamHandler),
        (rf"lifecycle/jobs/{ID}/control", ControlHandler),
        (rf"lifecycle/jobs/{ID}/metrics", MetricsHandler),
        (rf"lifecycle/jobs/{ID}/logs", LogsHandler),
        (rf"lifecycle/jobs/{ID}/output", OutputHandler),
        *ingest_routes(ID),
        (rf"lifecycle/artifacts/{ID}", ArtifactsHandler),
        (rf"lifecycle/artifacts/{ID}/(.+)", ArtifactHandler),
        (r"lifecycle/sweeps", SweepsHandler),
        (rf"lifecycle/sweeps/{SID}", SweepHandler),
        (r"lifecycle/trash", TrashHandler),
        (r"lifecycle/trash/purge", TrashPurgeHandler),
        (rf"lifecycle/trash/{ID}/restore", TrashRestoreHandler),
        (rf"lifecycle/trash/{ID}", TrashItemHandler),
    ]
