"""The notebench server extension: configuration, wiring, start and stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Enum, Float, Int, List, Unicode

from .capability import configurable_classes, load_capabilities
from .config_names import warn_renamed_sections
from .events.bus import EventBus
from .events.sse import MultiplexStreamHandler
from .handlers import InfoHandler, NotFoundHandler, OpenAPIHandler
from .logs import LOGGER_NAME, LOGS_TOPIC, LOGS_TOPIC_AREAS, LogRouting, LogStore
from .logs.jsonlines import JsonStderr
from .maintenance.periodic import PeriodicBackup
from .scrubbing import scrubber
from .services import Services, job_tokens_of
from .store import Store
from .voila_hook import configure_voila
from .workspace import Workspace

API_PREFIX = "notebench/api/"
ENV_URL = "NOTEBENCH_SERVER_URL"
ENV_WORKSPACE = "NOTEBENCH_WORKSPACE"
ENV_VOILA_ACTIONS = "NOTEBENCH_VOILA_ACTIONS"

log = logging.getLogger(LOGGER_NAME)


LAB_EXTENSION_NAME = "notebench"  # labext/package.json's name
#: Lab extensions that need Lab itself, kept out of Voila pages: notebench's (its launcher,
#: sidebars) and jupytext's, which comes with notebench's script jobs (its file browser
#: and launcher items fail to load in a Voila page)
LAB_ONLY_EXTENSIONS = (LAB_EXTENSION_NAME, "jupyterlab-jupytext")


def keep_lab_extension_out_of_voila(config: Any) -> None:
    """Voila pages load every Lab extension; ``LAB_ONLY_EXTENSIONS`` need Lab itself.

    They go on Voila's extension deny list unless the user set an allow or deny list.
    Linking runs for every extension before any loads, so Voila reads it in time.
    """
    voila = config.VoilaConfiguration
    if "extension_allowlist" not in voila and "extension_denylist" not in voila:
        voila.extension_denylist = list(LAB_ONLY_EXTENSIONS)


class NotebenchApp(ExtensionApp):
    """A training workbench inside Jupyter."""

    name = "notebench"
    load_other_extensions = True
    # the capabilities' configurables: listed in --help-all and --generate-config
    classes = [*ExtensionApp.classes, *configurable_classes()]

    workspace_dir = Unicode(
        "",
        help="The workspace folder (asset roots, jobs, store). Default: <root_dir>/notebench.",
    ).tag(config=True)
    sqlite_journal_mode = Enum(
        ["auto", "wal", "delete", "truncate"],
        "auto",
        help="SQLite journal mode; 'auto' uses WAL except on network filesystems.",
    ).tag(config=True)
    sse_heartbeat_interval = Float(15.0, help="Seconds between SSE heartbeat comments.").tag(
        config=True
    )
    sse_retry_ms = Int(3000, help="The reconnect delay SSE clients are told (retry:).").tag(
        config=True
    )
    sse_max_backlog_bytes = Int(
        4 * 1024 * 1024,
        help="Bytes an SSE client may leave unread before it is dropped.",
    ).tag(config=True)
    sse_min_hz = Float(
        0.1, help="The lowest ?max_hz= a stream accepts (400 below it): a slower rate would "
                  "hold events in memory for that long.",
    ).tag(config=True)
    max_streams_per_user = Int(
        64, help="Event streams (SSE connections, all routes together) one user may hold "
                 "open; past it a new one gets 429. 0: no limit.",
    ).tag(config=True)
    multipart_max_header_bytes = Int(
        8 * 1024, help="Bytes of headers one part of a multipart upload may have, all lines "
                       "together (413 past it; the parser also bounds each line).",
    ).tag(config=True)
    multipart_max_headers = Int(
        8, help="Headers one part of a multipart upload may have (413 past it).",
    ).tag(config=True)
    upload_sessions_per_user = Int(
        32, help="Unfinished resumable uploads (POST assets/uploads) one user may hold; past "
                 "it a new one gets 429. 0: no limit.",
    ).tag(config=True)
    upload_session_bytes_per_user = Int(
        64 * 1024**3, help="Bytes one user's unfinished resumable uploads may declare in all; "
                           "past it a new one gets 413. 0: no limit.",
    ).tag(config=True)
    event_log_keep = Int(
        200_000, help="Replayable events kept in the event log (older ids get 'reset')."
    ).tag(config=True)
    log_keep_records = Int(100_000, help="Log records kept in the log store.").tag(config=True)
    backup_dir = Unicode(
        "", help="A folder for periodic backups of the store (consistent copies with a "
                 "manifest, as `notebench backup` makes; docs/backup.md). Empty: none.",
    ).tag(config=True)
    backup_interval = Float(
        24 * 3600.0, min=1.0, help="Seconds between periodic backups (with backup_dir).",
    ).tag(config=True)
    backup_keep = Int(7, min=1, help="Periodic backups kept in backup_dir (older ones are "
                                     "deleted).").tag(config=True)
    torch_probe_timeout = Float(180.0, help="Seconds the torch probe subprocess may take.").tag(
        config=True
    )
    benchmark_nice = Int(10, help="Niceness of the hardware benchmark worker.").tag(config=True)
    benchmark_disk_mb = Int(256, help="File size of the disk benchmark, MiB.").tag(config=True)
    benchmark_quick = Bool(False, help="Run a short hardware benchmark (tests).").tag(config=True)
    voila_actions = Bool(
        False, help="Let the dashboards published by Voila start, stop and delete. A page "
                    "acts as the person viewing it (a token minted for them when the page "
                    "opens), with their rights; without this its token only reads "
                    "voila_read_areas.",
    ).tag(config=True)
    voila_read_areas = List(
        Unicode(), ["hardware", "monitoring", "jobs"],
        help="What a Voila page published without actions may read, besides the core "
             "(info, streams of these areas), within its viewer's rights: notebench areas "
             "(hardware, monitoring, jobs, assets). Assets are left out by default: their "
             "names, hashes and downloads are the workspace's data.",
    ).tag(config=True)
    voila_token_ttl = Float(
        8 * 3600.0, min=1.0,
        help="Seconds a Voila page's viewer token lasts (a page open longer must be reloaded).",
    ).tag(config=True)
    json_logs = Bool(
        False, help="Write the server process's log records on stderr as JSON lines (time, "
                    "level, logger, message, exc_info, job_id...), scrubbed of the token, "
                    "for log shippers: from the moment notebench is linked to the process's "
                    "end (earlier lines: docs/monitoring.md).",
    ).tag(config=True)

    services: Services | None = None
    _backups: PeriodicBackup | None = None
    _log_routing: LogRouting | None = None
    #: with ``json_logs``; never undone: the lines after the server stops are JSON too
    _json_stderr: JsonStderr | None = None

    # -- set-up ----------------------------------------------------------------------------

    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        super()._link_jupyter_server_extension(serverapp)
        if self.json_logs:
            self._json_stderr = JsonStderr()
            self._json_stderr.apply()
        keep_lab_extension_out_of_voila(serverapp.config)
        configure_voila(serverapp.config)

    def workspace_path(self) -> Path:
        if self.workspace_dir:
            return Path(self.workspace_dir).expanduser().resolve()
        assert self.serverapp is not None
        return Path(self.serverapp.root_dir).expanduser().resolve() / "notebench"

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        self._log_routing = LogRouting(self.serverapp.log, self.serverapp.log_level)
        self._log_routing.open()
        if self._json_stderr is not None:
            # the token is known now: scrubbed from the start banner on
            self._server_token = self.serverapp.identity_provider.token
            scrubber.add(self._server_token)
            self._json_stderr.apply()  # handlers configured since notebench was linked
        capabilities = load_capabilities()
        workspace = Workspace(self.workspace_path())
        workspace.prepare(journal_mode=self.sqlite_journal_mode)
        store = Store(workspace.store_path, read_only=workspace.read_only,
                      journal_mode=workspace.journal_mode,
                      schemas={c.name: c.schema for c in capabilities if c.schema})
        store.open()
        workspace.journal_mode = store.journal_mode
        bus = EventBus(store, keep_events=self.event_log_keep,
                       heartbeat_interval=self.sse_heartbeat_interval)
        bus.topics.add(LOGS_TOPIC, LOGS_TOPIC_AREAS)
        logs = LogStore(store, bus, keep_records=self.log_keep_records)
        self.services = Services(self, workspace, store, bus, logs,
                                 job_tokens=job_tokens_of(workspace))
        for capability in capabilities:
            self.services.add(capability)
        self._log_routing.feed_store(logs)
        warn_renamed_sections(self.config, log)
        self.settings["notebench_services"] = self.services

    def initialize_handlers(self) -> None:
        routes: list[tuple[str, type]] = [
            (r"info", InfoHandler),
            (r"openapi\.json", OpenAPIHandler),
            (r"stream", MultiplexStreamHandler),
        ]
        for capability in self.services.capabilities if self.services else []:
            routes.extend(capability.routes())
        self.handlers.extend((API_PREFIX + pattern, handler) for pattern, handler in routes)
        self.handlers.extend(self.services.app_routes() if self.services else [])
        self.handlers.append((API_PREFIX + r"(.*)", NotFoundHandler))

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        services = self.services
        assert services is not None
        await services.bus.start()
        workspace = services.workspace
        url = serverapp.connection_url.rstrip("/") + "/"
        os.environ[ENV_URL] = url
        # the server's token stays out of os.environ (kernels and jobs inherit it): it is
        # only known to the scrubber, which keeps it out of what jobs write
        self._server_token = serverapp.identity_provider.token
        scrubber.add(self._server_token)
        if self._json_stderr is not None:
            self._json_stderr.apply()  # handlers the other extensions configured since
        os.environ[ENV_WORKSPACE] = str(workspace.path)
        os.environ[ENV_VOILA_ACTIONS] = "1" if self.voila_actions else "0"
        os.environ.update(services.kernel_environment())
        if workspace.read_only:
            log.warning("notebench: %s", workspace.read_only_reason())
            services.ready = True
            return
        workspace.record_owner(url)
        written = await asyncio.to_thread(workspace.seed)
        await services.start()
        if self.backup_dir:
            self._backups = PeriodicBackup(
                workspace.store_path, Path(self.backup_dir).expanduser().resolve(),
                interval=self.backup_interval, keep=self.backup_keep, workspace=workspace.path)
            self._backups.start()
        # The server's start-up objects live as long as it does: keep them out of the
        # collector's full passes, which otherwise stall the loop for 100+ ms under load.
        gc.freeze()
        services.ready = True
        log.info("notebench started: workspace %s (%d files seeded)", workspace.path,
                 len(written))

    def current_activity(self) -> list[dict[str, Any]] | None:
        return self.services.current_activity() if self.services is not None else None

    async def stop_extension(self) -> None:
        scrubber.discard(getattr(self, "_server_token", None))
        services = self.services
        if services is None:
            self._close_log_routing()
            return
        if self._backups is not None:
            await self._backups.stop()
            self._backups = None
        await services.stop()
        services.bus.stop()
        if self._log_routing is not None:
            self._log_routing.close_store()
        await asyncio.to_thread(services.store.close)
        services.workspace.release()
        self.services = None
        self._close_log_routing()

    def _close_log_routing(self) -> None:
        """notebench's loggers as they were before this server (tests start many)."""
        if self._log_routing is not None:
            self._log_routing.close()
            self._log_routing = None


#: ``jupyter notebench``: a Jupyter server with notebench, launched as notebench's app, so
#: ``--help-all`` and ``--generate-config`` cover notebench's configurable classes
main = launch_new_instance = NotebenchApp.launch_instance
