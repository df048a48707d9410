"""Extending an active grant, and the after-the-fact review of a break-glass grant (GrantWorkflow)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from jitaccess.domain.event_types.base import Command, EventBody, IsoTime


class ExtensionRequested(EventBody, type="extension.requested"):
    """The requester asked for more time; `stages` name the approval stages it needs (none: auto)."""

    extension_seconds: int = Field(description="the time asked for")
    total_seconds: int = Field(description="the grant's duration with it")
    reason: str
    policy_version: str | None = None
    auto_rule: str | None = None
    stages: list[str] | None = Field(None, description="the approval stages it needs (none: auto-approved)")
    command: Command | None = None


class ExtensionApproved(EventBody, type="extension.approved"):
    """The extension may be applied: by an auto-approval rule or by `approvers`."""

    approvers: list[str] | None = None
    auto_rule: str | None = None
    auto_approved: bool | None = None


class ExtensionRefused(EventBody, type="extension.refused"):
    """An approver refused the extension; the grant keeps its expiry."""

    reason: str | None = None
    command: Command | None = None


class ExtensionExpired(EventBody, type="extension.expired"):
    """The extension was not decided before its deadline; the grant keeps its expiry."""

    deadline: IsoTime


class ExtensionApplied(EventBody, type="extension.applied"):
    """The provider's TTL and the grant's expiry timer moved to `expires_at`."""

    added_seconds: int
    total_seconds: int = Field(description="the grant's duration now")
    expires_at: IsoTime
    provider_expires_at: IsoTime | None = None
    decided_by: str | None = Field(None, description="who approved it (none: an auto-approval rule)")
    auto_rule: str | None = None


class ExtensionFailed(EventBody, type="extension.failed", severity="warning"):
    """The provider could not extend the access; the grant keeps its expiry."""

    error: str
    expires_at: IsoTime


class ReviewRequested(EventBody, type="review.requested"):
    """A break-glass grant ended: a reviewer (not the requester) must judge its use by `deadline`."""

    deadline: IsoTime
    reviewer_groups: list[str]
    incident: str | None = None


class ReviewReminder(EventBody, type="review.reminder"):
    """Reviewers were reminded of a pending break-glass review."""

    deadline: IsoTime


class ReviewOverdue(EventBody, type="review.overdue", severity="warning"):
    """The review deadline passed: the escalation groups are told."""

    deadline: IsoTime
    escalation_groups: list[str]


class ReviewCompleted(EventBody, type="review.completed"):
    """A reviewer judged the break-glass use."""

    outcome: Literal["justified", "not_justified"]
    notes: str | None = None
    overdue: bool | None = Field(None, description="decided after the deadline")
    incident: str | None = None
    command: Command | None = None


class ReviewFinding(EventBody, type="review.finding", severity="high"):
    """A break-glass use was judged not justified: a finding for security."""

    finding: str
    requester: str
    incident: str | None = None
    reviewer: str
    notes: str | None = None
