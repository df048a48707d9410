"""A grant's request, policy decision, approval and end (GrantWorkflow; the approval types are
also written by ServiceOnboardingWorkflow on an onboarding's chain)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from jitaccess.domain.event_types.base import Command, EventBody, IsoTime, Pending, Severity


class GrantRequested(EventBody, type="grant.requested"):
    """A person or service asked for an entitlement (the chain's first event)."""

    entitlement: str
    duration_seconds: int = Field(description="how long the access is asked for")
    reason: str = Field(description="the requester's justification")
    ticket: str | None = Field(None, description="a change or incident ticket, if given")
    request_id: str | None = Field(None, description="the client's idempotency key")
    break_glass: bool | None = Field(None, description="emergency access: active at once, reviewed afterwards")
    incident: str | None = Field(None, description="the incident a break-glass request names")
    requester: dict[str, Any] | None = Field(None, description="id, kind and groups of the requester")
    workload: dict[str, Any] | None = Field(
        None, description="a service onboarding's child: the workload and onboarding it belongs to"
    )

    @classmethod
    def severity_of(cls, data: Mapping[str, Any]) -> Severity:
        return "high" if data.get("break_glass") is True else "info"  # access at once, reviewed afterwards


class PolicyDecided(EventBody, type="policy.decided"):
    """The policy's decision on a request: for a grant the decision itself (outcome, rule, stages,
    timeouts...) and the provider type; for an onboarding its plan (entitlements, lifetime, stage
    sources); a start the API did not sign is denied with rule `trust:signed_request`."""

    outcome: Literal["allow", "deny"] | None = Field(None, description="allow or deny")
    policy_version: str | None = Field(None, description="the version (hash) of the catalogue that decided")
    rule: str | None = Field(
        None, description="the catalogue rule that decided; `trust:signed_request`: an unsigned or forged start"
    )
    reason_codes: list[str] | None = Field(None, description="why it was denied (machine-readable)")
    messages: list[str] | None = None
    inputs: dict[str, Any] | None = Field(None, description="the facts the policy was evaluated on")
    duration: str | None = Field(None, description="the duration granted (ISO 8601)")
    auto_approved: bool | None = None
    auto_rule: str | None = None
    approver_groups: list[str] | None = None
    min_approvals: int | None = None
    stages: list[dict[str, Any]] | None = Field(
        None, description="approval stages: name, approver_groups, min_approvals"
    )
    stage_order: str | None = None
    approval_timeout: str | None = None
    reminder_every: str | None = None
    escalate_after: str | None = None
    escalation_groups: list[str] | None = None
    break_glass: bool | None = None
    provider: str | None = Field(None, description="the provider type that fulfils the entitlement")
    signer: str | None = Field(None, description="a refused start: the key that signed it, if any")
    # an onboarding's plan
    pre_approved: bool | None = None
    stage_sources: dict[str, Any] | None = Field(
        None, description="an onboarding: which rule (template or entitlement) asked for each stage"
    )
    lifetime: float | None = Field(None, description="an onboarding's lifetime, in seconds")
    entitlements: list[str] | None = None
    entitlement_rules: dict[str, Any] | None = Field(
        None, description="an onboarding: the catalogue rule of each entitlement"
    )

    @classmethod
    def severity_of(cls, data: Mapping[str, Any]) -> Severity:
        return "high" if str(data.get("rule", "")).startswith("trust:") else "info"  # a forged or unsigned start


class GrantApproved(EventBody, type="grant.approved"):
    """The grant may be issued: by break-glass (`break_glass`), an auto-approval rule
    (`auto_approved`, `auto_rule`) or the approvers of every stage (`approvers`)."""

    rule: str | None = Field(None, description="the rule that approved")
    break_glass: bool | None = None
    incident: str | None = None
    auto_approved: bool | None = None
    auto_rule: str | None = None
    approvers: list[str] | None = Field(None, description="whose votes approved it (every stage's)")

    @classmethod
    def severity_of(cls, data: Mapping[str, Any]) -> Severity:
        return "high" if data.get("break_glass") is True else "info"


class GrantCancelled(EventBody, type="grant.cancelled"):
    """The grant ended before access was given: revoked while awaiting approval or before issuance."""

    reason: str
    before: Literal["approval", "issuance"] = Field(description="the step it was cancelled before")
    authority: str | None = Field(None, description="on which grounds: requester, approver or admin")
    command: Command | None = None


class GrantRevokeRequested(EventBody, type="grant.revoke_requested"):
    """Someone (`authority`: requester, approver, admin or the owning onboarding) asked to end
    active access early; `revocation.*` follows."""

    reason: str
    authority: str = Field(description="on which grounds: requester, approver, admin or onboarding")
    command: Command | None = None


class GrantExpired(EventBody, type="grant.expired"):
    """The grant's time ran out; revocation follows."""

    expires_at: IsoTime


class ApprovalRequested(EventBody, type="approval.requested"):
    """Approvers were asked (a grant: its stages; an onboarding: what is pending)."""

    stages: list[dict[str, Any]] | None = None
    stage_order: str | None = None
    approver_groups: list[str] | None = Field(None, description="the union over stages")
    min_approvals: int | None = Field(None, description="the total over stages")
    pending: Pending | None = None
    deadline: IsoTime = Field(description="when the request expires undecided")


class ApprovalGranted(EventBody, type="approval.granted"):
    """One approver's vote (in person or `on_behalf_of` a delegator); `purpose` says whether it
    approves the grant or an extension."""

    purpose: Literal["grant", "extension"] | None = Field(
        None, description="whether the vote approves the grant or an extension"
    )
    stage: str | None = Field(None, description="the stage the vote counts for")
    comment: str | None = None
    on_behalf_of: str | None = Field(None, description="the delegator, when a delegate voted")
    delegation_id: str | None = Field(None, description="the delegation the delegate voted under")
    votes: int | None = Field(None, description="votes cast so far")
    pending: Pending | None = None
    command: Command | None = None


class ApprovalDenied(EventBody, type="approval.denied"):
    """An approver denied the request."""

    reason: str | None = None
    command: Command | None = None


class ApprovalExpired(EventBody, type="approval.expired"):
    """No decision before the approval deadline: the request ends."""

    deadline: IsoTime | None = None
    votes: int | None = Field(None, description="votes cast by then")


class ApprovalReminder(EventBody, type="approval.reminder"):
    """Approvers were reminded of a pending request."""

    pending: Pending


class ApprovalEscalated(EventBody, type="approval.escalated", severity="warning"):
    """The request waited too long: the escalation groups may now approve it too."""

    escalation_groups: list[str]
    pending: Pending
