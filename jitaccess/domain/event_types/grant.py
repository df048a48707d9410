"""A grant's request, policy decision, approval and end (GrantWorkflow; the approval types are
also written by ServiceOnboardingWorkflow on an onboarding's chain)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from jitaccess.domain.event_types.base import Command, EventBody, IsoTime, Pending, Severity, event_type


@event_type
class GrantRequested(EventBody):
    """A person or service asked for an entitlement (the chain's first event)."""

    TYPE: ClassVar[str] = "grant.requested"

    entitlement: str
    duration_seconds: int
    reason: str
    ticket: str | None = None
    request_id: str | None = None
    break_glass: bool | None = None
    incident: str | None = None
    requester: dict[str, Any] | None = None
    workload: dict[str, Any] | None = None

    @classmethod
    def severity_of(cls, data: Mapping[str, Any]) -> Severity:
        return "high" if data.get("break_glass") is True else "info"  # access at once, reviewed afterwards


@event_type
class PolicyDecided(EventBody):
    """The policy's decision on a request: for a grant the decision itself (outcome, rule, stages,
    timeouts...) and the provider type; for an onboarding its plan (entitlements, lifetime, stage
    sources); a start the API did not sign is denied with rule `trust:signed_request`."""

    TYPE: ClassVar[str] = "policy.decided"

    outcome: Literal["allow", "deny"] | None = None
    policy_version: str | None = None
    rule: str | None = None
    reason_codes: list[str] | None = None
    messages: list[str] | None = None
    inputs: dict[str, Any] | None = None
    duration: str | None = None
    auto_approved: bool | None = None
    auto_rule: str | None = None
    approver_groups: list[str] | None = None
    min_approvals: int | None = None
    stages: list[dict[str, Any]] | None = None
    stage_order: str | None = None
    approval_timeout: str | None = None
    reminder_every: str | None = None
    escalate_after: str | None = None
    escalation_groups: list[str] | None = None
    break_glass: bool | None = None
    provider: str | None = None
    signer: str | None = None  # a refused start: the key that signed it, if any
    # an onboarding's plan
    pre_approved: bool | None = None
    stage_sources: dict[str, Any] | None = None
    lifetime: float | None = None
    entitlements: list[str] | None = None
    entitlement_rules: dict[str, Any] | None = None

    @classmethod
    def severity_of(cls, data: Mapping[str, Any]) -> Severity:
        return "high" if str(data.get("rule", "")).startswith("trust:") else "info"  # a forged or unsigned start


@event_type
class GrantApproved(EventBody):
    """The grant may be issued: by break-glass (`break_glass`), an auto-approval rule
    (`auto_approved`, `auto_rule`) or the approvers of every stage (`approvers`)."""

    TYPE: ClassVar[str] = "grant.approved"

    rule: str | None = None
    break_glass: bool | None = None
    incident: str | None = None
    auto_approved: bool | None = None
    auto_rule: str | None = None
    approvers: list[str] | None = None

    @classmethod
    def severity_of(cls, data: Mapping[str, Any]) -> Severity:
        return "high" if data.get("break_glass") is True else "info"


@event_type
class GrantCancelled(EventBody):
    """The grant ended before access was given: revoked while awaiting approval or before issuance."""

    TYPE: ClassVar[str] = "grant.cancelled"

    reason: str
    before: Literal["approval", "issuance"]
    authority: str | None = None
    command: Command | None = None


@event_type
class GrantRevokeRequested(EventBody):
    """Someone (`authority`: requester, approver, admin or the owning onboarding) asked to end
    active access early; `revocation.*` follows."""

    TYPE: ClassVar[str] = "grant.revoke_requested"

    reason: str
    authority: str
    command: Command | None = None


@event_type
class GrantExpired(EventBody):
    """The grant's time ran out; revocation follows."""

    TYPE: ClassVar[str] = "grant.expired"

    expires_at: IsoTime


@event_type
class ApprovalRequested(EventBody):
    """Approvers were asked (a grant: its stages; an onboarding: what is pending)."""

    TYPE: ClassVar[str] = "approval.requested"

    stages: list[dict[str, Any]] | None = None
    stage_order: str | None = None
    approver_groups: list[str] | None = None
    min_approvals: int | None = None
    pending: Pending | None = None
    deadline: IsoTime


@event_type
class ApprovalGranted(EventBody):
    """One approver's vote (in person or `on_behalf_of` a delegator); `purpose` says whether it
    approves the grant or an extension."""

    TYPE: ClassVar[str] = "approval.granted"

    purpose: Literal["grant", "extension"] | None = None
    stage: str | None = None
    comment: str | None = None
    on_behalf_of: str | None = None
    delegation_id: str | None = None
    votes: int | None = None
    pending: Pending | None = None
    command: Command | None = None


@event_type
class ApprovalDenied(EventBody):
    """An approver denied the request."""

    TYPE: ClassVar[str] = "approval.denied"

    reason: str | None = None
    command: Command | None = None


@event_type
class ApprovalExpired(EventBody):
    """No decision before the approval deadline: the request ends."""

    TYPE: ClassVar[str] = "approval.expired"

    deadline: IsoTime | None = None
    votes: int | None = None


@event_type
class ApprovalReminder(EventBody):
    """Approvers were reminded of a pending request."""

    TYPE: ClassVar[str] = "approval.reminder"

    pending: Pending


@event_type
class ApprovalEscalated(EventBody):
    """The request waited too long: the escalation groups may now approve it too."""

    TYPE: ClassVar[str] = "approval.escalated"
    SEVERITY: ClassVar[Severity] = "warning"

    escalation_groups: list[str]
    pending: Pending
