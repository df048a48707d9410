"""Service onboarding for non-human identities: a template's bundle of entitlements, granted
all-or-nothing as child grants, rotated on the template's interval, offboarded as a whole.

Pure: the onboarding policy, the per-child decisions and the onboarding aggregate."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from jitaccess.domain.catalogue import ApprovalStage, Catalogue, OnboardingTemplate
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import ApprovalRound, Delegation, Refusal, RefusalKind, authorise_vote
from jitaccess.domain.policy import Outcome, PolicyDecision
from jitaccess.domain.principals import Principal

SECRET_BEARING = frozenset({"vault_token", "vault_database", "vault_approle", "aws_sts_session"})


class WorkloadContext(BaseModel):
    """The non-human identity being onboarded, and who is accountable for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    owning_team: str = Field(min_length=1, description="the human group accountable for the service")
    environment: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,30}$")
    repository: str = Field(min_length=1, max_length=300)
    dependencies: tuple[str, ...] = ()


class OnboardingRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    template: str
    workload: WorkloadContext
    reason: str = ""


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

    @property
    def is_input_error(self) -> bool:
        return not self.allowed and bool(self.reason_codes)


def onboarding_id(workload: WorkloadContext) -> str:
    """One onboarding per service and environment: a retried request lands on the same workflow."""
    return f"onboarding-{workload.service}-{workload.environment}"


def evaluate_onboarding(catalogue: Catalogue, requester: Principal, req: OnboardingRequest) -> OnboardingDecision:
    version = catalogue.version
    t: OnboardingTemplate | None = catalogue.template(req.template)
    if t is None:
        ids = ", ".join(x.id for x in catalogue.onboarding_templates) or "none"
        return OnboardingDecision(
            allowed=False,
            policy_version=version,
            rule="catalogue",
            reason_codes=("template_not_in_catalogue",),
            messages=(f"unknown onboarding template {req.template!r}; valid ids: {ids}",),
        )
    env = req.workload.environment
    if env not in t.environments:
        return OnboardingDecision(
            allowed=False,
            policy_version=version,
            rule=f"template:{t.id}",
            reason_codes=("environment_not_allowed",),
            messages=(f"template {t.id} is for environments {', '.join(t.environments)}, not {env!r}",),
        )
    automation = requester.id in t.automation_principals
    pre_approved = automation and env in t.pre_approved_environments
    stages: tuple[ApprovalStage, ...] = ()
    if not pre_approved:
        stages = (
            ApprovalStage(name="owning-team", approver_groups=(req.workload.owning_team,), owner_may_approve=True),
        )
        if env in t.production_environments:
            stages += (ApprovalStage(name="security", approver_groups=t.security_groups),)
    rule = f"template:{t.id}/" + ("pre_approved" if pre_approved else "approval")
    children = []
    for ent_id in t.entitlements:
        ent = catalogue.get(ent_id)
        assert ent is not None  # the catalogue validates template entitlements
        children.append(
            ChildPlan(
                entitlement=ent.id,
                provider=ent.provider.type,
                secret_bearing=ent.provider.type in SECRET_BEARING,
                decision=PolicyDecision(
                    outcome=Outcome.allow,
                    policy_version=version,
                    rule=f"onboarding:{t.id}/{ent.id}",
                    inputs={
                        "onboarding_template": t.id,
                        "service": req.workload.service,
                        "environment": env,
                        "requester": requester.id,
                    },
                    duration=min(t.max_lifetime, ent.max_duration),
                    auto_approved=True,
                    auto_rule=f"onboarding:{t.id}",
                    entitlement=ent,
                ),
            )
        )
    return OnboardingDecision(
        allowed=True,
        policy_version=version,
        rule=rule,
        pre_approved=pre_approved,
        stages=stages,
        approval_timeout=t.approval_timeout,
        lifetime=t.max_lifetime,
        rotation_interval=t.rotation_interval,
        rotation_overlap=t.rotation_overlap,
        children=children,
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


class OnboardingInput(BaseModel):
    onboarding_id: str
    requester: Principal
    request: OnboardingRequest
    decision: OnboardingDecision
    admin_groups: tuple[str, ...] = ()
    options: GrantOptions = GrantOptions()


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

    def check_decide(self, actor: Principal, now: datetime, delegations: list[Delegation] = ()):
        """The stage the actor's decision counts for, as whom (self or a delegator); Refusal otherwise."""
        if self.state is not OnboardingState.awaiting_approval or self.approval is None:
            raise Refusal(
                RefusalKind.conflict,
                "wrong_state",
                f"{self.onboarding_id} is {self.state.value}, not awaiting_approval",
            )
        return authorise_vote(
            self.approval, self.requester, self.onboarding_id, actor, now, list(delegations), "decide on"
        )

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
