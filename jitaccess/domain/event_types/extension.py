"""Extending an active grant, and the after-the-fact review of a break-glass grant (GrantWorkflow)."""

from __future__ import annotations

from typing import ClassVar, Literal

from jitaccess.domain.event_types.base import Command, EventBody, IsoTime, Severity, event_type


@event_type
class ExtensionRequested(EventBody):
    """The requester asked for more time; `stages` name the approval stages it needs (none: auto)."""

    TYPE: ClassVar[str] = "extension.requested"

    extension_seconds: int
    total_seconds: int
    reason: str
    policy_version: str | None = None
    auto_rule: str | None = None
    stages: list[str] | None = None
    command: Command | None = None


@event_type
class ExtensionApproved(EventBody):
    """The extension may be applied: by an auto-approval rule or by `approvers`."""

    TYPE: ClassVar[str] = "extension.approved"

    approvers: list[str] | None = None
    auto_rule: str | None = None
    auto_approved: bool | None = None


@event_type
class ExtensionRefused(EventBody):
    """An approver refused the extension; the grant keeps its expiry."""

    TYPE: ClassVar[str] = "extension.refused"

    reason: str | None = None
    command: Command | None = None


@event_type
class ExtensionExpired(EventBody):
    """The extension was not decided before its deadline; the grant keeps its expiry."""

    TYPE: ClassVar[str] = "extension.expired"

    deadline: IsoTime


@event_type
class ExtensionApplied(EventBody):
    """The provider's TTL and the grant's expiry timer moved to `expires_at`."""

    TYPE: ClassVar[str] = "extension.applied"

    added_seconds: int
    total_seconds: int
    expires_at: IsoTime
    provider_expires_at: IsoTime | None = None
    decided_by: str | None = None
    auto_rule: str | None = None


@event_type
class ExtensionFailed(EventBody):
    """The provider could not extend the access; the grant keeps its expiry."""

    TYPE: ClassVar[str] = "extension.failed"
    SEVERITY: ClassVar[Severity] = "warning"

    error: str
    expires_at: IsoTime


@event_type
class ReviewRequested(EventBody):
    """A break-glass grant ended: a reviewer (not the requester) must judge its use by `deadline`."""

    TYPE: ClassVar[str] = "review.requested"

    deadline: IsoTime
    reviewer_groups: list[str]
    incident: str | None = None


@event_type
class ReviewReminder(EventBody):
    """Reviewers were reminded of a pending break-glass review."""

    TYPE: ClassVar[str] = "review.reminder"

    deadline: IsoTime


@event_type
class ReviewOverdue(EventBody):
    """The review deadline passed: the escalation groups are told."""

    TYPE: ClassVar[str] = "review.overdue"
    SEVERITY: ClassVar[Severity] = "warning"

    deadline: IsoTime
    escalation_groups: list[str]


@event_type
class ReviewCompleted(EventBody):
    """A reviewer judged the break-glass use."""

    TYPE: ClassVar[str] = "review.completed"

    outcome: Literal["justified", "not_justified"]
    notes: str | None = None
    overdue: bool | None = None
    incident: str | None = None
    command: Command | None = None


@event_type
class ReviewFinding(EventBody):
    """A break-glass use was judged not justified: a finding for security."""

    TYPE: ClassVar[str] = "review.finding"
    SEVERITY: ClassVar[Severity] = "high"

    finding: str
    requester: str
    incident: str | None = None
    reviewer: str
    notes: str | None = None
