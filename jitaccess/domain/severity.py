"""How loud an identity event is in the SIEM feed: `info`, `warning` or `high`.

Pure (no I/O): the `record_events` activity tags every SIEM line with it, so a SIEM rule can
alert on `severity="high"` without knowing every event type. Each event model says its own
(`EventBody.SEVERITY`, or `severity_of` when it depends on the data): `high` for access someone
may hold that nobody approved, or a control that was attacked or failed; `warning` for what
needs a look."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jitaccess.domain.event_types import EVENT_TYPES, Severity

__all__ = ["Severity", "severity"]


def severity(event_type: str, data: Mapping[str, Any] | None = None) -> Severity:
    """The severity of one identity event (or SIEM line) of `event_type` carrying `data`
    (`info` for a type with no model)."""
    model = EVENT_TYPES.get(event_type)
    return model.severity_of(data or {}) if model else "info"
