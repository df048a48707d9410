"""The grant lifecycle as a pure state machine.

`Lifecycle` wraps the `Grant` aggregate and owns what happens while a grant waits: the decisions
people send (approve, deny, extend, review, revoke), the reminder / escalation / expiry schedule,
and the extension and review sub-states. `handle(message, now)` applies a command, a timer tick or
an activity outcome and returns the effects to carry out (events, notifications, ledger flushes,
the provider call that moves an extension); `next_wake(now)` is the earliest deadline to wait for
and `should_wake()` says whether a command ended the wait early. No clock, no I/O: the workflow
(workflows/grant.py) executes the effects and waits, and tests/unit/test_lifecycle.py checks every
state x message from one table.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jitaccess.domain import lifecycle_notices as notices
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import EXECUTOR, ActionInput, Grant, GrantInput, Refusal
from jitaccess.domain.grant import Review as ReviewRecord
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
    ParentRevoke,
    ReportDrift,
    Revoke,
    RevokeAttempted,
    SubmitReview,
    Tick,
    Timer,
)
from jitaccess.domain.lifecycle_provider import ProviderSteps
from jitaccess.domain.notifications import NotificationKind as K
from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorRole, Principal
from jitaccess.domain.states import ExtensionStatus as X
from jitaccess.domain.states import GrantState as S


def revoke_authority(g: Grant, who: Principal) -> tuple[Actor, str]:
    """As whom a revoke is recorded and on which grounds. The role set is fixed (requester /
    approver / ...): an admin acts in the approver role and `authority` tells the two apart."""
    if who.id == g.requester.id:
        return who.as_actor(ActorRole.requester), "requester"
    return who.as_actor(ActorRole.approver), "approver" if who.in_any(g.decision.approver_groups) else "admin"


class Lifecycle(ProviderSteps):
    """One grant's decisions and schedule. `revoke_request` is set once someone asked to end an
    issued (or about to be issued) grant; `approvals` are the signed votes that approved it."""

    def __init__(self, grant: Grant, options: GrantOptions) -> None:
        super().__init__(grant, options)
        self.revoke_request: tuple[Actor, str] | None = None
        self.approvals: list[ActionInput] = []

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
        requested = {
            "entitlement": g.entitlement,
            "duration_seconds": g.duration_seconds,
            "reason": g.reason,
            "ticket": g.ticket,
            "request_id": g.request_id,
            "break_glass": g.break_glass,
            "incident": g.incident,
            "requester": g.requester.model_dump(mode="json"),
            "workload": inp.request.workload,
        }
        out: list[Effect] = [Emit("grant.requested", g.requester.as_actor(ActorRole.requester), requested)]
        g.move(S.policy_evaluated)
        if forged is not None:
            refused = {
                "outcome": "deny",
                "rule": "trust:signed_request",
                "reason_codes": [forged.rule],
                "messages": [forged.message],
                "signer": inp.auth.key_id if inp.auth else None,
            }
            out.append(Emit("policy.decided", SYSTEM_ACTOR, refused))
            return [*out, *self.finish(S.denied, f"refused: {forged.message}", now)]
        out.append(Emit("policy.decided", SYSTEM_ACTOR, d.evidence()))
        if not d.allowed:
            return [*out, *self.finish(S.denied, "policy denied: " + ", ".join(d.reason_codes), now)]
        if not (d.break_glass or d.auto_approved):
            return [*out, *self.open_approval(now)]
        g.move(S.approved)
        if d.break_glass:
            data: dict[str, object] = {"rule": d.rule, "break_glass": True, "incident": g.incident}
            out += [Emit("grant.approved", SYSTEM_ACTOR, data), notices.break_glass_alert(g)]
        else:
            data = {"rule": d.rule, "auto_approved": True, "auto_rule": d.auto_rule}
            out.append(Emit("grant.approved", SYSTEM_ACTOR, data))
        return [*out, *self.issue_unless_revoked(now)]

    def issue_unless_revoked(self, now: datetime) -> list[Effect]:
        if self.revoke_request is None:
            return self.begin_issue(now)
        actor, reason = self.revoke_request  # revoked between approval and issuance
        cancelled = Emit("grant.cancelled", actor, {"reason": reason, "before": "issuance"})
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
        reason = g.end_reason or "revoked"
        out: list[Effect] = [notices.to_requester(g, K.revoked, f"{g.entitlement} was revoked ({reason})")]
        if g.break_glass:
            return [*out, *self.open_review(now)]
        return [*out, *self.finish(S.revoked, reason, now)]

    def resume(self, phase: str, now: datetime) -> list[Effect]:
        """A run continued as new while revoking or awaiting review picks up where it was."""
        if phase == "revoking":
            return self.begin_revocation(resumed=True)
        self.resume_review(now)
        return []

    # -- entering and leaving the waits --------------------------------------------------------
    def open_approval(self, now: datetime) -> list[Effect]:
        """Policy asks for approval: open the round and tell its approvers."""
        g, d = self.grant, self.grant.decision
        g.move(S.awaiting_approval)
        rnd = g.open_approval(now)
        self.reminder = rnd.requested_at + d.reminder_every if d.reminder_every else None
        requested = {
            "stages": [st.model_dump(mode="json") for st in rnd.stages],
            "stage_order": rnd.stage_order,
            "approver_groups": list(d.approver_groups),
            "min_approvals": d.min_approvals,
            "deadline": rnd.deadline.isoformat(),
        }
        return [Emit("approval.requested", SYSTEM_ACTOR, requested), notices.approval_requested(g, rnd), Flush()]

    def approval_outcome(self) -> list[Effect]:
        """The approval wait is over: what the requester hears (expired: also on the chain)."""
        g, rnd = self.grant, self.grant.approval
        assert rnd is not None
        if g.state is S.awaiting_approval:  # the deadline passed undecided
            data = {"deadline": rnd.deadline.isoformat(), "votes": len(rnd.votes)}
            title = f"Your request for {g.entitlement} expired without a decision"
            return [Emit("approval.expired", SYSTEM_ACTOR, data), notices.to_requester(g, K.denied, title)]
        if g.state is S.denied:
            return [notices.to_requester(g, K.denied, f"Your request for {g.entitlement} was denied")]
        if g.state is S.approved:
            return [notices.to_requester(g, K.approved, f"Your request for {g.entitlement} was approved")]
        return []  # cancelled by the requester

    def open_review(self, now: datetime) -> list[Effect]:
        """Break-glass, after revocation: a reviewer must record an outcome before the deadline."""
        g, bg = self.grant, notices.break_glass(self.grant)
        g.move(S.pending_review)
        g.review_deadline = now + bg.review_deadline
        self.resume_review(now)
        requested = {
            "deadline": g.review_deadline.isoformat(),
            "reviewer_groups": list(bg.reviewer_groups),
            "incident": g.incident,
        }
        return [Emit("review.requested", SYSTEM_ACTOR, requested), notices.review_requested(g), Flush()]

    def resume_review(self, now: datetime) -> None:
        every = notices.break_glass(self.grant).review_reminder_every
        self.reminder = now + every if every else None

    # -- commands ---------------------------------------------------------------------------
    def _approve(self, cmd: Approve, now: datetime) -> list[Effect]:
        g, a = self.grant, cmd.action
        self.check(cmd, now)
        rnd = g.pending_round()
        assert rnd is not None
        vote = g.approve(a.actor, now, a.comment, a.delegations)
        granted = {
            "purpose": rnd.purpose,
            "stage": vote.stage,
            "comment": a.comment,
            "on_behalf_of": vote.on_behalf_of,
            "delegation_id": vote.delegation_id,
            "votes": len(rnd.votes),
            "pending": rnd.pending(),
            **cmd.admission,
        }
        out: list[Effect] = [Emit("approval.granted", a.actor.as_actor(ActorRole.approver), granted)]
        if rnd.purpose == "grant":
            self.approvals.append(a)
        approvers = [v.approver for v in rnd.votes]
        if rnd.complete and rnd.purpose == "grant":
            data = {"rule": g.decision.rule, "approvers": approvers, "auto_approved": False}
            out.append(Emit("grant.approved", SYSTEM_ACTOR, data))
        elif rnd.complete:
            out.append(Emit("extension.approved", SYSTEM_ACTOR, {"approvers": approvers}))
            self.woken = True
        elif rnd.open_stages():
            out.append(notices.approval_requested(g, rnd))
        return out

    def _deny(self, cmd: Deny, now: datetime) -> list[Effect]:
        g, a = self.grant, cmd.action
        actor = a.actor.as_actor(ActorRole.approver)
        if g.deny(a.actor, a.comment, now, a.delegations) == "grant":
            return [Emit("approval.denied", actor, {"reason": a.comment, **cmd.admission})]
        self.woken = True
        return [
            Emit("extension.refused", actor, {"reason": a.comment, **cmd.admission}),
            notices.to_requester(g, K.extended, f"Your extension of {g.entitlement} was refused: {a.comment}"),
        ]

    def _revoke(self, cmd: Revoke) -> list[Effect]:
        g, a = self.grant, cmd.action
        g.check_revoke(a.actor)
        actor, authority = revoke_authority(g, a.actor)
        if g.state is S.awaiting_approval:
            g.move(S.cancelled)
            g.end_reason = f"cancelled by {a.actor.id}: {a.comment}"
            data = {"reason": a.comment, "before": "approval", "authority": authority, **cmd.admission}
            return [Emit("grant.cancelled", actor, data)]
        if self.revoke_request is not None:  # asked already: the revocation is under way
            return []
        self.revoke_request = (actor, a.comment)
        return [Emit("grant.revoke_requested", actor, {"reason": a.comment, "authority": authority, **cmd.admission})]

    def _parent_revoke(self, cmd: ParentRevoke) -> list[Effect]:
        if self.revoke_request is not None or self.grant.state not in (S.approved, S.issuing, S.active):
            return []
        self.revoke_request = (cmd.actor, cmd.reason)
        data = {"reason": cmd.reason, "authority": "onboarding", **cmd.admission}
        return [Emit("grant.revoke_requested", cmd.actor, data)]

    def _extend(self, cmd: Extend, now: datetime) -> list[Effect]:
        g, inp = self.grant, cmd.request
        ext = g.request_extension(inp, now)
        d = inp.decision
        requested = {
            "extension_seconds": ext.extension_seconds,
            "total_seconds": ext.new_total_seconds,
            "reason": inp.reason,
            "policy_version": d.policy_version,
            "auto_rule": d.auto_rule,
            "stages": [st.name for st in d.stages],
            **cmd.admission,
        }
        out: list[Effect] = [Emit("extension.requested", inp.actor.as_actor(ActorRole.requester), requested)]
        if ext.status is X.approved:
            out.append(Emit("extension.approved", SYSTEM_ACTOR, {"auto_rule": d.auto_rule, "auto_approved": True}))
        elif ext.round is not None:
            out.append(notices.extension_requested(g, ext.round, ext.extension_seconds))
        self.woken = True
        return out

    def _review(self, cmd: SubmitReview, now: datetime) -> list[Effect]:
        g, inp = self.grant, cmd.review
        g.check_review(inp)
        g.review = ReviewRecord(reviewer=inp.actor.id, outcome=inp.outcome, notes=inp.notes, at=now)
        g.move(S.reviewed)
        completed = {
            "outcome": inp.outcome,
            "notes": inp.notes,
            "overdue": g.review_escalated,
            "incident": g.incident,
            **cmd.admission,
        }
        out: list[Effect] = [Emit("review.completed", inp.actor.as_actor(ActorRole.reviewer), completed)]
        if inp.outcome == "not_justified":
            finding = {
                "finding": "break-glass use not justified",
                "requester": g.requester.id,
                "incident": g.incident,
                "reviewer": inp.actor.id,
                "notes": inp.notes,
            }
            out.append(Emit("review.finding", SYSTEM_ACTOR, finding))
        return out

    def _claim(self, cmd: Claim, now: datetime) -> list[Effect]:
        """The single-use wrapped credential goes to the requester once (the caller took it first)."""
        g, a = self.grant, cmd.action
        g.check_claim(a.actor, now)
        assert g.handover is not None
        delivered = {
            "kind": "response-wrapped",
            "single_use": True,
            "wrap_expires_at": g.handover.expires_at.isoformat(),
            **cmd.admission,
        }
        g.handover, g.credential_delivered = None, True
        return [Emit("credential.delivered", a.actor.as_actor(ActorRole.requester), delivered), Flush()]

    def _drift(self, cmd: ReportDrift) -> list[Effect]:
        """Reconciliation found an active grant's access gone: recorded once; ignored unless active."""
        g, finding = self.grant, cmd.finding
        if g.state is not S.active or g.drift is not None or finding.grant_id != g.grant_id:
            return []
        g.drift = finding
        data = {**finding.evidence(), **cmd.admission}
        return [Emit("reconciliation.drift_detected", SYSTEM_ACTOR, data), Flush()]

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
            data = {"escalation_groups": list(rnd.escalation_groups), "pending": rnd.pending()}
            out += [Emit("approval.escalated", SYSTEM_ACTOR, data), notices.approval_escalated(g, rnd)]
        if Timer.approval_reminder in due and Timer.approval_deadline not in due:
            out += [Emit("approval.reminder", SYSTEM_ACTOR, {"pending": rnd.pending()})]
            out += [notices.approval_reminder(g, rnd)]
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
            ends = notices.expires(g)
            out += [Emit("extension.expired", SYSTEM_ACTOR, {"deadline": ext.round.deadline.isoformat()})]
            title = f"Your extension of {g.entitlement} expired undecided; the grant still ends at {ends}"
            out += [notices.to_requester(g, K.extended, title), Flush()]
        if Timer.expiry_warning in due:
            self.warned = True
            out.append(notices.to_requester(g, K.expiry_warning, f"{g.entitlement} expires at {notices.expires(g)}"))
        if Timer.expiry in due:
            out.append(Emit("grant.expired", SYSTEM_ACTOR, {"expires_at": g.expires_at.isoformat()}))
            self.ended = "expired"
        return out

    def _tick_review(self, now: datetime, due: set[Timer]) -> list[Effect]:
        g = self.grant
        assert g.review_deadline is not None
        deadline = g.review_deadline.isoformat()
        out: list[Effect] = []
        if Timer.review_overdue in due:
            g.review_escalated = True
            data = {"deadline": deadline, "escalation_groups": list(notices.break_glass(g).escalation_groups)}
            out += [Emit("review.overdue", SYSTEM_ACTOR, data), notices.review_overdue(g)]
        if Timer.review_reminder in due:
            out += [Emit("review.reminder", SYSTEM_ACTOR, {"deadline": deadline})]
            out += [notices.review_requested(g, reminder=True)]
            self.reminded(now)
        return [*out, Flush()]

    # -- activity outcomes --------------------------------------------------------------------
    def _extension_done(self, msg: ExtensionApplied | ExtensionFailed, now: datetime) -> list[Effect]:
        """The provider's TTL moved (then the expiry follows) or could not (the expiry stays)."""
        g, ext = self.grant, self.grant.extension
        assert ext is not None and g.credential is not None and g.expires_at is not None
        if isinstance(msg, ExtensionFailed):
            ext.status = X.failed
            data = {"error": msg.error, "expires_at": g.expires_at.isoformat()}
            title = f"Extending {g.entitlement} failed; it still ends at {g.expires_at.isoformat()}"
            out: list[Effect] = [Emit("extension.failed", EXECUTOR, data)]
        else:
            cred = msg.credential
            g.expires_at += timedelta(seconds=ext.extension_seconds)
            g.credential = cred.model_copy(update={"shared_target": g.credential.shared_target})
            g.duration_seconds = ext.new_total_seconds
            g.extensions_applied += 1
            ext.status = X.applied
            applied = {
                "added_seconds": ext.extension_seconds,
                "total_seconds": ext.new_total_seconds,
                "expires_at": g.expires_at.isoformat(),
                "provider_expires_at": cred.expires_at.isoformat() if cred.expires_at else None,
                "decided_by": ext.decided_by,
                "auto_rule": ext.auto_rule,
            }
            title = f"{g.entitlement} extended until {g.expires_at.isoformat()}"
            out = [Emit("extension.applied", EXECUTOR, applied)]
        self.rearm_at_next_wait()
        return [*out, notices.to_requester(g, K.extended, title), Flush()]
