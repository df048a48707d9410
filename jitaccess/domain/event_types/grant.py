"""A grant's request, policy decision, approval and end (GrantWorkflow; the approval types are
also written by ServiceOnboardingWorkflow on an onboarding's chain)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from jitaccess.domain.event_types.base import Command, EventBody, IsoTime, Pending, Severity


class GrantRequested(EventBody, type="grant.requested"):
    """A person or service asked for an entitlement (the chain's first event)."""

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


class PolicyDecided(EventBody, type="policy.decided"):
    """The policy's decision on a request: for a grant the decision itself (outcome, rule, stages,
    timeouts...) and the provider type; for an onboarding its plan (entitlements, lifetime, stage
    sources); a start the API did not sign is denied with rule `trust:signed_request`."""

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


class GrantApproved(EventBody, type="grant.approved"):
    """The grant may be issued: by break-glass (`break_glass`), an auto-approval rule
    (`auto_approved`, `auto_rule`) or the approvers of every stage (`approvers`)."""

    rule: str | None = None
    break_glass: bool | None = None
    incident: str | None = None
    auto_approved: bool | None = None
    auto_rule: str | None = None
    approvers: list[str] | None = None

    @classmethod
    def severity_of(cls, data: Mapping[str, Any]) -> Severity:
        return "high" if data.get("break_glass") is True else "info"


class GrantCancelled(EventBody, type="grant.cancelled"):
    """The grant ended before access was given: revoked while awaiting approval or before issuance."""

    reason: str
    before: Literal["approval", "issuance"]
    authority: str | None = None
    command: Command | None = None


class GrantRevokeRequested(EventBody, type="grant.revoke_requested"):
    """Someone (`authority`: requester, approver, admin or the owning onboarding) asked to end
    active access early; `revocation.*` follows."""

    reason: str
    authority: str
    command: Command | None = None


class GrantExpired(EventBody, type="grant.expired"):
    """The grant's time ran out; revocation follows."""

    expires_at: IsoTime


class ApprovalRequested(EventBody, type="approval.requested"):
    """Approvers were asked (a grant: its stages; an onboarding: what is pending)."""

    stages: list[dict[str, Any]] | None = None
    stage_order: str | None = None
    approver_groups: list[str] | None = None
    min_approvals: int | None = None
    pending: Pending | None = None
    deadline: IsoTime


class ApprovalGranted(EventBody, type="approval.granted"):
    """One approver's vote (in person or `on_behalf_of` a delegator); `purpose` says whether it
    approves the grant or an extension."""

    purpose: Literal["grant", "extension"] | None = None
    stage: str | None = None
    comment: str | None = None
    on_behalf_of: str | None = None
    delegation_id: str | None = None
    votes: int | None = None
    pending: Pending | None = None
    command: Command | None = None


class ApprovalDenied(EventBody, type="approval.denied"):
    """An approver denied the request."""

    reason: str | None = None
    command: Command | None = None


class ApprovalExpired(EventBody, type="approval.expired"):
    """No decision before the approval deadline: the request ends."""

    deadline: IsoTime | None = None
    votes: int | None = None


class ApprovalReminder(EventBody, type="approval.reminder"):
    """Approvers were reminded of a pending request."""

    pending: Pending


class ApprovalEscalated(EventBody, type="approval.escalated", severity="warning"):
    """The request waited too long: the escalation groups may now approve it too."""

    escalation_groups: list[str]
    pending: Pending
