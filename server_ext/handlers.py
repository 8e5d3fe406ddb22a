"""The base handler every notebench route uses, and the routes of the core."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from jupyter_core.utils import ensure_async
from jupyter_server import CallContext
from jupyter_server.auth import User
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .bounds import parse_number
from .credentials import job_token_from_header, scope_refusal, token_from_header
from .errors import ApiError, bad_request, status_code_name

if TYPE_CHECKING:
    from .services import Services

_ACTIONS = {"GET": "read", "HEAD": "read", "OPTIONS": "read"}


class NotebenchHandler(APIHandler):
    """Authenticated, authorized, JSON in and out, errors in one shape.

    Authentication and authorization happen in ``prepare()`` for every method of every
    route, so no handler can forget them (streaming uploads need them there anyway:
    Tornado reads a streamed body before calling the method).
    """

    #: the area of the auth resource, ``notebench:<area>``
    auth_area: str = "core"
    #: methods that run code: they also need ``execute`` on ``kernels``
    execute_methods: frozenset[str] = frozenset()
    #: the token a Voila page's kernel sent, minted for its viewer (``credentials``)
    viewer_token: str | None = None
    #: whether a job's token (``nbj_``) may call this route, for the job the path names
    job_token_scope: bool = False
    #: the methods a job token may call here (None: every method the route serves)
    job_token_methods: frozenset[str] | None = None
    #: the job a job token that authenticated this request stands for
    token_job_id: str | None = None

    @property
    def auth_resource(self) -> str:
        return f"notebench:{self.auth_area}"

    @property
    def services(self) -> Services:
        return self.settings["notebench_services"]

    async def prepare(self) -> None:
        header = self.request.headers.get("Authorization")
        job_token = job_token_from_header(header)
        if job_token is not None:
            self._prepare_job(job_token)
            return  # the token's scope is the check: no authorizer for a job
        self.viewer_token = token_from_header(header)
        if self.viewer_token is None:
            await super().prepare()
        else:
            self._prepare_viewer(self.viewer_token)
        user = self.current_user
        if user is None:
            raise ApiError(403, "forbidden", "authentication required")
        method = self.request.method or "GET"
        action = _ACTIONS.get(method, "write")
        refusal = self.scope_refusal(action, self.auth_resource)
        if refusal is not None:
            raise ApiError(403, "forbidden", refusal)
        await self.require_permission(action, self.auth_resource)
        if method in self.execute_methods:
            await self.require_execute()

    def _enter_minted(self) -> None:
        """What jupyter_server's ``prepare`` does before authenticating, for a token only
        notebench mints: the call context and the Host check."""
        CallContext.set(CallContext.JUPYTER_HANDLER, self)
        if not self.check_host():
            raise web.HTTPError(403)

    def _prepare_viewer(self, token: str) -> None:
        """jupyter_server's ``prepare`` for a viewer token, which only notebench knows (so
        it authenticates nothing else): the request acts as the viewer it was minted for.
        Sent in a header, which no browser adds by itself, it needs no XSRF check."""
        self._enter_minted()
        user = self.services.viewer_tokens.resolve(token)
        if user is None:
            raise ApiError(403, "forbidden",
                           "the viewer token is unknown or expired: reload the Voila page")
        self.current_user = self._jupyter_current_user = user
        self.set_cors_headers()
        if not self.check_origin():
            raise web.HTTPError(404)

    def _prepare_job(self, token: str) -> None:
        """A job token, which only notebench knows: allowed on the routes that declare
        ``job_token_scope``, for the job their path names, while the job is allowed. The
        request acts as the user ``job:<id>``; in a header, it needs no XSRF check."""
        self._enter_minted()
        job_id = self.services.job_tokens.resolve(token)
        if job_id is None:
            raise ApiError(403, "forbidden",
                           "the job token is invalid, or its job has ended")
        method = self.request.method or "GET"
        methods = self.job_token_methods
        if (not self.job_token_scope or (methods is not None and method not in methods)
                or method in self.execute_methods or self.job_id_of_request() != job_id):
            raise ApiError(403, "forbidden", "a job token may only reach its own job's "
                           f"ingest routes and read its own job (job {job_id})")
        self.token_job_id = job_id
        self.current_user = self._jupyter_current_user = User(f"job:{job_id}")
        self.set_cors_headers()
        if not self.check_origin():
            raise web.HTTPError(404)

    def job_id_of_request(self) -> str | None:
        """The job this request's path names (the first path argument of a route with
        ``job_token_scope``; None elsewhere)."""
        if not self.job_token_scope or not self.path_args:
            return None
        return str(self.path_args[0])

    def scope_refusal(self, action: str, resource: str) -> str | None:
        """Why a viewer token's scope refuses ``action`` on ``resource`` (None: allowed,
        and always None for any other request)."""
        if self.viewer_token is None:
            return None
        config = self.services.config
        return scope_refusal(action, resource, actions=config.voila_actions,
                             read_areas=config.voila_read_areas)

    async def is_allowed(self, action: str, resource: str) -> bool:
        """The authorizer's answer, awaited: an authorizer may return an awaitable, and an
        unawaited coroutine is always true. A viewer token's scope applies first; a job
        token's scope was its whole check (``prepare``): it is allowed nothing more."""
        user = self.current_user
        if (user is None or self.token_job_id is not None
                or self.scope_refusal(action, resource) is not None):
            return False
        return bool(await ensure_async(self.authorizer.is_authorized(self, user, action,
                                                                     resource)))

    async def require_permission(self, action: str, resource: str) -> None:
        """403 unless the user may ``action`` on ``resource``."""
        if not await self.is_allowed(action, resource):
            raise ApiError(403, "forbidden", f"not allowed to {action} {resource}")

    async def require_execute(self) -> None:
        """403 unless the user may run code (``execute`` on ``kernels``)."""
        if not await self.is_allowed("execute", "kernels"):
            raise ApiError(403, "forbidden", "running code needs execute permission on kernels")

    def principal(self) -> str:
        """Whom a per-user limit counts: the user's name, and one name for every holder of
        the server's shared token (jupyter_server makes up a new user per such request)."""
        if self.viewer_token is None and self.token_authenticated:
            return "\0server-token"
        user = self.current_user
        return str(getattr(user, "username", None) or user)

    # -- output ------------------------------------------------------------------------

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            body = exc.body()
        elif isinstance(exc, web.HTTPError):
            message = exc.reason or status_code_name(status_code)
            if exc.log_message:
                message = exc.log_message % exc.args if exc.args else exc.log_message
            body = {"error": {"code": status_code_name(status_code), "message": message}}
        else:
            body = {"error": {"code": "internal_error", "message": "internal server error"}}
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            self.log.debug("%s %s -> %s %s", self.request.method, self.request.path,
                           value.status, value.code)
            return
        super().log_exception(typ, value, tb)

    # -- input -------------------------------------------------------------------------

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object (400 otherwise); empty body is ``{}``."""
        if not self.request.body:
            return {}
        try:
            body = orjson.loads(self.request.body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"the body is not valid JSON: {exc}", "invalid_json") from None
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object", "invalid_json")
        return body

    def declared_length(self) -> int | None:
        """The request's ``Content-Length`` (None when absent); 400 when malformed."""
        raw = self.request.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            length = int(raw)
        except ValueError:
            raise bad_request("invalid Content-Length") from None
        if length < 0:
            raise bad_request("invalid Content-Length")
        return length

    def number_arg(self, name: str, kind: type = float, *, low: float | None = None,
                   high: float | None = None) -> Any:
        """A numeric query argument (None when absent): finite, in ``[low, high]`` (by
        default ``±MAX_SAFE_INT``); 400 when malformed or out of range."""
        return parse_number(name, self.get_query_argument(name, None), kind, low=low,
                            high=high)

    def require_writable(self) -> None:
        """409 when this server only reads a workspace another server owns."""
        workspace = self.services.workspace
        if workspace.read_only:
            raise ApiError(409, "read_only", workspace.read_only_reason())


class InfoHandler(NotebenchHandler):
    """``GET info``: version, workspace, ownership and stream figures."""

    async def get(self) -> None:
        self.write_json(self.services.info())


class OpenAPIHandler(NotebenchHandler):
    """``GET openapi.json``: the API description shipped with the package, its ``servers``
    under this server's ``base_url``."""

    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(self.services.openapi_document(self.base_url))


class NotFoundHandler(NotebenchHandler):
    """Any other path under ``notebench/api/``: a JSON 404."""

    def _not_found(self, *args: Any) -> None:
        raise ApiError(404, "not_found", f"no such route: {self.request.path}")

    get = post = put = patch = delete = head = _not_found  # type: ignore[assignment]
