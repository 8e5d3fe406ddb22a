"""The structured log store."""

from .store import LOGGER_NAME, LOGS_TOPIC, LogStore, StoreLogHandler

__all__ = ["LOGGER_NAME", "LOGS_TOPIC", "LogStore", "StoreLogHandler"]
