"""The lifecycle's commands: what people (and the grant's parent, and reconciliation) send while a
grant lives. Each applies the aggregate's rule (a Refusal names the broken one) and says what
happened as typed events; `woken` tells the active wait that what it waits for changed."""

from __future__ import annotations

from datetime import datetime

from jitaccess.domain import event_types as ev
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import ActionInput, Grant
from jitaccess.domain.grant import Review as ReviewRecord
from jitaccess.domain.lifecycle_effects import (
    Approve,
    Claim,
    Deny,
    Effect,
    Emit,
    Extend,
    Flush,
    ParentRevoke,
    ReportDrift,
    Revoke,
    SubmitReview,
    said,
)
from jitaccess.domain.lifecycle_provider import ProviderSteps
from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorRole, Principal
from jitaccess.domain.states import ExtensionStatus as X
from jitaccess.domain.states import GrantState as S

VOTE_FIELDS = {"stage", "on_behalf_of", "delegation_id"}  # what an approval.granted event says of the vote


def revoke_authority(g: Grant, who: Principal) -> tuple[Actor, str]:
    """As whom a revoke is recorded and on which grounds. The role set is fixed (requester /
    approver / ...): an admin acts in the approver role and `authority` tells the two apart."""
    if who.id == g.requester.id:
        return who.as_actor(ActorRole.requester), "requester"
    return who.as_actor(ActorRole.approver), "approver" if who.in_any(g.decision.approver_groups) else "admin"


class Decisions(ProviderSteps):
    """`revoke_request`: someone asked to end the issued (or about to be issued) grant;
    `approvals`: the signed votes that approved it (the issuer re-checks them); `decided`: the
    event that ended the approval round, whose notification goes out once the wait is over."""

    def __init__(self, grant: Grant, options: GrantOptions) -> None:
        super().__init__(grant, options)
        self.revoke_request: tuple[Actor, str] | None = None
        self.approvals: list[ActionInput] = []
        self.decided: ev.EventBody | None = None

    def _approve(self, cmd: Approve, now: datetime) -> list[Effect]:
        g, a = self.grant, cmd.action
        g.check_approve(a.actor, now, a.delegations)
        rnd = g.pending_round()
        assert rnd is not None
        vote = g.approve(a.actor, now, a.comment, a.delegations)
        granted = ev.ApprovalGranted(
            purpose=rnd.purpose,
            comment=a.comment,
            **vote.model_dump(include=VOTE_FIELDS),
            votes=len(rnd.votes),
            pending=rnd.pending(),
            **cmd.admission,
        )
        # a stage done and the round not: the next stage's approvers are asked (notification_rules)
        out = said(granted, a.actor.as_actor(ActorRole.approver), g)
        if rnd.purpose == "grant":
            self.approvals.append(a)
        approvers = [v.approver for v in rnd.votes]
        if rnd.complete and rnd.purpose == "grant":
            self.decided = ev.GrantApproved(rule=g.decision.rule, approvers=approvers, auto_approved=False)
            out.append(Emit(self.decided, SYSTEM_ACTOR))
        elif rnd.complete:
            out.append(Emit(ev.ExtensionApproved(approvers=approvers), SYSTEM_ACTOR))
            self.woken = True
        return out

    def _deny(self, cmd: Deny, now: datetime) -> list[Effect]:
        g, a = self.grant, cmd.action
        actor = a.actor.as_actor(ActorRole.approver)
        if g.deny(a.actor, a.comment, now, a.delegations) == "grant":
            self.decided = ev.ApprovalDenied(reason=a.comment, **cmd.admission)
            return [Emit(self.decided, actor)]
        self.woken = True
        return said(ev.ExtensionRefused(reason=a.comment, **cmd.admission), actor, g)

    def _revoke(self, cmd: Revoke) -> list[Effect]:
        g, a = self.grant, cmd.action
        g.check_revoke(a.actor)
        actor, authority = revoke_authority(g, a.actor)
        if g.state is S.awaiting_approval:
            g.move(S.cancelled)
            g.end_reason = f"cancelled by {a.actor.id}: {a.comment}"
            cancelled = ev.GrantCancelled(reason=a.comment, before="approval", authority=authority, **cmd.admission)
            return [Emit(cancelled, actor)]
        if self.revoke_request is not None:  # asked already: the revocation is under way
            return []
        self.revoke_request = (actor, a.comment)
        return [Emit(ev.GrantRevokeRequested(reason=a.comment, authority=authority, **cmd.admission), actor)]

    def _parent_revoke(self, cmd: ParentRevoke) -> list[Effect]:
        if self.revoke_request is not None or self.grant.state not in (S.approved, S.issuing, S.active):
            return []
        self.revoke_request = (cmd.actor, cmd.reason)
        requested = ev.GrantRevokeRequested(reason=cmd.reason, authority="onboarding", **cmd.admission)
        return [Emit(requested, cmd.actor)]

    def _extend(self, cmd: Extend, now: datetime) -> list[Effect]:
        g, inp = self.grant, cmd.request
        ext = g.request_extension(inp, now)
        d = inp.decision
        requested = ev.ExtensionRequested(
            extension_seconds=ext.extension_seconds,
            total_seconds=ext.new_total_seconds,
            reason=inp.reason,
            policy_version=d.policy_version,
            auto_rule=d.auto_rule,
            stages=[st.name for st in d.stages],
            **cmd.admission,
        )
        # pending: its approvers are asked (notification_rules); auto-approved: nobody is
        out = said(requested, inp.actor.as_actor(ActorRole.requester), g)
        if ext.status is X.approved:
            out.append(Emit(ev.ExtensionApproved(auto_rule=d.auto_rule, auto_approved=True), SYSTEM_ACTOR))
        self.woken = True
        return out

    def _review(self, cmd: SubmitReview, now: datetime) -> list[Effect]:
        g, inp = self.grant, cmd.review
        g.check_review(inp)
        g.review = ReviewRecord(reviewer=inp.actor.id, outcome=inp.outcome, notes=inp.notes, at=now)
        g.move(S.reviewed)
        completed = ev.ReviewCompleted(
            outcome=inp.outcome, notes=inp.notes, overdue=g.review_escalated, incident=g.incident, **cmd.admission
        )
        out: list[Effect] = [Emit(completed, inp.actor.as_actor(ActorRole.reviewer))]
        if inp.outcome == "not_justified":
            finding = ev.ReviewFinding(
                finding="break-glass use not justified",
                requester=g.requester.id,
                incident=g.incident,
                reviewer=inp.actor.id,
                notes=inp.notes,
            )
            out.append(Emit(finding, SYSTEM_ACTOR))
        return out

    def _claim(self, cmd: Claim, now: datetime) -> list[Effect]:
        """The single-use wrapped credential goes to the requester once (the caller took it first)."""
        g, a = self.grant, cmd.action
        g.check_claim(a.actor, now)
        assert g.handover is not None
        delivered = ev.CredentialDelivered(
            kind="response-wrapped",
            single_use=True,
            wrap_expires_at=g.handover.expires_at.isoformat(),
            **cmd.admission,
        )
        g.handover, g.credential_delivered = None, True
        return [Emit(delivered, a.actor.as_actor(ActorRole.requester)), Flush()]

    def _drift(self, cmd: ReportDrift) -> list[Effect]:
        """Reconciliation found an active grant's access gone: recorded once; ignored unless active."""
        g, finding = self.grant, cmd.finding
        if g.state is not S.active or g.drift is not None or finding.grant_id != g.grant_id:
            return []
        g.drift = finding
        detected = ev.ReconciliationDriftDetected(**finding.evidence(), **cmd.admission)
        return [Emit(detected, SYSTEM_ACTOR), Flush()]
