"""The structured log store."""

from .store import LOGGER_NAME, LOGS_TOPIC, LOGS_TOPIC_AREAS, LogStore, StoreLogHandler

__all__ = ["LOGGER_NAME", "LOGS_TOPIC", "LOGS_TOPIC_AREAS", "LogStore", "StoreLogHandler"]
