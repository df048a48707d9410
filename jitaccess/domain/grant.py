"""The grant aggregate: its state plus the rules for every decision on it.

The workflow holds one `Grant` and asks it whether an action is allowed
(`check_*`, used by the update validators so a refused action never enters
history) before applying it. Pure: no clock, no I/O — callers pass `now`.

The approval round (ApprovalRound, Vote, Delegation, authorise_vote) is jitaccess.domain.approval.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from jitaccess.domain.access import grant_facts
from jitaccess.domain.approval import ApprovalRound, Delegation, Vote, authorise_vote
from jitaccess.domain.catalogue import ApprovalStage
from jitaccess.domain.commands import CommandAuth
from jitaccess.domain.contracts import WorkflowStart
from jitaccess.domain.credentials import IssuedCredential, ProviderGrant, WrappedHandover
from jitaccess.domain.events import IdentityEvent
from jitaccess.domain.policy import AccessRequest, ExtensionDecision, PolicyDecision
from jitaccess.domain.principals import Actor, ActorKind, ActorRole, Principal
from jitaccess.domain.reconciliation import Finding
from jitaccess.domain.refusals import Refusal as Refusal
from jitaccess.domain.refusals import RefusalKind as RefusalKind
from jitaccess.domain.states import OPEN_EXTENSION, ExtensionStatus, GrantState, ReviewStatus, check_transition
from jitaccess.domain.stepup import ApproverAuth

EXECUTOR = Actor(id="jitaccess-worker", kind=ActorKind.service, role=ActorRole.executor)


class GrantInput(WorkflowStart):
    """The workflow's input: everything decided before the grant existed."""

    grant_id: str
    request: AccessRequest
    decision: PolicyDecision
    resume: GrantResume | None = None  # set when the workflow continues as new


class ActionInput(BaseModel):
    """An update from a person or service: approve / deny / revoke / claim."""

    actor: Principal
    comment: str = ""
    delegations: list[Delegation] = Field(default_factory=list)  # delegations *to* the actor (from the API)
    auth: CommandAuth | None = None  # signed by the API that authenticated `actor`


class ExtendInput(BaseModel):
    actor: Principal
    reason: str
    decision: ExtensionDecision
    auth: CommandAuth | None = None


class ReviewInput(BaseModel):
    actor: Principal
    outcome: Literal["justified", "not_justified"]
    notes: str = ""
    auth: CommandAuth | None = None


class IssueRequest(BaseModel):
    """What the issue activity gets: the workflow's view of the issue plus the signed evidence it
    rests on. The activity re-checks all of it and takes the provider and its params from the
    worker's own catalogue, never from here (a forged workflow task cannot issue anything)."""

    grant: ProviderGrant
    request: GrantInput  # as the API (or, for an onboarding's child, a worker) signed it
    approvals: list[ActionInput] = Field(default_factory=list)  # the signed votes the rule needs


class Extension(BaseModel):
    extension_seconds: int
    new_total_seconds: int
    reason: str
    requested_at: datetime
    status: ExtensionStatus = ExtensionStatus.pending
    auto_rule: str | None = None
    round: ApprovalRound | None = None
    decided_by: str | None = None


class Review(BaseModel):
    reviewer: str
    outcome: Literal["justified", "not_justified"]
    notes: str = ""
    at: datetime


class Grant(BaseModel):
    """The aggregate state, also the status the API shows (`status` query)."""

    grant_id: str
    state: GrantState = GrantState.requested
    entitlement: str
    provider: str | None = None
    requester: Principal
    reason: str = ""
    ticket: str | None = None
    request_id: str | None = None
    break_glass: bool = False
    incident: str | None = None
    duration_seconds: int
    decision: PolicyDecision
    admin_groups: tuple[str, ...] = ()
    approval: ApprovalRound | None = None
    decided_by: str | None = None
    decision_comment: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    extension: Extension | None = None
    extensions_applied: int = 0
    ended_at: datetime | None = None
    end_reason: str | None = None
    credential: IssuedCredential | None = None
    handover: WrappedHandover | None = Field(default=None, exclude=True)  # never shown, never in status
    credential_delivered: bool = False
    revocation_attempts: int = 0
    review_deadline: datetime | None = None
    review_escalated: bool = False
    review: Review | None = None
    # set by reconciliation (report_drift signal): the grant is active but its access was found gone
    drift: Finding | None = None
    events: int = 0
    last_hash: str | None = None

    @classmethod
    def from_input(cls, inp: GrantInput) -> Grant:
        d = inp.decision
        return cls(
            grant_id=inp.grant_id,
            entitlement=inp.request.entitlement,
            provider=d.entitlement.provider.type if d.entitlement else None,
            requester=inp.requester,
            reason=inp.request.reason,
            ticket=inp.request.ticket,
            request_id=inp.request.request_id,
            break_glass=inp.request.break_glass,
            incident=inp.request.incident,
            duration_seconds=int(d.duration.total_seconds()),
            decision=d,
            admin_groups=inp.admin_groups,
        )

    # -- state ---------------------------------------------------------------
    def move(self, target: GrantState) -> None:
        self.state = check_transition(self.state, target)

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.duration_seconds)

    @property
    def approvals(self) -> list[Vote]:
        return self.approval.votes if self.approval else []

    @property
    def approvals_required(self) -> int:
        return self.decision.min_approvals

    def open_approval(self, now: datetime) -> ApprovalRound:
        self.approval = ApprovalRound.for_grant(self.decision, now)
        return self.approval

    @property
    def approver_auth(self) -> ApproverAuth | None:
        """The step-up the entitlement (as decided and signed) asks of approvers."""
        return self.decision.entitlement.approver_auth if self.decision.entitlement else None

    def pending_round(self) -> ApprovalRound | None:
        if self.state is GrantState.awaiting_approval:
            return self.approval
        if self.state is GrantState.active and self.extension and self.extension.status is ExtensionStatus.pending:
            return self.extension.round
        return None

    def _require_state(self, action: str, *allowed: GrantState) -> None:
        if self.state not in allowed:
            raise Refusal(
                RefusalKind.conflict,
                "wrong_state",
                f"cannot {action} grant {self.grant_id}: it is {self.state.value}; "
                f"{action} is allowed only when {' or '.join(s.value for s in allowed)}",
            )

    def _round_for(self, action: str) -> ApprovalRound:
        rnd = self.pending_round()
        if rnd is None:
            raise Refusal(
                RefusalKind.conflict,
                "wrong_state",
                f"cannot {action} grant {self.grant_id}: it is {self.state.value} with no pending approval; "
                f"{action} is allowed only while it is awaiting_approval or an extension is pending",
            )
        return rnd

    def _authority(
        self, rnd: ApprovalRound, actor: Principal, now: datetime, delegations: list[Delegation], action: str
    ) -> tuple[ApprovalStage, Principal, Delegation | None]:
        return authorise_vote(
            rnd, self.requester, f"grant {self.grant_id} ({self.entitlement})", actor, now, delegations, action
        )

    # -- approval --------------------------------------------------------------
    def check_approve(self, actor: Principal, now: datetime, delegations: Sequence[Delegation] = ()) -> None:
        self._authority(self._round_for("approve"), actor, now, list(delegations), "approve")

    def approve(self, actor: Principal, now: datetime, comment: str, delegations: Sequence[Delegation] = ()) -> Vote:
        """Record one vote in the pending round; the caller checks `round.complete`."""
        rnd = self._round_for("approve")
        vote = Vote.cast(self._authority(rnd, actor, now, list(delegations), "approve"), actor, now, comment)
        rnd.votes.append(vote)
        if rnd.complete:
            if rnd.purpose == "grant":
                self.move(GrantState.approved)
                self.decided_by = ",".join(v.approver for v in rnd.votes)
            else:
                assert self.extension is not None
                self.extension.status = ExtensionStatus.approved
                self.extension.decided_by = ",".join(v.approver for v in rnd.votes)
        return vote

    def check_deny(self, actor: Principal, now: datetime, delegations: Sequence[Delegation] = ()) -> None:
        self._authority(self._round_for("deny"), actor, now, list(delegations), "deny")

    def deny(self, actor: Principal, reason: str, now: datetime, delegations: Sequence[Delegation] = ()) -> str:
        """A deny ends the round: the grant is denied, or the extension refused. Returns the round's purpose."""
        rnd = self._round_for("deny")
        self._authority(rnd, actor, now, list(delegations), "deny")
        if rnd.purpose == "grant":
            self.move(GrantState.denied)
            self.decided_by = actor.id
            self.decision_comment = reason
            self.end_reason = f"denied by {actor.id}: {reason}"
        else:
            assert self.extension is not None
            self.extension.status = ExtensionStatus.refused
            self.extension.decided_by = actor.id
        return rnd.purpose

    # -- extension ---------------------------------------------------------------
    def check_extend(self, inp: ExtendInput) -> None:
        if inp.actor.id != self.requester.id:
            raise Refusal(
                RefusalKind.forbidden,
                "not_requester",
                f"only the requester ({self.requester.id}) can extend this grant",
            )
        self._require_state("extend", GrantState.active)
        if self.extension and self.extension.status in OPEN_EXTENSION:
            raise Refusal(
                RefusalKind.conflict,
                "extension_pending",
                f"grant {self.grant_id} already has an extension {self.extension.status}",
            )
        d = inp.decision
        if not d.allowed:
            raise Refusal(
                RefusalKind.invalid, d.reason_codes[0].value if d.reason_codes else "policy", "; ".join(d.messages)
            )
        if int((d.new_total - d.extension).total_seconds()) != self.duration_seconds:
            raise Refusal(
                RefusalKind.conflict, "stale_decision", "the grant changed while the extension was evaluated; try again"
            )

    def request_extension(self, inp: ExtendInput, now: datetime) -> Extension:
        self.check_extend(inp)
        d = inp.decision
        rnd = None
        if d.auto_rule is None:
            rnd = ApprovalRound(
                purpose="extension",
                stages=d.stages,
                stage_order=d.stage_order,
                requested_at=now,
                deadline=now + d.approval_timeout,
                escalation_groups=self.decision.escalation_groups,
                approver_auth=self.approver_auth,
            )
        self.extension = Extension(
            extension_seconds=int(d.extension.total_seconds()),
            new_total_seconds=int(d.new_total.total_seconds()),
            reason=inp.reason,
            requested_at=now,
            auto_rule=d.auto_rule,
            round=rnd,
            status=ExtensionStatus.approved if d.auto_rule else ExtensionStatus.pending,
        )
        return self.extension

    # -- revocation -------------------------------------------------------------
    def check_revoke(self, actor: Principal) -> None:
        self._require_state(
            "revoke", GrantState.awaiting_approval, GrantState.approved, GrantState.issuing, GrantState.active
        )
        if (
            actor.id == self.requester.id
            or actor.in_any(self.decision.approver_groups)
            or actor.in_any(self.admin_groups)
        ):
            return
        raise Refusal(
            RefusalKind.forbidden,
            "not_allowed_to_revoke",
            f"{actor.id} may not revoke grant {self.grant_id}: only the requester, its approvers "
            f"({', '.join(self.decision.approver_groups) or 'none'}) or admins "
            f"({', '.join(self.admin_groups) or 'none'}) may",
        )

    # -- post-hoc review (break-glass) ---------------------------------------------
    def reviewer_groups(self) -> tuple[str, ...]:
        bg = self.decision.entitlement.break_glass if self.decision.entitlement else None
        if bg is None:
            return ()
        return bg.reviewer_groups + (bg.escalation_groups if self.review_escalated else ())

    def check_review(self, inp: ReviewInput) -> None:
        self._require_state("review", GrantState.pending_review)
        if inp.actor.id == self.requester.id:
            raise Refusal(
                RefusalKind.forbidden, "self_review", f"{inp.actor.id} used this break-glass grant and cannot review it"
            )
        if not inp.actor.in_any(self.reviewer_groups()):
            raise Refusal(
                RefusalKind.forbidden,
                "not_a_reviewer",
                f"{inp.actor.id} is in none of the reviewer groups for {self.entitlement}: {', '.join(self.reviewer_groups())}",
            )
        if inp.outcome == "not_justified" and not inp.notes.strip():
            raise Refusal(RefusalKind.invalid, "notes_required", "a not_justified outcome needs notes saying why")

    @property
    def review_status(self) -> ReviewStatus:
        if self.review is not None:
            return ReviewStatus.done
        if self.state is not GrantState.pending_review:
            return ReviewStatus.none
        return ReviewStatus.overdue if self.review_escalated else ReviewStatus.pending

    # -- credential hand-over ------------------------------------------------------
    def check_claim(self, actor: Principal, now: datetime) -> None:
        if actor.id != self.requester.id:
            raise Refusal(
                RefusalKind.forbidden,
                "not_requester",
                f"only the requester ({self.requester.id}) can fetch the credential",
            )
        self._require_state("fetch the credential of", GrantState.active)
        if self.credential_delivered:
            raise Refusal(
                RefusalKind.conflict,
                "already_delivered",
                f"the credential of grant {self.grant_id} was already delivered once; revoke and request again if it was lost",
            )
        if self.handover is None:
            raise Refusal(RefusalKind.conflict, "no_handover", f"grant {self.grant_id} has no credential to hand over")
        if self.handover.expires_at <= now:
            raise Refusal(
                RefusalKind.gone,
                "handover_expired",
                f"the single-use wrapping token of grant {self.grant_id} expired at {self.handover.expires_at.isoformat()}",
            )

    def summary(self) -> dict[str, object]:
        """The row the ledger keeps per grant (a projection for listing, with its read facts)."""
        return {
            "grant_id": self.grant_id,
            "state": self.state.value,
            "entitlement": self.entitlement,
            "requester": self.requester.id,
            "provider": self.provider,
            "break_glass": self.break_glass,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "scope": grant_facts(self).model_dump(mode="json"),
            "seq": self.events,
        }


class GrantResume(BaseModel):
    """What a grant carries across continue-as-new: its state and the end of its chain."""

    grant: Grant
    last_event: IdentityEvent
    phase: Literal["revoking", "review"]


GrantInput.model_rebuild()
