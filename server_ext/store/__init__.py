"""The workspace's SQLite store."""

from .sqlite import Store, StoreReadOnly, get_meta, set_meta

__all__ = ["Store", "StoreReadOnly", "get_meta", "set_meta"]
