"""Where the ``notebench`` loggers' records go: the Jupyter server's log and the log store.

The ``notebench`` logger becomes a child of the server's log, as the server does with
tornado's loggers: its records, ``notebench.store`` and ``notebench.events`` included, are
printed by the server's handlers with its formatter and level, and stop there (the server's
log does not propagate), so no second copy reaches the root logger. The log store gets INFO
and up through ``StoreLogHandler``, whatever the server's level.
"""

from __future__ import annotations

import logging

from .store import LOGGER_NAME, LogStore, StoreLogHandler


class LogRouting:
    """Joins the ``notebench`` logger to one server's log and log store; ``close`` undoes it."""

    def __init__(self, server_log: logging.Logger | logging.LoggerAdapter,
                 server_level: int | str) -> None:
        self.logger = logging.getLogger(LOGGER_NAME)
        self.server_log = (server_log.logger if isinstance(server_log, logging.LoggerAdapter)
                           else server_log)
        if isinstance(server_level, str):
            server_level = logging.getLevelName(server_level.upper())
        if not isinstance(server_level, int):
            server_level = logging.INFO
        #: the store keeps INFO and up; records below are made only when the server shows them
        self.level = min(logging.INFO, server_level)
        self.store_handler: StoreLogHandler | None = None
        self._saved: tuple[logging.Logger | None, int] | None = None

    def open(self) -> None:
        """Send records to the server's log at its level."""
        self._saved = (self.logger.parent, self.logger.level)
        self.logger.parent = self.server_log
        self.logger.setLevel(self.level)

    def feed_store(self, logs: LogStore) -> None:
        """Also record INFO and up in ``logs`` (``notebench.store``/``.events`` kept out)."""
        self.store_handler = StoreLogHandler(logs)
        self.logger.addHandler(self.store_handler)

    def close_store(self) -> None:
        """Stop feeding the store (before it closes)."""
        if self.store_handler is not None:
            self.logger.removeHandler(self.store_handler)
            self.store_handler = None

    def close(self) -> None:
        """Undo everything: the logger's parent and level are as they were before ``open``."""
        self.close_store()
        if self._saved is not None and self.logger.parent is self.server_log:
            parent, level = self._saved
            self.logger.parent = parent
            self.logger.setLevel(level)
        self._saved = None
