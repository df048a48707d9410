"""Delivering notifications: every attempt is evidence (no body, no URL, never a secret)."""

from __future__ import annotations

from pydantic import Field

from jitaccess.domain.event_types.base import EventBody


class _DeliveryAttempt(EventBody):
    notifier: str
    attempt: int = Field(description="the workflow's attempt number")
    status_code: int | None = Field(None, description="the HTTP status (null: no answer)")
    error: str | None = None
    kind: str | None = Field(None, description="the notification's kind, audience and severity")
    audience: str | None = None
    severity: str | None = None


class NotificationSent(_DeliveryAttempt, type="notification.sent"):
    """A notifier accepted the notification."""


class NotificationFailed(_DeliveryAttempt, type="notification.failed", severity="warning"):
    """One delivery attempt failed; the workflow retries with backoff."""


class NotificationAbandoned(EventBody, type="notification.abandoned", severity="warning"):
    """Every attempt failed: the notification is given up (the grant goes on regardless)."""

    notifier: str
    kind: str
    attempts: int
