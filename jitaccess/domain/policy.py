"""Policy evaluation: a pure function from (catalogue, requester, request) to a decision.

The decision is evidence: it names the rule that applied, the policy version
(catalogue content hash), the inputs it saw, and reason codes for a denial.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jitaccess.domain.catalogue import ApprovalRule, ApprovalStage, Catalogue, Entitlement
from jitaccess.domain.principals import Principal


class ReasonCode(StrEnum):
    not_in_catalogue = "not_in_catalogue"
    requester_not_eligible = "requester_not_eligible"
    duration_exceeds_max = "duration_exceeds_max"
    duration_not_positive = "duration_not_positive"
    duration_below_min = "duration_below_min"
    reason_required = "reason_required"
    break_glass_not_allowed = "break_glass_not_allowed"
    not_break_glass_eligible = "not_break_glass_eligible"
    incident_required = "incident_required"
    not_extendable = "not_extendable"


# Denials that mean the request itself is malformed: the API answers 422 and no
# grant is created. Any other denial is a policy outcome recorded on a grant.
INPUT_ERRORS = frozenset(
    {
        ReasonCode.not_in_catalogue,
        ReasonCode.duration_exceeds_max,
        ReasonCode.duration_not_positive,
        ReasonCode.duration_below_min,
        ReasonCode.reason_required,
        ReasonCode.break_glass_not_allowed,
        ReasonCode.incident_required,
        ReasonCode.not_extendable,
    }
)


class AccessRequest(BaseModel):
    """What a requester asks for (already parsed; the API validates types)."""

    model_config = ConfigDict(frozen=True)

    entitlement: str
    duration: timedelta | None = None
    reason: str = ""
    ticket: str | None = None
    request_id: str | None = None
    break_glass: bool = False
    incident: str | None = None
    # a non-human identity's workload context (service, owning team, environment, repository,
    # dependencies, onboarding id) when the grant is part of a service onboarding
    workload: dict[str, object] | None = None


class Outcome(StrEnum):
    allow = "allow"
    deny = "deny"


class Ruling(BaseModel):
    """What a policy decision and an extension decision share: why a request was refused (codes and
    messages, in the same order), and otherwise the approval it needs — none when an auto-approval
    rule matched (`auto_rule`)."""

    model_config = ConfigDict(frozen=True)

    reason_codes: tuple[ReasonCode, ...] = ()
    messages: tuple[str, ...] = ()
    auto_rule: str | None = None  # which auto-approval rule matched (None: unconditional or manual)
    stages: tuple[ApprovalStage, ...] = ()
    stage_order: str = "sequential"
    approval_timeout: timedelta = timedelta(0)


class PolicyDecision(Ruling):
    outcome: Outcome
    policy_version: str
    rule: str
    inputs: dict[str, object] = Field(default_factory=dict)
    duration: timedelta = timedelta(0)
    auto_approved: bool = False
    approver_groups: tuple[str, ...] = ()  # union over stages
    min_approvals: int = 0  # total over stages
    reminder_every: timedelta | None = None
    escalate_after: timedelta | None = None
    escalation_groups: tuple[str, ...] = ()
    break_glass: bool = False
    entitlement: Entitlement | None = None

    @model_validator(mode="before")
    @classmethod
    def _single_stage_from_legacy(cls, data: object) -> object:
        """Decisions recorded before approval stages existed (in-flight grants' workflow input)
        carry only approver_groups/min_approvals: read them as the one stage they meant."""
        if (
            isinstance(data, dict)
            and not data.get("stages")
            and data.get("approver_groups")
            and not data.get("auto_approved")
            and not data.get("break_glass")
            and data.get("outcome") == Outcome.allow.value
        ):
            data = {
                **data,
                # the same single stage ApprovalRule makes of approver_groups + min_approvals
                "stages": ApprovalRule(
                    approver_groups=tuple(data["approver_groups"]), min_approvals=data.get("min_approvals") or 1
                ).effective_stages,
            }
        return data

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


def _range(lo: timedelta, hi: timedelta) -> str:
    return f"{int(lo.total_seconds())} to {int(hi.total_seconds())} seconds (ISO 8601 like PT15M, or seconds)"


def match_auto_rule(rule: ApprovalRule, requester: Principal, duration: timedelta, now: datetime | None) -> str | None:
    """The first auto-approval rule whose every condition holds, by name ('always' if unconditional)."""
    if rule.auto_approve:
        return "always"
    for r in rule.auto_rules:
        if r.requester_groups and not requester.in_any(r.requester_groups):
            continue
        if r.max_duration is not None and duration > r.max_duration:
            continue
        if r.business_hours is not None and (now is None or not r.business_hours.contains(now)):
            continue
        return r.name
    return None


def evaluate(
    catalogue: Catalogue, requester: Principal, request: AccessRequest, now: datetime | None = None
) -> PolicyDecision:
    """`now` is the request time (business-hours auto-approval rules need it)."""
    inputs = _request_inputs(requester, request, now)
    ent = catalogue.get(request.entitlement)
    if ent is None:
        return PolicyDecision(
            outcome=Outcome.deny,
            policy_version=catalogue.version,
            rule="catalogue",
            reason_codes=(ReasonCode.not_in_catalogue,),
            messages=(f"unknown entitlement {request.entitlement!r}; valid ids: {', '.join(catalogue.ids)}",),
            inputs=inputs,
        )
    bg = ent.break_glass if request.break_glass else None
    max_duration = bg.max_duration if bg else ent.max_duration
    duration = request.duration if request.duration is not None else min(ent.default_duration, max_duration)
    problems = _request_problems(ent, requester, request, duration, max_duration)
    rule = ent.approval
    auto = "break-glass" if request.break_glass else match_auto_rule(rule, requester, duration, now)
    rule_kind = (
        "break_glass"
        if request.break_glass
        else ("auto_approve" if rule.auto_approve else (f"auto:{auto}" if auto else "approval"))
    )
    common = dict(
        policy_version=catalogue.version,
        rule=f"entitlement:{ent.id}/{rule_kind}",
        inputs=inputs,
        duration=duration,
        entitlement=ent,
        break_glass=request.break_glass,
    )
    if problems:
        codes, messages = tuple(c for c, _ in problems), tuple(m for _, m in problems)
        return PolicyDecision(outcome=Outcome.deny, reason_codes=codes, messages=messages, **common)
    stages = rule.effective_stages
    return PolicyDecision(
        outcome=Outcome.allow,
        auto_approved=auto is not None,
        auto_rule=auto,
        approver_groups=tuple(dict.fromkeys(g for st in stages for g in st.approver_groups)),
        min_approvals=0 if auto else sum(st.min_approvals for st in stages),
        stages=() if auto else stages,
        stage_order=rule.stage_order,
        approval_timeout=rule.timeout,
        reminder_every=rule.reminder_every,
        escalate_after=rule.escalate_after,
        escalation_groups=rule.escalation_groups,
        **common,
    )


def _request_inputs(requester: Principal, request: AccessRequest, now: datetime | None) -> dict[str, object]:
    """What the decision saw, kept as its evidence."""
    return {
        "requester": requester.id,
        "requester_kind": requester.kind.value,
        "requester_groups": list(requester.groups),
        "requester_owner": requester.owner,
        "entitlement": request.entitlement,
        "duration_seconds": int(request.duration.total_seconds()) if request.duration is not None else None,
        "reason_given": bool(request.reason.strip()),
        "ticket": request.ticket,
        "break_glass": request.break_glass,
        "incident": request.incident,
        "evaluated_at": now.isoformat() if now else None,
    }


def _request_problems(
    ent: Entitlement, requester: Principal, request: AccessRequest, duration: timedelta, max_duration: timedelta
) -> list[tuple[ReasonCode, str]]:
    """Every reason to deny the request, in a fixed order: break-glass, duration, reason, incident,
    eligibility. `max_duration` is the break-glass maximum for a break-glass request."""
    problems: list[tuple[ReasonCode, str]] = []
    bg = ent.break_glass if request.break_glass else None
    if request.break_glass and ent.break_glass is None:
        problems.append((ReasonCode.break_glass_not_allowed, f"{ent.id} does not allow break-glass access"))
    if duration <= timedelta(0):
        message = f"duration must be positive; allowed for {ent.id}: {_range(ent.min_duration, max_duration)}"
        problems.append((ReasonCode.duration_not_positive, message))
    elif duration < ent.min_duration:
        message = (
            f"duration {_fmt(duration)} is below the minimum for {ent.id}: {_fmt(ent.min_duration)}; "
            f"allowed: {_range(ent.min_duration, max_duration)}"
        )
        problems.append((ReasonCode.duration_below_min, message))
    elif duration > max_duration:
        what = "break-glass maximum" if bg else "maximum"
        message = f"duration {_fmt(duration)} exceeds the {what} for {ent.id}: {_fmt(max_duration)}"
        problems.append((ReasonCode.duration_exceeds_max, message))
    if (ent.reason_required or request.break_glass) and not request.reason.strip():
        message = f"a reason is required for {ent.id}" + (" (break-glass)" if request.break_glass else "")
        problems.append((ReasonCode.reason_required, message))
    if request.break_glass and not (request.incident or "").strip():
        message = "break-glass needs an incident reference (e.g. --incident INC-1234)"
        problems.append((ReasonCode.incident_required, message))
    if bg is not None and not requester.in_any(bg.groups):
        message = f"{requester.id} is in none of the break-glass groups for {ent.id}: {', '.join(bg.groups)}"
        problems.append((ReasonCode.not_break_glass_eligible, message))
    elif not request.break_glass and not requester.in_any(ent.requester_groups):
        message = (
            f"{requester.id} is in none of the groups allowed to request {ent.id}: {', '.join(ent.requester_groups)}"
        )
        problems.append((ReasonCode.requester_not_eligible, message))
    return problems


class ExtensionDecision(Ruling):
    """Policy on an extension: cumulative duration within the max, then the same approval rule."""

    allowed: bool
    extension: timedelta
    new_total: timedelta
    policy_version: str = ""


def evaluate_extension(
    decision: PolicyDecision,
    requester: Principal,
    current_total: timedelta,
    extension: timedelta,
    now: datetime | None = None,
    policy_version: str = "",
) -> ExtensionDecision:
    ent = decision.entitlement
    assert ent is not None
    new_total = current_total + extension
    cap = ent.break_glass.max_duration if decision.break_glass and ent.break_glass else ent.max_duration
    codes: list[ReasonCode] = []
    messages: list[str] = []
    if not ent.extendable:
        codes.append(ReasonCode.not_extendable)
        messages.append(f"{ent.id} cannot be extended; request a new grant")
    if extension <= timedelta(0):
        codes.append(ReasonCode.duration_not_positive)
        messages.append("extension must be positive")
    elif extension < ent.min_duration:
        codes.append(ReasonCode.duration_below_min)
        messages.append(
            f"extending by {_fmt(extension)} is below the minimum for {ent.id}: {_fmt(ent.min_duration)}; "
            + (
                f"allowed: {_range(ent.min_duration, cap - current_total)}"
                if cap - current_total >= ent.min_duration
                else "no extension of at least the minimum fits under the maximum; request a new grant"
            )
        )
    elif new_total > cap:
        codes.append(ReasonCode.duration_exceeds_max)
        messages.append(
            f"extending by {_fmt(extension)} makes the grant {_fmt(new_total)} in total, over the maximum for "
            f"{ent.id}: {_fmt(cap)} (at most {_fmt(max(cap - current_total, timedelta(0)))} more)"
        )
    auto = None if codes else match_auto_rule(ent.approval, requester, new_total, now)
    return ExtensionDecision(
        allowed=not codes,
        extension=extension,
        new_total=new_total,
        reason_codes=tuple(codes),
        messages=tuple(messages),
        auto_rule=auto,
        stages=() if auto else ent.approval.effective_stages,
        stage_order=ent.approval.stage_order,
        approval_timeout=ent.approval.timeout,
        policy_version=policy_version or decision.policy_version,
    )
