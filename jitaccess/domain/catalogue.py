"""The bounded catalogue of entitlements a requester may ask for.

Self-service is bounded by this catalogue: anything not in it is refused with
`not_in_catalogue`. The catalogue's content hash is the policy version every
decision records.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jitaccess.domain.stepup import ApproverAuth


class ApprovalStage(BaseModel):
    """One stage of an approval rule: `min_approvals` distinct approvers from `approver_groups`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    approver_groups: tuple[str, ...] = Field(min_length=1)
    min_approvals: int = Field(default=1, ge=1, le=10)
    # For a non-human requester, its owner counts only in stages that allow it (the owning-team
    # stage); a stage that requires independence (security) cannot be satisfied by the owner.
    owner_may_approve: bool = False


class BusinessHours(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "UTC"
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = ("mon", "tue", "wed", "thu", "fri")
    start: time = time(9, 0)
    end: time = time(18, 0)

    @model_validator(mode="after")
    def _valid(self) -> BusinessHours:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {self.timezone!r}") from e
        if self.start >= self.end:
            raise ValueError("business hours start must be before end")
        return self

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
        return day in self.days and self.start <= local.time() < self.end


class AutoApprovalRule(BaseModel):
    """Auto-approve when every given condition holds; the matching rule's name is recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    requester_groups: tuple[str, ...] = ()
    max_duration: timedelta | None = None
    business_hours: BusinessHours | None = None


class ApprovalRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    auto_approve: bool = False  # unconditional auto-approval
    auto_rules: tuple[AutoApprovalRule, ...] = ()
    # single-stage shorthand: approver_groups + min_approvals == one stage named "approvers"
    approver_groups: tuple[str, ...] = ()
    min_approvals: int = Field(default=1, ge=1, le=10)
    stages: tuple[ApprovalStage, ...] = ()
    stage_order: Literal["sequential", "parallel"] = "sequential"
    timeout: timedelta = timedelta(hours=24)
    reminder_every: timedelta | None = None
    escalate_after: timedelta | None = None
    escalation_groups: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _approvers_when_manual(self) -> ApprovalRule:
        if self.approver_groups and self.stages:
            raise ValueError("give either approver_groups (one stage) or stages, not both")
        if not self.auto_approve and not self.effective_stages:
            raise ValueError("an approval rule without auto_approve needs approver_groups or stages")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError("approval stage names must be unique")
        if self.timeout <= timedelta(0):
            raise ValueError("approval timeout must be positive")
        for what in ("reminder_every", "escalate_after"):
            v = getattr(self, what)
            if v is not None and v <= timedelta(0):
                raise ValueError(f"{what} must be positive")
        if self.escalate_after is not None and not self.escalation_groups:
            raise ValueError("escalate_after needs escalation_groups")
        return self

    @property
    def effective_stages(self) -> tuple[ApprovalStage, ...]:
        if self.stages:
            return self.stages
        if self.approver_groups:
            return (
                ApprovalStage(name="approvers", approver_groups=self.approver_groups, min_approvals=self.min_approvals),
            )
        return ()


class BreakGlass(BaseModel):
    """Emergency access: issued at once, alerted, and reviewed after the fact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    groups: tuple[str, ...] = Field(min_length=1)
    max_duration: timedelta
    reviewer_groups: tuple[str, ...] = Field(min_length=1)
    review_deadline: timedelta = timedelta(days=1)
    review_reminder_every: timedelta | None = None
    escalation_groups: tuple[str, ...] = ()


class ProviderSpec(BaseModel):
    """Which provider fulfils the entitlement and its non-secret parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(min_length=1, description="provider id, e.g. vault_token")
    params: dict[str, Any] = Field(default_factory=dict)


# The shortest grant an entitlement allows unless it says otherwise (`min_duration`): shorter
# grants cannot be issued, verified and handed over before they expire.
DEFAULT_MIN_DURATION = timedelta(seconds=60)


class Entitlement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,62}$")
    description: str
    provider: ProviderSpec
    default_duration: timedelta
    max_duration: timedelta
    min_duration: timedelta = DEFAULT_MIN_DURATION
    requester_groups: tuple[str, ...] = Field(min_length=1)
    approval: ApprovalRule
    reason_required: bool = True
    break_glass: BreakGlass | None = None
    extendable: bool = True
    # Step-up for approvers (jitaccess.domain.stepup): e.g. {max_age: PT15M, amr: [mfa]}. Left out of
    # the serialised form when absent, so the policy version of a catalogue without it is unchanged.
    approver_auth: ApproverAuth | None = Field(default=None, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _durations(self) -> Entitlement:
        if self.default_duration <= timedelta(0) or self.max_duration <= timedelta(0):
            raise ValueError(f"{self.id}: durations must be positive")
        if self.default_duration > self.max_duration:
            raise ValueError(f"{self.id}: default_duration exceeds max_duration")
        if self.min_duration < timedelta(seconds=1) or self.min_duration % timedelta(seconds=1):
            raise ValueError(f"{self.id}: min_duration must be a whole number of seconds, at least 1")
        if self.min_duration > self.default_duration:
            raise ValueError(f"{self.id}: min_duration exceeds default_duration")
        if self.break_glass and self.break_glass.max_duration < self.min_duration:
            raise ValueError(f"{self.id}: break_glass.max_duration is below min_duration")
        if self.break_glass and self.break_glass.max_duration <= timedelta(0):
            raise ValueError(f"{self.id}: break_glass.max_duration must be positive")
        return self


class OnboardingTemplate(BaseModel):
    """A bounded bundle of entitlements for a kind of service (a non-human identity)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,62}$")
    description: str
    entitlements: tuple[str, ...] = Field(min_length=1)
    environments: tuple[str, ...] = Field(min_length=1)
    # Who may request it: its automation principals (by id) and members of `requester_groups`;
    # anyone else is refused (`template_requester_not_eligible`). Neither listed: nobody.
    # Pre-approved environments apply to the automation principals only; anything else needs the
    # owning team (and security for production) — and always every stage a child entitlement's
    # own approval rule requires of this requester (see domain.onboarding.evaluate_onboarding).
    automation_principals: tuple[str, ...] = ()
    requester_groups: tuple[str, ...] = ()
    pre_approved_environments: tuple[str, ...] = ()
    production_environments: tuple[str, ...] = ("production",)
    security_groups: tuple[str, ...] = ("security",)
    max_lifetime: timedelta
    rotation_interval: timedelta | None = None
    rotation_overlap: timedelta = timedelta(minutes=5)
    approval_timeout: timedelta = timedelta(days=1)

    @model_validator(mode="after")
    def _valid(self) -> OnboardingTemplate:
        if self.max_lifetime <= timedelta(0):
            raise ValueError(f"{self.id}: max_lifetime must be positive")
        if self.rotation_interval is not None and self.rotation_interval <= self.rotation_overlap:
            raise ValueError(f"{self.id}: rotation_interval must be longer than rotation_overlap")
        unknown = set(self.pre_approved_environments) - set(self.environments)
        if unknown:
            raise ValueError(f"{self.id}: pre-approved environments not in environments: {sorted(unknown)}")
        return self


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    entitlements: tuple[Entitlement, ...] = Field(min_length=1)
    onboarding_templates: tuple[OnboardingTemplate, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        ids = [e.id for e in self.entitlements]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate entitlement ids: {', '.join(dupes)}")
        for t in self.onboarding_templates:
            missing = [e for e in t.entitlements if e not in ids]
            if missing:
                raise ValueError(f"onboarding template {t.id} names unknown entitlements: {', '.join(missing)}")
        return self

    def template(self, template_id: str) -> OnboardingTemplate | None:
        return next((t for t in self.onboarding_templates if t.id == template_id), None)

    @property
    def version(self) -> str:
        """Content hash of the catalogue: the policy version recorded with every decision."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def get(self, entitlement_id: str) -> Entitlement | None:
        return next((e for e in self.entitlements if e.id == entitlement_id), None)

    @property
    def approving_groups(self) -> tuple[str, ...]:
        """Every group that can decide on something: approval stages' approver groups, approval
        escalation groups, and onboarding templates' security groups (a template's owning-team
        stage is the workload's team, named per request, so it is not listed here)."""
        groups: list[str] = []
        for e in self.entitlements:
            for st in e.approval.effective_stages:
                groups += st.approver_groups
            groups += e.approval.escalation_groups
        for t in self.onboarding_templates:
            groups += t.security_groups
        return tuple(dict.fromkeys(groups))

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.entitlements]
