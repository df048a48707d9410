"""Typed identity events: one pydantic model per event type (see `base`).

Import this package to have every event model registered in `EVENT_TYPES`."""

from jitaccess.domain.event_types.base import EVENT_TYPES, SCHEMA_VERSION, EventBody, body_for, event_type

__all__ = ["EVENT_TYPES", "SCHEMA_VERSION", "EventBody", "body_for", "event_type"]
