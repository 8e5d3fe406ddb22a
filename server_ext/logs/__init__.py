"""The structured log store, and where notebench's log records go."""

from .routing import LogRouting
from .store import LOGGER_NAME, LOGS_TOPIC, LOGS_TOPIC_AREAS, LogStore, StoreLogHandler

__all__ = ["LOGGER_NAME", "LOGS_TOPIC", "LOGS_TOPIC_AREAS", "LogRouting", "LogStore",
           "StoreLogHandler"]
