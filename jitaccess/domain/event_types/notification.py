"""Delivering notifications: every attempt is evidence (no body, no URL, never a secret)."""

from __future__ import annotations

from typing import ClassVar

from jitaccess.domain.event_types.base import EventBody, Severity, event_type


class _DeliveryAttempt(EventBody):
    notifier: str
    attempt: int
    status_code: int | None = None
    error: str | None = None
    kind: str | None = None  # the notification's kind, audience and severity
    audience: str | None = None
    severity: str | None = None


@event_type
class NotificationSent(_DeliveryAttempt):
    """A notifier accepted the notification."""

    TYPE: ClassVar[str] = "notification.sent"


@event_type
class NotificationFailed(_DeliveryAttempt):
    """One delivery attempt failed; the workflow retries with backoff."""

    TYPE: ClassVar[str] = "notification.failed"
    SEVERITY: ClassVar[Severity] = "warning"


@event_type
class NotificationAbandoned(EventBody):
    """Every attempt failed: the notification is given up (the grant goes on regardless)."""

    TYPE: ClassVar[str] = "notification.abandoned"
    SEVERITY: ClassVar[Severity] = "warning"

    notifier: str
    kind: str
    attempts: int
