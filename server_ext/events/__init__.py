"""The event bus and Server-Sent Events."""

from .bus import Event, EventBus

__all__ = ["Event", "EventBus"]
