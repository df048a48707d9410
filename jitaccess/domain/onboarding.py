"""Service onboarding for non-human identities: a template's bundle of entitlements, granted
all-or-nothing as child grants, rotated on the template's interval, offboarded as a whole.

Pure: the onboarding policy, the per-child decisions and the onboarding aggregate."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from jitaccess.domain.approval import ApprovalRound, Delegation, authorise_vote
from jitaccess.domain.catalogue import ApprovalStage, Catalogue, Entitlement, OnboardingTemplate
from jitaccess.domain.contracts import WorkflowStart
from jitaccess.domain.policy import AccessRequest, Outcome, PolicyDecision, ReasonCode, evaluate
from jitaccess.domain.principals import ActorKind, Principal
from jitaccess.domain.refusals import Refusal, RefusalKind
from jitaccess.domain.stepup import ApproverAuth

SECRET_BEARING = frozenset({"vault_token", "vault_database", "vault_approle", "aws_sts_session"})

# Reason codes of a refused onboarding. The first two mean the request itself is malformed (the API
# answers 422); the others are policy refusals naming the rule (403), like a child entitlement's
# own `requester_not_eligible`.
TEMPLATE_NOT_IN_CATALOGUE = "template_not_in_catalogue"
ENVIRONMENT_NOT_ALLOWED = "environment_not_allowed"
TEMPLATE_REQUESTER_NOT_ELIGIBLE = "template_requester_not_eligible"
OWNING_TEAM_NOT_YOURS = "owning_team_not_yours"
INPUT_ERRORS = frozenset({TEMPLATE_NOT_IN_CATALOGUE, ENVIRONMENT_NOT_ALLOWED})


class WorkloadContext(BaseModel):
    """The non-human identity being onboarded, and who is accountable for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # size limits on every free-text field: the API answers 422 naming the field and the limit
    service: str = Field(max_length=41, pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    owning_team: str = Field(min_length=1, max_length=200, description="the human group accountable for the service")
    environment: str = Field(max_length=31, pattern=r"^[a-z0-9][a-z0-9-]{1,30}$")
    repository: str = Field(min_length=1, max_length=300)
    dependencies: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = Field(default=(), max_length=50)


class OnboardingRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    template: str = Field(min_length=1, max_length=64)
    workload: WorkloadContext
    reason: str = Field(default="", max_length=2000)


class ChildPlan(BaseModel):
    entitlement: str
    provider: str
    secret_bearing: bool
    decision: PolicyDecision


class OnboardingDecision(BaseModel):
    allowed: bool
    policy_version: str
    rule: str
    reason_codes: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    pre_approved: bool = False
    stages: tuple[ApprovalStage, ...] = ()
    approval_timeout: timedelta = timedelta(days=1)
    lifetime: timedelta = timedelta(0)
    rotation_interval: timedelta | None = None
    rotation_overlap: timedelta = timedelta(minutes=5)
    children: list[ChildPlan] = Field(default_factory=list)
    inputs: dict[str, object] = Field(default_factory=dict)  # what the decision saw (evidence)
    # evidence: each approval stage -> the rules that required it ("template:T/owning-team",
    # "entitlement:E/<stage>"); a stage several rules asked for holds the strictest of them
    stage_sources: dict[str, list[str]] = Field(default_factory=dict)
    # step-up for approvers: the strictest `approver_auth` of the children whose own rule needs approval
    approver_auth: ApproverAuth | None = Field(default=None, exclude_if=lambda v: v is None)

    @property
    def is_input_error(self) -> bool:
        return not self.allowed and bool(self.reason_codes) and all(c in INPUT_ERRORS for c in self.reason_codes)


def onboarding_id(workload: WorkloadContext) -> str:
    """One onboarding per service and environment: a retried request lands on the same workflow."""
    return f"onboarding-{workload.service}-{workload.environment}"


def declared_owner(requester: Principal, owner: Principal | None) -> Principal | None:
    """`owner` if it is the owner a non-human requester declares; a human has no owner to lean on."""
    if owner is None or requester.kind is ActorKind.human or requester.owner != owner.id:
        return None
    return owner


def owning_teams(requester: Principal, owner: Principal | None = None) -> tuple[str, ...]:
    """The teams a requester may name as a workload's owning team: a human's own groups; a service
    principal's own groups and, if it declares an owner, that owner's groups (`owner` is the owner
    as the caller resolved it from the directory; any other principal counts for nothing)."""
    who = declared_owner(requester, owner)
    return tuple(dict.fromkeys(requester.groups + (who.groups if who else ())))


def _stage_name(base: str, used: set[str]) -> str:
    root = re.sub(r"[^a-z0-9_-]", "-", base.lower())[:40]
    name, n = root, 1
    while name in used:
        n += 1
        name = f"{root[: 39 - len(str(n))]}-{n}"
    return name


def _add_stage(
    stages: list[ApprovalStage], sources: dict[str, list[str]], st: ApprovalStage, name: str, source: str
) -> str:
    """Add a child entitlement's stage to the round, the stricter way: a stage with the same approver
    groups is one stage (the higher min_approvals; the owner counts only if both allow it), any other
    is a stage of its own. Returns the name of the stage it landed in."""
    for i, have in enumerate(stages):
        if set(have.approver_groups) == set(st.approver_groups):
            stages[i] = ApprovalStage(
                name=have.name,
                approver_groups=have.approver_groups,
                min_approvals=max(have.min_approvals, st.min_approvals),
                owner_may_approve=have.owner_may_approve and st.owner_may_approve,
            )
            sources[have.name].append(source)
            return have.name
    name = _stage_name(name, {s.name for s in stages})
    stages.append(st.model_copy(update={"name": name}))
    sources[name] = [source]
    return name


Refused = tuple[str, str, str]  # (reason code, rule, message)


@dataclass
class _Plan:
    """What an onboarding adds up to as its children are evaluated: the approval round, the
    children to grant, and every refusal met on the way."""

    stages: list[ApprovalStage]
    sources: dict[str, list[str]]  # stage name -> the rules that asked for it
    timeout: timedelta
    step_up: ApproverAuth | None = None
    children: list[ChildPlan] = field(default_factory=list)
    refusals: list[Refused] = field(default_factory=list)


def evaluate_onboarding(
    catalogue: Catalogue,
    requester: Principal,
    req: OnboardingRequest,
    now: datetime | None = None,
    owner: Principal | None = None,
) -> OnboardingDecision:
    """The onboarding policy. The template bounds what may be asked; the catalogue's own rules still
    hold for every child, so an onboarding never reaches what a direct request could not:
    - only the template's automation principals and members of its `requester_groups` may use it;
    - the owning team must be the requester's (see `owning_teams`): it becomes an approval stage;
    - each child entitlement is evaluated as a direct request by this requester (`evaluate`, at `now`):
      not eligible -> refused (`requester_not_eligible`); unless its own rule auto-approves this
      requester, its stages join the round (same approver groups -> one stage, the stricter one);
    - pre-approved only if the template pre-approves (automation principal, pre-approved environment)
      AND every child's own rule auto-approves; otherwise the template's owning-team stage (and
      security for production) unless the template pre-approves, plus the children's stages.
    `owner` is the requester's declared owner as resolved by the caller (for a service principal)."""
    version = catalogue.version
    t: OnboardingTemplate | None = catalogue.template(req.template)
    if t is None:
        ids = ", ".join(x.id for x in catalogue.onboarding_templates) or "none"
        message = f"unknown onboarding template {req.template!r}; valid ids: {ids}"
        return _refused(version, [(TEMPLATE_NOT_IN_CATALOGUE, "catalogue", message)])
    env = req.workload.environment
    if env not in t.environments:
        message = f"template {t.id} is for environments {', '.join(t.environments)}, not {env!r}"
        return _refused(version, [(ENVIRONMENT_NOT_ALLOWED, f"template:{t.id}", message)])
    automation = requester.id in t.automation_principals
    inputs = _decision_inputs(t, requester, owner, req.workload, automation, now)
    template_pre_approves = automation and env in t.pre_approved_environments
    plan = _template_round(t, req.workload, template_pre_approves)
    plan.refusals += _requester_refusals(t, requester, owner, req.workload, automation)
    for ent_id in t.entitlements:
        _plan_child(plan, catalogue, requester, req, t, ent_id, now)
    if plan.refusals:
        return _refused(version, plan.refusals, inputs)
    pre_approved = template_pre_approves and not plan.stages
    return OnboardingDecision(
        allowed=True,
        policy_version=version,
        rule=f"template:{t.id}/" + ("pre_approved" if pre_approved else "approval"),
        pre_approved=pre_approved,
        stages=tuple(plan.stages),
        approval_timeout=plan.timeout,
        lifetime=t.max_lifetime,
        rotation_interval=t.rotation_interval,
        rotation_overlap=t.rotation_overlap,
        children=plan.children,
        inputs=inputs,
        stage_sources=plan.sources,
        approver_auth=None if pre_approved else plan.step_up,
    )


def _refused(version: str, refusals: list[Refused], inputs: dict[str, object] | None = None) -> OnboardingDecision:
    """A refusal naming every reason; the first one's rule is the decision's."""
    return OnboardingDecision(
        allowed=False,
        policy_version=version,
        rule=refusals[0][1],
        reason_codes=tuple(code for code, _, _ in refusals),
        messages=tuple(message for _, _, message in refusals),
        inputs=inputs or {},
    )


def _decision_inputs(
    t: OnboardingTemplate,
    requester: Principal,
    owner: Principal | None,
    w: WorkloadContext,
    automation: bool,
    now: datetime | None,
) -> dict[str, object]:
    """What the decision saw, kept as its evidence."""
    the_owner = declared_owner(requester, owner)
    return {
        "template": t.id,
        "requester": requester.id,
        "requester_kind": requester.kind.value,
        "requester_groups": list(requester.groups),
        "requester_owner": requester.owner,
        "owner_groups": list(the_owner.groups) if the_owner else None,
        "automation_principal": automation,
        "owning_team": w.owning_team,
        "service": w.service,
        "environment": w.environment,
        "evaluated_at": now.isoformat() if now else None,
    }


def _requester_refusals(
    t: OnboardingTemplate, requester: Principal, owner: Principal | None, w: WorkloadContext, automation: bool
) -> list[Refused]:
    """The template's own rules: who may use it, and whose team may own the service."""
    refusals: list[Refused] = []
    if not (automation or requester.in_any(t.requester_groups)):
        who = [f"its automation principals ({', '.join(t.automation_principals)})"] if t.automation_principals else []
        who += [f"members of {', '.join(t.requester_groups)}"] if t.requester_groups else []
        refusals.append(
            (
                TEMPLATE_REQUESTER_NOT_ELIGIBLE,
                f"template:{t.id}/requesters",
                f"{requester.id} may not request onboarding template {t.id}; it is for "
                + (" and ".join(who) or "nobody (it lists no requesters)"),
            )
        )
    teams = owning_teams(requester, owner)
    if w.owning_team not in teams:
        whose = "its own groups or its owner's" if requester.kind is not ActorKind.human else "the requester's groups"
        refusals.append(
            (
                OWNING_TEAM_NOT_YOURS,
                f"template:{t.id}/owning_team",
                f"{requester.id} may not name {w.owning_team!r} as the owning team: it must be one of {whose} "
                f"({', '.join(teams) or 'none'})",
            )
        )
    return refusals


def _template_round(t: OnboardingTemplate, w: WorkloadContext, template_pre_approves: bool) -> _Plan:
    """The template's own stages: none if it pre-approves; else the owning team, and security for
    production."""
    plan = _Plan(stages=[], sources={}, timeout=t.approval_timeout)
    if not template_pre_approves:
        plan.stages.append(ApprovalStage(name="owning-team", approver_groups=(w.owning_team,), owner_may_approve=True))
        plan.sources["owning-team"] = [f"template:{t.id}/owning-team"]
        if w.environment in t.production_environments:
            plan.stages.append(ApprovalStage(name="security", approver_groups=t.security_groups))
            plan.sources["security"] = [f"template:{t.id}/security"]
    return plan


def _plan_child(
    plan: _Plan,
    catalogue: Catalogue,
    requester: Principal,
    req: OnboardingRequest,
    t: OnboardingTemplate,
    ent_id: str,
    now: datetime | None,
) -> None:
    """Evaluate one child as a direct request by this requester (the same eligibility and approval
    rule) and add it to the plan: its refusals, or its stages (unless its rule auto-approves) and
    the child itself."""
    ent = catalogue.get(ent_id)
    assert ent is not None  # the catalogue validates template entitlements
    w = req.workload
    direct = evaluate(
        catalogue,
        requester,
        AccessRequest(
            entitlement=ent.id,
            duration=min(t.max_lifetime, ent.max_duration),
            reason=req.reason.strip() or f"onboarding {w.service} ({w.environment})",
        ),
        now,
    )
    if not direct.allowed:
        for code, message in zip(direct.reason_codes, direct.messages, strict=True):
            rule = (
                f"entitlement:{ent.id}/requester_groups" if code is ReasonCode.requester_not_eligible else direct.rule
            )
            plan.refusals.append((code.value, rule, message))
        return
    contributed: list[str] = []
    if not direct.auto_approved:
        for st in direct.stages:
            contributed.append(
                _add_stage(plan.stages, plan.sources, st, f"{ent.id}-{st.name}", f"entitlement:{ent.id}/{st.name}")
            )
        plan.timeout = min(plan.timeout, direct.approval_timeout)
        if ent.approver_auth is not None:
            plan.step_up = ent.approver_auth.stricter(plan.step_up)
    plan.children.append(_child_plan(catalogue.version, t, ent, requester, w, direct, contributed))


def _child_plan(
    version: str,
    t: OnboardingTemplate,
    ent: Entitlement,
    requester: Principal,
    w: WorkloadContext,
    direct: PolicyDecision,
    contributed: list[str],
) -> ChildPlan:
    """A child grant pre-approved by the onboarding (its round is the onboarding's)."""
    return ChildPlan(
        entitlement=ent.id,
        provider=ent.provider.type,
        secret_bearing=ent.provider.type in SECRET_BEARING,
        decision=PolicyDecision(
            outcome=Outcome.allow,
            policy_version=version,
            rule=f"onboarding:{t.id}/{ent.id}",
            inputs={
                "onboarding_template": t.id,
                "service": w.service,
                "environment": w.environment,
                "requester": requester.id,
                # the entitlement's own rule for this requester, and the onboarding's
                # approval stages it contributed (none: its own rule auto-approves)
                "entitlement_rule": direct.rule,
                "onboarding_stages": contributed,
            },
            duration=direct.duration,
            auto_approved=True,
            auto_rule=f"onboarding:{t.id}",
            entitlement=ent,
        ),
    )


class OnboardingState(StrEnum):
    awaiting_approval = "awaiting_approval"
    denied = "denied"
    approval_expired = "approval_expired"
    provisioning = "provisioning"
    active = "active"
    offboarding = "offboarding"
    offboarded = "offboarded"
    expired = "expired"
    failed = "failed"


class ChildGrant(BaseModel):
    grant_id: str
    entitlement: str
    state: str = "requested"
    reference: str | None = None
    expires_at: datetime | None = None
    started_at: datetime | None = None  # when it became active (rotation counts from here)
    generation: int = 1  # rotation count: a rotated credential is a new child grant


class OnboardingInput(WorkflowStart):
    onboarding_id: str
    request: OnboardingRequest
    decision: OnboardingDecision


class Onboarding(BaseModel):
    onboarding_id: str
    state: OnboardingState = OnboardingState.provisioning
    requester: Principal
    workload: WorkloadContext
    template: str
    approval: ApprovalRound | None = None
    children: list[ChildGrant] = Field(default_factory=list)
    ends_at: datetime | None = None
    end_reason: str | None = None
    rotations: int = 0
    events: int = 0
    last_hash: str | None = None

    def check_decide(
        self, actor: Principal, now: datetime, delegations: Sequence[Delegation] = (), action: str = "decide on"
    ) -> tuple[ApprovalStage, Principal, Delegation | None]:
        """The stage the actor's decision counts for, as whom (self or a delegator); Refusal otherwise.
        `action` "approve" also applies the round's step-up requirement."""
        if self.state is not OnboardingState.awaiting_approval or self.approval is None:
            raise Refusal(
                RefusalKind.conflict,
                "wrong_state",
                f"{self.onboarding_id} is {self.state.value}, not awaiting_approval",
            )
        return authorise_vote(self.approval, self.requester, self.onboarding_id, actor, now, list(delegations), action)

    def check_offboard(self, actor: Principal, admin_groups: tuple[str, ...]) -> None:
        if self.state not in (OnboardingState.provisioning, OnboardingState.active):
            raise Refusal(
                RefusalKind.conflict, "wrong_state", f"{self.onboarding_id} is {self.state.value}; nothing to offboard"
            )
        if actor.id == self.requester.id or actor.in_any((self.workload.owning_team, *admin_groups)):
            return
        raise Refusal(
            RefusalKind.forbidden,
            "not_allowed_to_offboard",
            f"only the requesting automation, the owning team ({self.workload.owning_team}) or admins may offboard {self.workload.service}",
        )
