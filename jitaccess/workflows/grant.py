"""GrantWorkflow: one grant, request to confirmed revocation.

Workflow ID = grant ID. Decisions (approve / deny / revoke / claim) are updates
whose validators consult the domain rules, so a refused action never enters
history and the caller gets the precise rule. Every step appends to the
grant's hash chain; the chain is flushed to the ledger before every wait.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Callable

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from jitaccess.domain import contracts as c
    from jitaccess.domain.credentials import IssueResult, ProviderGrant, RevocationResult, WrappedHandover
    from jitaccess.domain.events import IdentityEvent, make_event
    from jitaccess.domain.grant import EXECUTOR, ActionInput, Grant, GrantInput, Refusal
    from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorRole, Principal
    from jitaccess.domain.states import GrantState as S

PROVIDER_CALL_TIMEOUT = timedelta(seconds=30)


def _refuse(check: Callable[[], None]) -> None:
    """Run a domain check; turn a Refusal into the error the API maps to 403/409/410."""
    try:
        check()
    except Refusal as r:
        raise ApplicationError(r.message, r.kind.value, r.rule, type=c.REFUSAL, non_retryable=True) from None


def _failure(err: BaseException) -> str:
    """The innermost failure message of an activity error (provider messages carry no secrets)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err) or err.__class__.__name__


@workflow.defn(name="GrantWorkflow")
class GrantWorkflow:
    @workflow.init
    def __init__(self, inp: GrantInput) -> None:
        self._grant = Grant.from_input(inp)
        self._options = inp.options
        self._events: list[IdentityEvent] = []
        self._flushed = 0
        self._revoke_request: tuple[Actor, str] | None = None

    # -- the lifecycle ------------------------------------------------------------
    @workflow.run
    async def run(self, inp: GrantInput) -> Grant:
        g, d = self._grant, inp.decision
        self._emit(
            "grant.requested",
            g.requester.as_actor(ActorRole.requester),
            {
                "entitlement": g.entitlement,
                "duration_seconds": g.duration_seconds,
                "reason": g.reason,
                "ticket": g.ticket,
                "request_id": g.request_id,
                "requester": g.requester.model_dump(mode="json"),
            },
        )
        g.move(S.policy_evaluated)
        self._emit("policy.decided", SYSTEM_ACTOR, d.evidence())
        if not d.allowed:
            return await self._end(S.denied, "policy denied: " + ", ".join(d.reason_codes))

        if d.auto_approved:
            g.move(S.approved)
            self._emit("grant.approved", SYSTEM_ACTOR, {"rule": d.rule, "auto_approved": True})
        else:
            g.move(S.awaiting_approval)
            deadline = workflow.now() + d.approval_timeout
            self._emit(
                "approval.requested",
                SYSTEM_ACTOR,
                {
                    "approver_groups": list(d.approver_groups),
                    "min_approvals": d.min_approvals,
                    "deadline": deadline.isoformat(),
                },
            )
            await self._flush()
            try:
                await workflow.wait_condition(lambda: g.state is not S.awaiting_approval, timeout=d.approval_timeout)
            except asyncio.TimeoutError:
                self._emit("approval.expired", SYSTEM_ACTOR, {"deadline": deadline.isoformat(), "votes": len(g.approvals)})
                return await self._end(S.approval_expired, "no decision before the approval deadline")
            if g.state is not S.approved:  # denied or cancelled by an update handler
                return await self._end(g.state, g.end_reason or g.state.value)

        if self._revoke_request is not None:  # revoked between approval and issuance
            actor, reason = self._revoke_request
            self._emit("grant.cancelled", actor, {"reason": reason, "before": "issuance"})
            return await self._end(S.cancelled, f"cancelled by {actor.id}")

        if not await self._issue():
            return await self._end(S.issue_failed, "issue failed; partial issues cleaned up and confirmed absent")

        # The expiry timer: durable, survives worker restarts; an early revoke wakes it.
        assert g.expires_at is not None
        remaining = g.expires_at - workflow.now()
        try:
            await workflow.wait_condition(lambda: self._revoke_request is not None, timeout=max(remaining, timedelta(0)))
            actor, reason = self._revoke_request  # type: ignore[misc]
            end_reason = f"revoked early by {actor.id}: {reason}"
        except asyncio.TimeoutError:
            self._emit("grant.expired", SYSTEM_ACTOR, {"expires_at": g.expires_at.isoformat()})
            end_reason = "expired"

        await self._revoke()
        return await self._end(S.revoked, end_reason)

    async def _issue(self) -> bool:
        g = self._grant
        g.move(S.issuing)
        start = workflow.now()
        assert g.provider is not None and g.decision.entitlement is not None
        request = self._provider_request()
        try:
            res: IssueResult = await workflow.execute_activity(
                c.ISSUE_CREDENTIAL,
                request,
                result_type=IssueResult,
                start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
                schedule_to_close_timeout=self._options.issue_timeout,
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)),
            )
        except ActivityError as e:
            self._emit("credential.issue_failed", EXECUTOR, {"provider": g.provider, "error": _failure(e)})
            await self._clean_up()
            return False

        g.credential, g.handover = res.credential, res.handover
        g.issued_at, g.expires_at = start, start + g.duration
        self._emit(
            "credential.issued",
            EXECUTOR,
            {
                "provider": g.provider,
                "reference": res.credential.reference,
                "details": res.credential.details,
                "expires_at": g.expires_at.isoformat(),
                "provider_expires_at": res.credential.expires_at.isoformat() if res.credential.expires_at else None,
                "handover": (
                    {"kind": "response-wrapped", "single_use": True, "expires_at": res.handover.expires_at.isoformat()}
                    if res.handover
                    else None
                ),
            },
        )
        if not res.verified:
            self._emit("fulfilment.verification_failed", EXECUTOR, {"read_back": res.verification})
            await self._clean_up()
            return False
        self._emit("fulfilment.verified", EXECUTOR, {"read_back": res.verification})
        g.move(S.active)
        await self._flush()
        return True

    def _provider_request(self) -> ProviderGrant:
        g = self._grant
        assert g.provider is not None and g.decision.entitlement is not None
        return ProviderGrant(
            grant_id=g.grant_id,
            provider=g.provider,
            params=g.decision.entitlement.provider.params,
            principal=g.requester.id,
            ttl_seconds=g.duration_seconds,
        )

    async def _clean_up(self) -> None:
        """Whatever a failed issue left behind is removed and confirmed absent (retried until it is)."""
        g = self._grant
        res: RevocationResult = await workflow.execute_activity(
            c.CLEAN_UP_GRANT,
            self._provider_request(),
            result_type=RevocationResult,
            start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=self._options.revocation_backoff_cap),
        )
        g.credential, g.handover = None, None
        self._emit(
            "credential.cleanup_confirmed", EXECUTOR, {"read_back": res.verification, "held_by": res.deferred_to}
        )

    async def _revoke(self) -> None:
        """Revoke, read back, and never give up: capped backoff, an event per failed attempt."""
        g = self._grant
        assert g.credential is not None
        g.move(S.revoking)
        g.handover = None
        cap = self._options.revocation_backoff_cap
        while True:
            g.revocation_attempts += 1
            attempt = g.revocation_attempts
            try:
                res: RevocationResult = await workflow.execute_activity(
                    c.REVOKE_CREDENTIAL,
                    g.credential,
                    result_type=RevocationResult,
                    start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
                    retry_policy=RetryPolicy(maximum_attempts=1),  # this loop is the retry, with evidence
                )
                if res.deferred_to:
                    # shared access: our hold is released, another grant still holds it
                    self._emit(
                        "revocation.deferred",
                        EXECUTOR,
                        {"held_by": res.deferred_to, "reference": g.credential.reference, "read_back": res.verification},
                    )
                    g.move(S.revoked)
                    return
                if res.confirmed:
                    self._emit(
                        "revocation.confirmed",
                        EXECUTOR,
                        {
                            "attempts": attempt,
                            "reference": g.credential.reference,
                            "already_gone": res.already_gone,
                            "read_back": res.verification,
                            # when the provider would have ended it anyway (the residual window, if any)
                            "credential_expires_at": (
                                g.credential.expires_at.isoformat() if g.credential.expires_at else None
                            ),
                        },
                    )
                    g.move(S.revoked)
                    return
                problem = "read-back shows access still present: " + res.verification
            except ActivityError as e:
                problem = _failure(e)
            delay = min(timedelta(seconds=2 ** min(attempt - 1, 20)), cap)
            self._emit(
                "revocation.retrying",
                EXECUTOR,
                {"attempt": attempt, "problem": problem, "retry_in_seconds": delay.total_seconds()},
            )
            if attempt >= self._options.revocation_failing_after and g.state is S.revoking:
                g.move(S.revocation_failing)
                self._emit(
                    "revocation.failing",
                    SYSTEM_ACTOR,
                    {"attempts": attempt, "problem": problem, "alert": "revocation not confirmed; still retrying"},
                )
            await self._flush()
            await workflow.sleep(delay)

    async def _end(self, state: S, reason: str) -> Grant:
        g = self._grant
        if g.state is not state:
            g.move(state)
        g.ended_at = workflow.now()
        g.end_reason = reason
        await self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush()
        return g

    # -- evidence -------------------------------------------------------------------
    def _emit(self, type: str, actor: Actor, data: dict[str, Any]) -> None:
        prev = self._events[-1] if self._events else None
        ev = make_event(self._grant.grant_id, prev, type, workflow.now(), actor, data)
        self._events.append(ev)
        self._grant.events, self._grant.last_hash = ev.seq, ev.hash

    async def _flush(self) -> None:
        """Store events not yet in the ledger (idempotent there, so replays and retries are harmless)."""
        if self._flushed == len(self._events):
            return
        batch = c.EventBatch(events=self._events[self._flushed :], summary=self._grant.summary())
        self._flushed = len(self._events)
        await workflow.execute_local_activity(
            c.RECORD_EVENTS,
            batch,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)),
        )

    # -- decisions (updates) and status (query) ---------------------------------------
    @workflow.query
    def status(self) -> Grant:
        return self._grant

    @workflow.update
    def approve(self, a: ActionInput) -> Grant:
        g = self._grant
        complete = g.approve(a.actor, workflow.now().isoformat(), a.comment)
        self._emit(
            "approval.granted",
            a.actor.as_actor(ActorRole.approver),
            {"comment": a.comment, "votes": len(g.approvals), "required": g.approvals_required},
        )
        if complete:
            self._emit(
                "grant.approved",
                SYSTEM_ACTOR,
                {"rule": g.decision.rule, "approvers": [v.approver for v in g.approvals], "auto_approved": False},
            )
        return g

    @approve.validator
    def _validate_approve(self, a: ActionInput) -> None:
        _refuse(lambda: self._grant.check_approve(a.actor))

    @workflow.update
    def deny(self, a: ActionInput) -> Grant:
        g = self._grant
        g.deny(a.actor, a.comment)
        g.end_reason = f"denied by {a.actor.id}: {a.comment}"
        self._emit("approval.denied", a.actor.as_actor(ActorRole.approver), {"reason": a.comment})
        return g

    @deny.validator
    def _validate_deny(self, a: ActionInput) -> None:
        _refuse(lambda: self._grant.check_deny(a.actor))

    @workflow.update
    def revoke(self, a: ActionInput) -> Grant:
        g = self._grant
        g.check_revoke(a.actor)
        actor = a.actor.as_actor(ActorRole.requester if a.actor.id == g.requester.id else ActorRole.approver)
        if g.state is S.awaiting_approval:
            g.move(S.cancelled)
            g.end_reason = f"cancelled by {a.actor.id}: {a.comment}"
            self._emit("grant.cancelled", actor, {"reason": a.comment, "before": "approval"})
        elif self._revoke_request is None:
            self._revoke_request = (actor, a.comment)
            self._emit("grant.revoke_requested", actor, {"reason": a.comment})
        return g

    @revoke.validator
    def _validate_revoke(self, a: ActionInput) -> None:
        _refuse(lambda: self._grant.check_revoke(a.actor))

    @workflow.update
    async def claim_credential(self, a: ActionInput) -> WrappedHandover:
        g = self._grant
        g.check_claim(a.actor, workflow.now())
        handover = g.handover
        assert handover is not None
        g.handover, g.credential_delivered = None, True
        self._emit(
            "credential.delivered",
            a.actor.as_actor(ActorRole.requester),
            {"kind": "response-wrapped", "single_use": True, "wrap_expires_at": handover.expires_at.isoformat()},
        )
        await self._flush()
        return handover

    @claim_credential.validator
    def _validate_claim(self, a: ActionInput) -> None:
        _refuse(lambda: self._grant.check_claim(a.actor, workflow.now()))


__all__ = ["GrantWorkflow", "Principal"]
