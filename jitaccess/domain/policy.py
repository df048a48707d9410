"""Policy evaluation: a pure function from (catalogue, requester, request) to a decision.

The decision is evidence: it names the rule that applied, the policy version
(catalogue content hash), the inputs it saw, and reason codes for a denial.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from jitaccess.domain.catalogue import Catalogue, Entitlement
from jitaccess.domain.principals import Principal


class ReasonCode(StrEnum):
    not_in_catalogue = "not_in_catalogue"
    requester_not_eligible = "requester_not_eligible"
    duration_exceeds_max = "duration_exceeds_max"
    duration_not_positive = "duration_not_positive"
    reason_required = "reason_required"


# Denials that mean the request itself is malformed: the API answers 422 and no
# grant is created. Any other denial is a policy outcome recorded on a grant.
INPUT_ERRORS = frozenset(
    {ReasonCode.not_in_catalogue, ReasonCode.duration_exceeds_max, ReasonCode.duration_not_positive, ReasonCode.reason_required}
)


class AccessRequest(BaseModel):
    """What a requester asks for (already parsed; the API validates types)."""

    model_config = ConfigDict(frozen=True)

    entitlement: str
    duration: timedelta | None = None
    reason: str = ""
    ticket: str | None = None
    request_id: str | None = None


class Outcome(StrEnum):
    allow = "allow"
    deny = "deny"


class PolicyDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    policy_version: str
    rule: str
    reason_codes: tuple[ReasonCode, ...] = ()
    messages: tuple[str, ...] = ()
    inputs: dict[str, object] = Field(default_factory=dict)
    duration: timedelta = timedelta(0)
    auto_approved: bool = False
    approver_groups: tuple[str, ...] = ()
    min_approvals: int = 0
    approval_timeout: timedelta = timedelta(0)
    entitlement: Entitlement | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.allow

    @property
    def is_input_error(self) -> bool:
        return bool(self.reason_codes) and all(c in INPUT_ERRORS for c in self.reason_codes)

    def evidence(self) -> dict[str, object]:
        """The decision as recorded on the chain (the entitlement snapshot is summarised)."""
        data = self.model_dump(mode="json", exclude={"entitlement"})
        if self.entitlement is not None:
            data["provider"] = self.entitlement.provider.type
        return data


def _fmt(td: timedelta) -> str:
    secs = int(td.total_seconds())
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{secs}s ({h}h{m:02d}m{s:02d}s)"


def evaluate(catalogue: Catalogue, requester: Principal, request: AccessRequest) -> PolicyDecision:
    version = catalogue.version
    inputs: dict[str, object] = {
        "requester": requester.id,
        "requester_kind": requester.kind.value,
        "requester_groups": list(requester.groups),
        "entitlement": request.entitlement,
        "duration_seconds": int(request.duration.total_seconds()) if request.duration is not None else None,
        "reason_given": bool(request.reason.strip()),
        "ticket": request.ticket,
    }
    ent = catalogue.get(request.entitlement)
    if ent is None:
        return PolicyDecision(
            outcome=Outcome.deny,
            policy_version=version,
            rule="catalogue",
            reason_codes=(ReasonCode.not_in_catalogue,),
            messages=(f"unknown entitlement {request.entitlement!r}; valid ids: {', '.join(catalogue.ids)}",),
            inputs=inputs,
        )

    codes: list[ReasonCode] = []
    messages: list[str] = []
    duration = request.duration if request.duration is not None else ent.default_duration
    if duration <= timedelta(0):
        codes.append(ReasonCode.duration_not_positive)
        messages.append("duration must be positive")
    elif duration > ent.max_duration:
        codes.append(ReasonCode.duration_exceeds_max)
        messages.append(f"duration {_fmt(duration)} exceeds the maximum for {ent.id}: {_fmt(ent.max_duration)}")
    if ent.reason_required and not request.reason.strip():
        codes.append(ReasonCode.reason_required)
        messages.append(f"a reason is required for {ent.id}")
    if not requester.in_any(ent.requester_groups):
        codes.append(ReasonCode.requester_not_eligible)
        messages.append(
            f"{requester.id} is in none of the groups allowed to request {ent.id}: {', '.join(ent.requester_groups)}"
        )

    rule_kind = "auto_approve" if ent.approval.auto_approve else "approval"
    common = dict(
        policy_version=version,
        rule=f"entitlement:{ent.id}/{rule_kind}",
        inputs=inputs,
        duration=duration,
        entitlement=ent,
    )
    if codes:
        return PolicyDecision(outcome=Outcome.deny, reason_codes=tuple(codes), messages=tuple(messages), **common)
    return PolicyDecision(
        outcome=Outcome.allow,
        auto_approved=ent.approval.auto_approve,
        approver_groups=ent.approval.approver_groups,
        min_approvals=0 if ent.approval.auto_approve else ent.approval.min_approvals,
        approval_timeout=ent.approval.timeout,
        **common,
    )
