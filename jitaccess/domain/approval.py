"""Approval rounds: the stages to satisfy, the votes cast, delegated authority, and the rule for
whether a decision counts (`authorise_vote`) — shared by grants, extensions, onboardings and the
issuer's last check (jitaccess.domain.issuance).

Pure: no clock, no I/O — callers pass `now`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from jitaccess.domain.catalogue import ApprovalStage
from jitaccess.domain.policy import PolicyDecision
from jitaccess.domain.principals import ActorKind, Principal
from jitaccess.domain.refusals import Refusal, RefusalKind
from jitaccess.domain.stepup import ApproverAuth, require_step_up


class Delegation(BaseModel):
    """`delegator` lends their approval authority to `delegate` for a time window."""

    delegation_id: str
    delegator: Principal
    delegate: str
    starts_at: datetime
    ends_at: datetime
    reason: str = ""

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


class Vote(BaseModel):
    approver: str  # whose authority counted (the delegator, when acting on behalf)
    actor: str  # who acted
    on_behalf_of: str | None = None
    delegation_id: str | None = None
    stage: str = "approvers"
    at: str
    comment: str = ""

    @classmethod
    def cast(
        cls,
        authority: tuple[ApprovalStage, Principal, Delegation | None],
        actor: Principal,
        at: datetime,
        comment: str = "",
    ) -> Vote:
        """The vote `actor` cast with the authority `authorise_vote` found (stage, as whom, via)."""
        stage, who, via = authority
        return cls(
            approver=who.id,
            actor=actor.id,
            on_behalf_of=who.id if via else None,
            delegation_id=via.delegation_id if via else None,
            stage=stage.name,
            at=at.isoformat(),
            comment=comment,
        )


class ApprovalRound(BaseModel):
    """One approval: the stages to satisfy and the votes cast (for the grant or an extension)."""

    purpose: Literal["grant", "extension"] = "grant"
    stages: tuple[ApprovalStage, ...]
    stage_order: str = "sequential"
    votes: list[Vote] = Field(default_factory=list)
    requested_at: datetime
    deadline: datetime
    escalated: bool = False
    escalation_groups: tuple[str, ...] = ()
    # what an approver's sign-in must show (the entitlement's `approver_auth`); absent: any sign-in
    approver_auth: ApproverAuth | None = Field(default=None, exclude_if=lambda v: v is None)

    @classmethod
    def for_grant(cls, d: PolicyDecision, requested_at: datetime) -> ApprovalRound:
        """The round a grant's decision asks for, opened at `requested_at`; its step-up is the
        entitlement's (as decided and signed)."""
        return cls(
            purpose="grant",
            stages=d.stages,
            stage_order=d.stage_order,
            requested_at=requested_at,
            deadline=requested_at + d.approval_timeout,
            escalation_groups=d.escalation_groups,
            approver_auth=d.entitlement.approver_auth if d.entitlement else None,
        )

    def votes_in(self, stage: str) -> list[Vote]:
        return [v for v in self.votes if v.stage == stage]

    def stage_done(self, stage: ApprovalStage) -> bool:
        return len(self.votes_in(stage.name)) >= stage.min_approvals

    def open_stages(self) -> list[ApprovalStage]:
        """Stages that can take a vote now: every incomplete one, or in sequence only the first."""
        incomplete = [s for s in self.stages if not self.stage_done(s)]
        return incomplete[:1] if self.stage_order == "sequential" else incomplete

    @property
    def complete(self) -> bool:
        return all(self.stage_done(s) for s in self.stages)

    def groups_for(self, stage: ApprovalStage) -> tuple[str, ...]:
        return stage.approver_groups + (self.escalation_groups if self.escalated else ())

    def pending(self) -> list[dict[str, object]]:
        return [
            {
                "stage": s.name,
                "groups": list(self.groups_for(s)),
                "have": len(self.votes_in(s.name)),
                "need": s.min_approvals,
            }
            for s in self.open_stages()
        ]


def authorise_vote(
    rnd: ApprovalRound,
    requester: Principal,
    subject: str,
    actor: Principal,
    now: datetime,
    delegations: list[Delegation],
    action: str,
) -> tuple[ApprovalStage, Principal, Delegation | None]:
    """Which open stage of `rnd` this actor's decision counts for, and as whom (self or a delegator).
    Separation of duties: never the requester; an approver counts once across stages; a non-human
    requester's owner counts only in stages that allow it; an approval on a round that requires
    step-up needs the actor's sign-in to show it (a deny never does). Raises Refusal naming the rule."""
    if actor.id == requester.id:
        raise Refusal(
            RefusalKind.forbidden,
            "self_approval",
            f"{actor.id} requested {subject} and cannot {action} it (separation of duties)",
        )
    if any(v.actor == actor.id for v in rnd.votes):
        raise Refusal(RefusalKind.conflict, "duplicate_vote", f"{actor.id} has already approved {subject}")
    mine = [d for d in delegations if d.delegate == actor.id]
    candidates: list[tuple[Principal, Delegation | None]] = [(actor, None)]
    candidates += [(d.delegator, d) for d in mine if d.active_at(now)]
    problems: list[tuple[str, str]] = []
    open_stages = rnd.open_stages()
    for who, via in candidates:
        stage = _stage_for(rnd, requester, who, open_stages, problems)
        if stage is not None:
            if rnd.approver_auth is not None and action == "approve":
                require_step_up(rnd.approver_auth, actor, now, subject)
            return stage, who, via
    if problems:
        rule, msg = problems[0]
        raise Refusal(RefusalKind.conflict if rule == "duplicate_vote" else RefusalKind.forbidden, rule, msg)
    lapsed = [d for d in mine if not d.active_at(now)]
    raise _not_an_approver(rnd, actor, subject, open_stages, lapsed)


def _stage_for(
    rnd: ApprovalRound,
    requester: Principal,
    who: Principal,
    open_stages: list[ApprovalStage],
    problems: list[tuple[str, str]],
) -> ApprovalStage | None:
    """The first open stage `who`'s authority counts for; what stood in the way goes to `problems`
    as (rule, message)."""
    if who.id == requester.id:
        return None
    if any(v.approver == who.id for v in rnd.votes):
        problems.append(("duplicate_vote", f"{who.id} has already approved (an approver counts once across stages)"))
        return None
    for st in open_stages:
        if not who.in_any(rnd.groups_for(st)):
            continue
        if requester.kind is not ActorKind.human and requester.owner == who.id and not st.owner_may_approve:
            problems.append(
                (
                    "owner_not_independent",
                    f"{who.id} owns {requester.id} and cannot satisfy the {st.name} stage, which needs an independent approver",
                )
            )
            continue
        return st
    return None


def _not_an_approver(
    rnd: ApprovalRound, actor: Principal, subject: str, open_stages: list[ApprovalStage], lapsed: list[Delegation]
) -> Refusal:
    """The refusal for an actor in none of the open stages' groups, naming any delegation to them
    that is not valid now."""
    stages = "; ".join(f"{s.name}: {', '.join(rnd.groups_for(s))}" for s in open_stages)
    note = "".join(
        f"; the delegation from {d.delegator.id} is valid only {d.starts_at.isoformat()} to {d.ends_at.isoformat()}"
        for d in lapsed
    )
    return Refusal(
        RefusalKind.forbidden,
        "not_an_approver",
        f"{actor.id} is in none of the approver groups for {subject} now open ({stages}){note}",
    )
