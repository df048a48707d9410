"""The SIEM contract of every JSON log line: it has a `type` (an identity event's own type, else
the log event's name) and a `severity` (info / warning / high; an identity event's from
jitaccess.domain.severity, else from the log level)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

_BY_LEVEL = {"warning": "warning", "error": "high", "critical": "high", "exception": "high"}


def type_and_severity(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor (after add_log_level)."""
    event_dict.setdefault("type", str(event_dict.get("event", "log")))
    event_dict.setdefault("severity", _BY_LEVEL.get(str(event_dict.get("level", method)), "info"))
    return event_dict
