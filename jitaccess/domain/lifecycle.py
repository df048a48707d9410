"""The grant lifecycle as a pure state machine.

`Lifecycle` wraps the `Grant` aggregate and owns every step of it: the policy's decision, the
approval round, issue and revocation (lifecycle_provider), the decisions people send
(lifecycle_commands), the reminder / escalation / expiry schedule (lifecycle_schedule) and the
extension and review sub-states. `handle(message, now)` applies a command, a timer tick or an
activity outcome and returns the effects to carry out (typed events, notifications, ledger flushes,
provider calls); `next_wake(now)` is the earliest deadline to wait for, `should_wake()` says whether
a command ended the wait early. No clock, no I/O: the workflow (workflows/grant.py) executes the
effects and waits; tests/unit/test_lifecycle.py checks every state x message from one table.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jitaccess.domain import event_types as ev
from jitaccess.domain.catalogue import BreakGlass
from jitaccess.domain.grant import EXECUTOR, Grant, GrantInput, Refusal
from jitaccess.domain.lifecycle_commands import Decisions
from jitaccess.domain.lifecycle_effects import (
    ApplyExtension,
    Approve,
    Claim,
    CleanedUp,
    Command,
    Deny,
    Effect,
    Emit,
    Extend,
    ExtensionApplied,
    ExtensionFailed,
    Flush,
    Issued,
    IssueFailed,
    IssueRefused,
    Message,
    Notify,
    ParentRevoke,
    Phase,
    ReportDrift,
    Revoke,
    RevokeAttempted,
    SubmitReview,
    Tick,
    Timer,
    said,
)
from jitaccess.domain.notification_rules import expiry_warning, notifications_for
from jitaccess.domain.principals import SYSTEM_ACTOR, ActorRole
from jitaccess.domain.states import ExtensionStatus as X
from jitaccess.domain.states import GrantState as S

# what grant.requested copies from the grant as asked for
REQUEST_FIELDS = {"entitlement", "duration_seconds", "reason", "ticket", "request_id", "break_glass", "incident"}


def break_glass(g: Grant) -> BreakGlass:
    bg = g.decision.entitlement.break_glass if g.decision.entitlement else None
    assert bg is not None, "only a break-glass grant is reviewed"
    return bg


class Lifecycle(Decisions):
    """One grant's steps, decisions and schedule."""

    # -- the one entry point ------------------------------------------------------------
    def check(self, cmd: Command, now: datetime) -> None:
        """Raise the Refusal that `handle(cmd, now)` would (update validators call this)."""
        g = self.grant
        match cmd:
            case Approve(a):
                g.check_approve(a.actor, now, a.delegations)
            case Deny(a):
                g.check_deny(a.actor, now, a.delegations)
            case Revoke(a):
                g.check_revoke(a.actor)
            case Extend(inp):
                g.check_extend(inp)
            case SubmitReview(inp):
                g.check_review(inp)
            case Claim(a):
                g.check_claim(a.actor, now)
            case _:  # signals: checked by their senders' signatures, ignored when out of place
                pass

    def handle(self, msg: Message, now: datetime) -> list[Effect]:
        match msg:
            case Approve():
                return self._approve(msg, now)
            case Deny():
                return self._deny(msg, now)
            case Revoke():
                return self._revoke(msg)
            case ParentRevoke():
                return self._parent_revoke(msg)
            case Extend():
                return self._extend(msg, now)
            case SubmitReview():
                return self._review(msg, now)
            case Claim():
                return self._claim(msg, now)
            case ReportDrift():
                return self._drift(msg)
            case Tick():
                return self._tick(now)
            case ExtensionApplied() | ExtensionFailed():
                return self._extension_done(msg, now)
            case Issued():
                return self.issued(msg)
            case IssueRefused():
                return self.issue_refused(msg, now)
            case IssueFailed():
                return self.issue_failed(msg)
            case CleanedUp():
                return self.cleaned_up(msg, now)
            case RevokeAttempted():
                return self.revoke_attempted(msg, now)
        raise TypeError(f"not a lifecycle message: {msg!r}")

    def should_wake(self) -> bool:
        """Did a command end the current wait? (Waiting for approval or review: once the state
        moved on; active: once a revoke was asked for or an extension changed.)"""
        g = self.grant
        if g.state is S.active:
            return self.revoke_request is not None or self.woken
        return g.state not in (S.awaiting_approval, S.pending_review)

    # -- the steps between the waits --------------------------------------------------------------
    def start(self, inp: GrantInput, forged: Refusal | None, now: datetime) -> list[Effect]:
        """Requested and decided by policy: denied, approved at once (break-glass, auto-approval:
        then issued), or waiting for approval. `forged`: the start was not signed by the API."""
        g, d = self.grant, inp.decision
        requested = ev.GrantRequested(
            **g.model_dump(include=REQUEST_FIELDS),
            requester=g.requester.model_dump(mode="json"),
            workload=inp.request.workload,
        )
        out: list[Effect] = [Emit(requested, g.requester.as_actor(ActorRole.requester))]
        g.move(S.policy_evaluated)
        if forged is not None:
            refused = ev.PolicyDecided(
                outcome="deny",
                rule="trust:signed_request",
                reason_codes=[forged.rule],
                messages=[forged.message],
                signer=inp.auth.key_id if inp.auth else None,
            )
            return [*out, Emit(refused, SYSTEM_ACTOR), *self.finish(S.denied, f"refused: {forged.message}", now)]
        out.append(Emit(ev.PolicyDecided(**d.evidence()), SYSTEM_ACTOR))
        if not d.allowed:
            return [*out, *self.finish(S.denied, "policy denied: " + ", ".join(d.reason_codes), now)]
        if not (d.break_glass or d.auto_approved):
            return [*out, *self.open_approval(now)]
        g.move(S.approved)
        if d.break_glass:  # security is alerted (notification_rules)
            approved = ev.GrantApproved(rule=d.rule, break_glass=True, incident=g.incident)
        else:
            approved = ev.GrantApproved(rule=d.rule, auto_approved=True, auto_rule=d.auto_rule)
        return [*out, *said(approved, SYSTEM_ACTOR, g), *self.issue_unless_revoked(now)]

    def issue_unless_revoked(self, now: datetime) -> list[Effect]:
        if self.revoke_request is None:
            return self.begin_issue(now)
        actor, reason = self.revoke_request  # revoked between approval and issuance
        cancelled = Emit(ev.GrantCancelled(reason=reason, before="issuance"), actor)
        return [cancelled, *self.finish(S.cancelled, f"cancelled by {actor.id}", now)]

    def after_wait(self, now: datetime) -> list[Effect]:
        """A wait is over (`settled`): approval decided or expired, active grant ended, review done."""
        g = self.grant
        if g.state is S.active:
            g.end_reason = self.ended
            return self.begin_revocation()
        if g.state is S.reviewed:
            assert g.review is not None
            return self.finish(S.reviewed, f"{g.end_reason}; review: {g.review.outcome}", now)
        out = self.approval_outcome()
        if g.state is S.approved:
            return [*out, *self.issue_unless_revoked(now)]
        if g.state is S.awaiting_approval:
            return [*out, *self.finish(S.approval_expired, "no decision before the approval deadline", now)]
        return [*out, *self.finish(g.state, g.end_reason or g.state.value, now)]

    def after_revocation(self, now: datetime) -> list[Effect]:
        g = self.grant
        if g.break_glass:
            return self.open_review(now)
        return self.finish(S.revoked, g.end_reason or "revoked", now)

    def resume(self, phase: Phase, now: datetime) -> list[Effect]:
        """A run continued as new while revoking or awaiting review picks up where it was."""
        if phase == "revoking":
            return self.begin_revocation(resumed=True)
        self.resume_review(now)
        return []

    # -- entering and leaving the waits --------------------------------------------------------
    def open_approval(self, now: datetime) -> list[Effect]:
        """Policy asks for approval: open the round; its approvers are asked (notification_rules)."""
        g, d = self.grant, self.grant.decision
        g.move(S.awaiting_approval)
        rnd = g.open_approval(now)
        self.reminder = rnd.requested_at + d.reminder_every if d.reminder_every else None
        requested = ev.ApprovalRequested(
            stages=[st.model_dump(mode="json") for st in rnd.stages],
            stage_order=rnd.stage_order,
            approver_groups=list(d.approver_groups),
            min_approvals=d.min_approvals,
            deadline=rnd.deadline.isoformat(),
        )
        return [*said(requested, SYSTEM_ACTOR, g), Flush()]

    def approval_outcome(self) -> list[Effect]:
        """The approval wait is over: the requester hears the decision (expired: also on the chain)."""
        g, rnd = self.grant, self.grant.approval
        assert rnd is not None
        if g.state is S.awaiting_approval:  # the deadline passed undecided
            return said(ev.ApprovalExpired(deadline=rnd.deadline.isoformat(), votes=len(rnd.votes)), SYSTEM_ACTOR, g)
        if self.decided is None:  # cancelled by the requester: nobody to tell
            return []
        return [Notify(n) for n in notifications_for(self.decided, g)]

    def open_review(self, now: datetime) -> list[Effect]:
        """Break-glass, after revocation: a reviewer must record an outcome before the deadline."""
        g, bg = self.grant, break_glass(self.grant)
        g.move(S.pending_review)
        g.review_deadline = now + bg.review_deadline
        self.resume_review(now)
        requested = ev.ReviewRequested(
            deadline=g.review_deadline.isoformat(), reviewer_groups=list(bg.reviewer_groups), incident=g.incident
        )
        return [*said(requested, SYSTEM_ACTOR, g), Flush()]

    def resume_review(self, now: datetime) -> None:
        every = break_glass(self.grant).review_reminder_every
        self.reminder = now + every if every else None

    # -- timers -----------------------------------------------------------------------------
    def _tick(self, now: datetime) -> list[Effect]:
        state = self.grant.state
        if state is S.awaiting_approval:
            return self._tick_approval(now, self.due(now))
        if state is S.active:
            return self._tick_active(now, self.due(now))
        if state is S.pending_review:
            return self._tick_review(now, self.due(now))
        return []  # a command already ended the wait

    def _tick_approval(self, now: datetime, due: set[Timer]) -> list[Effect]:
        g = self.grant
        rnd = g.approval
        assert rnd is not None
        out: list[Effect] = []
        if Timer.approval_escalation in due:
            rnd.escalated = True
            escalated = ev.ApprovalEscalated(escalation_groups=list(rnd.escalation_groups), pending=rnd.pending())
            out += said(escalated, SYSTEM_ACTOR, g)
        if Timer.approval_reminder in due and Timer.approval_deadline not in due:
            out += said(ev.ApprovalReminder(pending=rnd.pending()), SYSTEM_ACTOR, g)
            self.reminded(now)
        return [*out, Flush()]

    def _tick_active(self, now: datetime, due: set[Timer]) -> list[Effect]:
        g = self.grant
        assert g.expires_at is not None
        if self.revoke_request is not None:
            actor, reason = self.revoke_request
            self.ended = f"revoked early by {actor.id}: {reason}"
            return []
        ext = g.extension
        if ext is not None and ext.status is X.approved:
            new_expiry = g.expires_at + timedelta(seconds=ext.extension_seconds)
            return [ApplyExtension(new_expiry, max(int((new_expiry - now).total_seconds()), 1))]
        out: list[Effect] = []
        if ext is not None and ext.round is not None and Timer.extension_deadline in due:
            ext.status = X.expired
            out += [*said(ev.ExtensionExpired(deadline=ext.round.deadline.isoformat()), SYSTEM_ACTOR, g), Flush()]
        if Timer.expiry_warning in due:
            self.warned = True
            out.append(Notify(expiry_warning(g)))
        if Timer.expiry in due:
            out.append(Emit(ev.GrantExpired(expires_at=g.expires_at.isoformat()), SYSTEM_ACTOR))
            self.ended = "expired"
        return out

    def _tick_review(self, now: datetime, due: set[Timer]) -> list[Effect]:
        g = self.grant
        assert g.review_deadline is not None
        deadline = g.review_deadline.isoformat()
        out: list[Effect] = []
        if Timer.review_overdue in due:
            g.review_escalated = True
            groups = list(break_glass(g).escalation_groups)
            out += said(ev.ReviewOverdue(deadline=deadline, escalation_groups=groups), SYSTEM_ACTOR, g)
        if Timer.review_reminder in due:
            out += said(ev.ReviewReminder(deadline=deadline), SYSTEM_ACTOR, g)
            self.reminded(now)
        return [*out, Flush()]

    # -- activity outcomes --------------------------------------------------------------------
    def _extension_done(self, msg: ExtensionApplied | ExtensionFailed, now: datetime) -> list[Effect]:
        """The provider's TTL moved (then the expiry follows) or could not (the expiry stays);
        the requester hears either way (notification_rules)."""
        g, ext = self.grant, self.grant.extension
        assert ext is not None and g.credential is not None and g.expires_at is not None
        event: ev.EventBody
        if isinstance(msg, ExtensionFailed):
            ext.status = X.failed
            event = ev.ExtensionFailed(error=msg.error, expires_at=g.expires_at.isoformat())
        else:
            cred = msg.result
            g.expires_at += timedelta(seconds=ext.extension_seconds)
            g.credential = cred.model_copy(update={"shared_target": g.credential.shared_target})
            g.duration_seconds = ext.new_total_seconds
            g.extensions_applied += 1
            ext.status = X.applied
            event = ev.ExtensionApplied(
                added_seconds=ext.extension_seconds,
                total_seconds=ext.new_total_seconds,
                expires_at=g.expires_at.isoformat(),
                provider_expires_at=cred.expires_at.isoformat() if cred.expires_at else None,
                decided_by=ext.decided_by,
                auto_rule=ext.auto_rule,
            )
        self.rearm_at_next_wait()
        return [*said(event, EXECUTOR, g), Flush()]
