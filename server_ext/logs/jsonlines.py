"""The server process's log on stderr as JSON lines, for log shippers (``json_logs``).

``JsonLineFormatter`` writes one JSON object per record: ``time`` (ISO 8601, UTC),
``level``, ``logger``, ``message``, ``exc_info`` and ``stack_info`` when present, and the
fields the record was given (``extra=``, e.g. ``job_id``); every text goes through the
secret scrubber, so the server's token never appears. ``JsonStderr`` puts it on every
handler of the process that writes to stderr (the server's, the extension apps', ...),
stands in for ``logging``'s last resort on the root logger, and sends ``warnings`` there
too; ``close`` undoes all of it.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..scrubbing import scrubber

#: attributes every record has, and those formatters add to it (tornado, traitlets)
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "color", "end_color", "highlevel", "taskName"}
_CORE = ("time", "level", "logger", "message", "exc_info", "stack_info")


class JsonLineFormatter(logging.Formatter):
    """One record as one line of JSON, scrubbed of known secrets.

    Usable on its own in ``c.ServerApp.logging_config`` (accepts and ignores the
    ``format``/``datefmt`` a handler configuration passes).
    """

    def __init__(self, *args: Any, scrub: Callable[[str], str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scrub = scrub or scrubber.scrub_text

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _message(record),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _CORE and not key.startswith("_"):
                entry[key] = value
        return json.dumps(self._scrubbed(entry), default=str)

    def _scrubbed(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(str(k)): self._scrubbed(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._scrubbed(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.scrub(str(value))


def _message(record: logging.LogRecord) -> str:
    """The record's message; its template and arguments when they do not fit (where
    ``logging`` would print a traceback, which is no JSON)."""
    try:
        return record.getMessage()
    except Exception:
        return f"{record.msg} {record.args!r}"


def _writes_to_stderr(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return stream is not None and stream in (sys.stderr, sys.__stderr__)


class JsonStderr:
    """Every log record the process writes to stderr, as JSON lines; ``close`` undoes it.

    ``apply`` may run again (handlers configured since are switched too): an app that
    configures its logging later gets a handler of its own.
    """

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        self.formatter = formatter or JsonLineFormatter()
        self._switched: dict[logging.Handler, logging.Formatter | None] = {}
        self._root_handler: logging.Handler | None = None
        self._captured_warnings = False

    def apply(self) -> None:
        """Switch every stderr handler of every logger; handle what reaches the root."""
        for logger in self._loggers():
            for handler in logger.handlers:
                if (_writes_to_stderr(handler)
                        and not isinstance(handler.formatter, JsonLineFormatter)):
                    self._switched.setdefault(handler, handler.formatter)
                    handler.setFormatter(self.formatter)
        root = logging.getLogger()
        if self._root_handler is None and not root.handlers:
            # what logging's last resort would print (WARNING and up), as JSON
            self._root_handler = logging.StreamHandler(sys.stderr)
            self._root_handler.setLevel(logging.WARNING)
            self._root_handler.setFormatter(self.formatter)
            root.addHandler(self._root_handler)
        if not self._captured_warnings:
            before = warnings.showwarning
            logging.captureWarnings(True)
            self._captured_warnings = warnings.showwarning is not before

    def close(self) -> None:
        """Every handler's formatter as it was; the root logger and warnings as they were."""
        for handler, formatter in self._switched.items():
            if handler.formatter is self.formatter:
                handler.setFormatter(formatter)
        self._switched.clear()
        if self._root_handler is not None:
            logging.getLogger().removeHandler(self._root_handler)
            self._root_handler = None
        if self._captured_warnings:
            logging.captureWarnings(False)
            self._captured_warnings = False

    @staticmethod
    def _loggers() -> list[logging.Logger]:
        manager = logging.Logger.manager
        found = [logger for logger in list(manager.loggerDict.values())
                 if isinstance(logger, logging.Logger)]
        return [logging.getLogger(), *found]
