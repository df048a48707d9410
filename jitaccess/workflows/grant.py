"""GrantWorkflow: one grant, request to confirmed revocation.

Workflow ID = grant ID. Decisions (approve / deny / revoke / claim) are updates
whose validators consult the domain rules, so a refused action never enters
history and the caller gets the precise rule. Every step appends to the
grant's hash chain; the chain is flushed to the ledger before every wait.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from jitaccess.domain import contracts as c
    from jitaccess.domain.credentials import (
        IssuedCredential,
        IssueResult,
        ProviderGrant,
        RevocationResult,
        WrappedHandover,
    )
    from jitaccess.domain.grant import (
        EXECUTOR,
        ActionInput,
        ApprovalRound,
        ExtendInput,
        Grant,
        GrantInput,
        GrantResume,
        IssueRequest,
        Refusal,
        Review,
        ReviewInput,
    )
    from jitaccess.domain.notifications import (
        Audience,
        DeliveryRequest,
        DeliveryResult,
        Notification,
        NotificationKind,
        Severity,
        grant_links,
    )
    from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorRole, Principal
    from jitaccess.domain.reconciliation import DriftReport
    from jitaccess.domain.search import grant_search_values
    from jitaccess.domain.states import ExtensionStatus
    from jitaccess.domain.states import GrantState as S
    from jitaccess.workflows import trust
    from jitaccess.workflows.common import EvidenceChain, failure_message, refuse

PROVIDER_CALL_TIMEOUT = timedelta(seconds=30)
# workflow.patched() ids (histories recorded before each change keep their old commands)
EXTENSION_APPROVED_WHILE_BUSY = "extension-approved-while-busy"
PROVIDER_EXPIRY_FROM_GRANT = "provider-expiry-from-grant"
SEARCH_ATTRIBUTES = "search-attributes"
GRANT_STATE_KEY = SearchAttributeKey.for_keyword("GrantState")


def search_updates(values: dict[str, str | bool]) -> list[SearchAttributeUpdate]:
    """Typed search attribute updates for `values` (jitaccess.domain.search names)."""
    return [
        SearchAttributeKey.for_bool(k).value_set(v)
        if isinstance(v, bool)
        else SearchAttributeKey.for_keyword(k).value_set(v)
        for k, v in values.items()
    ]


def initial_search_attributes(inp: GrantInput) -> TypedSearchAttributes:
    """What the API starts a grant with (so the workflow keeps them current from then on)."""
    values = grant_search_values(Grant.from_input(inp))
    return TypedSearchAttributes(
        [
            SearchAttributePair(SearchAttributeKey.for_bool(k), v)
            if isinstance(v, bool)
            else SearchAttributePair(SearchAttributeKey.for_keyword(k), v)
            for k, v in values.items()
        ]
    )


@workflow.defn(name="GrantWorkflow")
class GrantWorkflow:
    @workflow.init
    def __init__(self, inp: GrantInput) -> None:
        self._inp = inp
        self._grant = inp.resume.grant if inp.resume else Grant.from_input(inp)
        self._options = inp.options
        self._chain = EvidenceChain(inp.grant_id, inp.resume.last_event if inp.resume else None)
        self._revoke_request: tuple[Actor, str] | None = None
        self._wake = False  # set by update handlers so the active phase re-evaluates (extensions)
        self._window: tuple[datetime, datetime] | None = None  # (issued_at, expires_at), fixed before issuing
        self._notifying: list[asyncio.Task] = []
        self._notifications = 0
        self._gate = trust.CommandGate(inp.grant_id)
        self._approvals: list[ActionInput] = []  # the signed votes that approved the grant (for the issuer)
        # search attributes (Requester, GrantState, ...): kept current when the starter set them
        # (the API does, with JITACCESS_SEARCH_ATTRIBUTES); the values last upserted
        started = workflow.info().typed_search_attributes
        self._searchable: dict[str, str | bool] | None = (
            {p.key.name: p.value for p in started} if started.get(GRANT_STATE_KEY) is not None else None
        )

    # -- the lifecycle ------------------------------------------------------------
    @workflow.run
    async def run(self, inp: GrantInput) -> Grant:
        g, d = self._grant, inp.decision
        if inp.resume is not None:  # continued as new while revoking or awaiting review
            if inp.resume.phase == "revoking":
                await self._revoke(resumed=True)
                return await self._after_revocation()
            await self._review_phase(resumed=True)
            return await self._end_reviewed()
        self._emit(
            "grant.requested",
            g.requester.as_actor(ActorRole.requester),
            {
                "entitlement": g.entitlement,
                "duration_seconds": g.duration_seconds,
                "reason": g.reason,
                "ticket": g.ticket,
                "request_id": g.request_id,
                "break_glass": g.break_glass,
                "incident": g.incident,
                "requester": g.requester.model_dump(mode="json"),
                "workload": inp.request.workload,
            },
        )
        g.move(S.policy_evaluated)
        if (forged := self._start_refusal(inp)) is not None:
            self._emit(
                "policy.decided",
                SYSTEM_ACTOR,
                {
                    "outcome": "deny",
                    "rule": "trust:signed_request",
                    "reason_codes": [forged.rule],
                    "messages": [forged.message],
                    "signer": inp.auth.key_id if inp.auth else None,
                },
            )
            return await self._end(S.denied, f"refused: {forged.message}")
        self._emit("policy.decided", SYSTEM_ACTOR, d.evidence())
        if not d.allowed:
            return await self._end(S.denied, "policy denied: " + ", ".join(d.reason_codes))

        if d.break_glass:
            g.move(S.approved)
            self._emit("grant.approved", SYSTEM_ACTOR, {"rule": d.rule, "break_glass": True, "incident": g.incident})
            self._notify(
                NotificationKind.break_glass_alert,
                Audience.security,
                Severity.high,
                f"BREAK-GLASS: {g.requester.id} took {g.entitlement} ({g.incident})",
                [],
            )
        elif d.auto_approved:
            g.move(S.approved)
            self._emit(
                "grant.approved", SYSTEM_ACTOR, {"rule": d.rule, "auto_approved": True, "auto_rule": d.auto_rule}
            )
        else:
            g.move(S.awaiting_approval)
            rnd = g.open_approval(workflow.now())
            self._emit(
                "approval.requested",
                SYSTEM_ACTOR,
                {
                    "stages": [st.model_dump(mode="json") for st in rnd.stages],
                    "stage_order": rnd.stage_order,
                    "approver_groups": list(d.approver_groups),
                    "min_approvals": d.min_approvals,
                    "deadline": rnd.deadline.isoformat(),
                },
            )
            self._notify_approvers(
                NotificationKind.approval_requested, f"{g.requester.id} requests {g.entitlement}", rnd
            )
            await self._flush()
            if not await self._await_round(rnd):
                self._emit(
                    "approval.expired", SYSTEM_ACTOR, {"deadline": rnd.deadline.isoformat(), "votes": len(rnd.votes)}
                )
                self._notify(
                    NotificationKind.denied,
                    Audience.requester,
                    Severity.info,
                    f"Your request for {g.entitlement} expired without a decision",
                    [g.requester.id],
                )
                return await self._end(S.approval_expired, "no decision before the approval deadline")
            if g.state is not S.approved:  # denied or cancelled by an update handler
                if g.state is S.denied:
                    self._notify(
                        NotificationKind.denied,
                        Audience.requester,
                        Severity.info,
                        f"Your request for {g.entitlement} was denied",
                        [g.requester.id],
                    )
                return await self._end(g.state, g.end_reason or g.state.value)
            self._notify(
                NotificationKind.approved,
                Audience.requester,
                Severity.info,
                f"Your request for {g.entitlement} was approved",
                [g.requester.id],
            )

        if self._revoke_request is not None:  # revoked between approval and issuance
            actor, reason = self._revoke_request
            self._emit("grant.cancelled", actor, {"reason": reason, "before": "issuance"})
            return await self._end(S.cancelled, f"cancelled by {actor.id}")

        if not await self._issue():
            if g.state is S.denied:
                return await self._end(S.denied, "refused by the issuer: not provable from signed evidence")
            return await self._end(S.issue_failed, "issue failed; partial issues cleaned up and confirmed absent")

        self._notify(
            NotificationKind.issued,
            Audience.requester,
            Severity.info,
            f"{g.entitlement} is active until {g.expires_at.isoformat() if g.expires_at else '?'}",
            [g.requester.id],
        )
        end_reason = await self._active_phase()
        g.end_reason = end_reason
        await self._revoke()
        return await self._after_revocation()

    async def _after_revocation(self) -> Grant:
        g = self._grant
        end_reason = g.end_reason or "revoked"
        self._notify(
            NotificationKind.revoked,
            Audience.requester,
            Severity.info,
            f"{g.entitlement} was revoked ({end_reason})",
            [g.requester.id],
        )
        if g.break_glass:
            await self._review_phase()
            return await self._end_reviewed()
        return await self._end(S.revoked, end_reason)

    async def _end_reviewed(self) -> Grant:
        g = self._grant
        assert g.review is not None
        return await self._end(S.reviewed, f"{g.end_reason}; review: {g.review.outcome}")

    async def _continue_as_new_if_long(self, phase: str) -> None:
        """Loops that may run for weeks (revocation retries, an unreviewed break-glass grant) hand
        over to a fresh run before the history grows too long, carrying the state and the chain."""
        info = workflow.info()
        if not (
            info.is_continue_as_new_suggested() or info.get_current_history_length() >= self._options.history_budget
        ):
            return
        await self._flush()
        if self._notifying:
            await asyncio.gather(*self._notifying)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush()
        resume = GrantResume(grant=self._grant, last_event=self._chain.events[-1], phase=phase)
        workflow.continue_as_new(self._inp.model_copy(update={"resume": resume}))

    async def _await_round(self, rnd: ApprovalRound) -> bool:
        """Wait for a round to be decided, sending reminders and escalating on schedule.
        False when its deadline passed undecided."""
        g, d = self._grant, self._grant.decision
        next_reminder = rnd.requested_at + d.reminder_every if d.reminder_every else None
        escalate_at = rnd.requested_at + d.escalate_after if d.escalate_after else None
        while g.pending_round() is rnd:
            now = workflow.now()
            if now >= rnd.deadline:
                return False
            wake = min(
                t for t in (rnd.deadline, next_reminder, None if rnd.escalated else escalate_at) if t is not None
            )
            try:
                await workflow.wait_condition(lambda: g.pending_round() is not rnd, timeout=wake - now)
            except TimeoutError:
                now = workflow.now()
                if escalate_at is not None and not rnd.escalated and now >= escalate_at:
                    rnd.escalated = True
                    self._emit(
                        "approval.escalated",
                        SYSTEM_ACTOR,
                        {"escalation_groups": list(rnd.escalation_groups), "pending": rnd.pending()},
                    )
                    self._notify(
                        NotificationKind.approval_escalated,
                        Audience.approvers,
                        Severity.high,
                        f"Escalated: {g.requester.id}'s request for {g.entitlement} is still pending",
                        list(rnd.escalation_groups),
                    )
                if next_reminder is not None and next_reminder <= now < rnd.deadline:
                    self._emit("approval.reminder", SYSTEM_ACTOR, {"pending": rnd.pending()})
                    self._notify_approvers(
                        NotificationKind.approval_reminder, f"Reminder: {g.requester.id} requests {g.entitlement}", rnd
                    )
                    while next_reminder <= now:
                        next_reminder += d.reminder_every  # type: ignore[operator]
                await self._flush()
        return True

    async def _active_phase(self) -> str:
        """Active until expiry (a durable timer that survives worker restarts) or an early revoke;
        extensions re-arm the timer, an expiry warning goes out `expiry_warning_lead` before."""
        g, lead = self._grant, self._options.expiry_warning_lead
        warned = lead is None or g.duration <= lead
        while True:
            assert g.expires_at is not None
            now = workflow.now()
            wake = g.expires_at
            ext = g.extension
            if ext is not None and ext.status == "pending" and ext.round is not None:
                wake = min(wake, ext.round.deadline)
            if not warned and lead is not None:
                wake = min(wake, g.expires_at - lead)
            self._wake = False
            if ext is not None and ext.status == "approved" and workflow.patched(EXTENSION_APPROVED_WHILE_BUSY):
                # approved while this loop was busy (e.g. writing the previous extension's evidence):
                # the handler's wake flag was just cleared, so apply it now instead of at the old expiry
                wake = now
            if wake > now:
                try:
                    await workflow.wait_condition(
                        lambda: self._revoke_request is not None or self._wake, timeout=wake - now
                    )
                except TimeoutError:
                    pass
            if self._revoke_request is not None:
                actor, reason = self._revoke_request
                return f"revoked early by {actor.id}: {reason}"
            now = workflow.now()
            ext = g.extension
            if ext is not None and ext.status == "approved":
                await self._apply_extension()
                warned = lead is None or g.expires_at - lead <= workflow.now()
                continue
            if ext is not None and ext.status == "pending" and ext.round is not None and now >= ext.round.deadline:
                ext.status = ExtensionStatus.expired
                self._emit("extension.expired", SYSTEM_ACTOR, {"deadline": ext.round.deadline.isoformat()})
                self._notify(
                    NotificationKind.extended,
                    Audience.requester,
                    Severity.info,
                    f"Your extension of {g.entitlement} expired undecided; the grant still ends at {g.expires_at.isoformat()}",
                    [g.requester.id],
                )
                await self._flush()
            if not warned and lead is not None and g.expires_at - lead <= now < g.expires_at:
                warned = True
                self._notify(
                    NotificationKind.expiry_warning,
                    Audience.requester,
                    Severity.info,
                    f"{g.entitlement} expires at {g.expires_at.isoformat()}",
                    [g.requester.id],
                )
            if now >= g.expires_at:
                self._emit("grant.expired", SYSTEM_ACTOR, {"expires_at": g.expires_at.isoformat()})
                return "expired"

    async def _apply_extension(self) -> None:
        """Move the provider's TTL backstop first; only then the expiry timer (refused or failed: untouched)."""
        g = self._grant
        ext = g.extension
        assert ext is not None and g.credential is not None and g.expires_at is not None
        new_expiry = g.expires_at + timedelta(seconds=ext.extension_seconds)
        ttl = int((new_expiry - workflow.now()).total_seconds())
        try:
            cred: IssuedCredential = await workflow.execute_activity(
                c.EXTEND_CREDENTIAL,
                c.ExtendRequest(credential=g.credential, ttl_seconds=max(ttl, 1), expires_at=new_expiry),
                result_type=IssuedCredential,
                start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
            )
        except ActivityError as e:
            ext.status = ExtensionStatus.failed
            self._emit(
                "extension.failed", EXECUTOR, {"error": failure_message(e), "expires_at": g.expires_at.isoformat()}
            )
            self._notify(
                NotificationKind.extended,
                Audience.requester,
                Severity.info,
                f"Extending {g.entitlement} failed; it still ends at {g.expires_at.isoformat()}",
                [g.requester.id],
            )
            await self._flush()
            return
        g.credential, g.expires_at = cred.model_copy(update={"shared_target": g.credential.shared_target}), new_expiry
        g.duration_seconds = ext.new_total_seconds
        g.extensions_applied += 1
        ext.status = ExtensionStatus.applied
        self._emit(
            "extension.applied",
            EXECUTOR,
            {
                "added_seconds": ext.extension_seconds,
                "total_seconds": ext.new_total_seconds,
                "expires_at": new_expiry.isoformat(),
                "provider_expires_at": cred.expires_at.isoformat() if cred.expires_at else None,
                "decided_by": ext.decided_by,
                "auto_rule": ext.auto_rule,
            },
        )
        self._notify(
            NotificationKind.extended,
            Audience.requester,
            Severity.info,
            f"{g.entitlement} extended until {new_expiry.isoformat()}",
            [g.requester.id],
        )
        await self._flush()

    async def _review_phase(self, resumed: bool = False) -> None:
        """Break-glass: after revocation a reviewer (not the requester) must record an outcome
        before the deadline; reminders go out, and an overdue review escalates."""
        g = self._grant
        bg = g.decision.entitlement.break_glass if g.decision.entitlement else None
        assert bg is not None
        now = workflow.now()
        if not resumed:
            g.move(S.pending_review)
            g.review_deadline = now + bg.review_deadline
            self._emit(
                "review.requested",
                SYSTEM_ACTOR,
                {
                    "deadline": g.review_deadline.isoformat(),
                    "reviewer_groups": list(bg.reviewer_groups),
                    "incident": g.incident,
                },
            )
            self._notify(
                NotificationKind.review_requested,
                Audience.reviewers,
                Severity.info,
                f"Review break-glass use of {g.entitlement} by {g.requester.id} ({g.incident})",
                list(bg.reviewer_groups),
            )
            await self._flush()
        assert g.review_deadline is not None
        every = bg.review_reminder_every
        next_reminder = now + every if every else None
        while g.state is S.pending_review:
            await self._continue_as_new_if_long("review")
            now = workflow.now()
            ticks = [t for t in (next_reminder, None if g.review_escalated else g.review_deadline) if t is not None]
            try:
                await workflow.wait_condition(
                    lambda: g.state is not S.pending_review, timeout=(min(ticks) - now) if ticks else None
                )
            except TimeoutError:
                now = workflow.now()
                if not g.review_escalated and now >= g.review_deadline:
                    g.review_escalated = True
                    self._emit(
                        "review.overdue",
                        SYSTEM_ACTOR,
                        {"deadline": g.review_deadline.isoformat(), "escalation_groups": list(bg.escalation_groups)},
                    )
                    self._notify(
                        NotificationKind.review_overdue,
                        Audience.reviewers,
                        Severity.high,
                        f"OVERDUE review of break-glass use of {g.entitlement} by {g.requester.id}",
                        list(bg.reviewer_groups + bg.escalation_groups),
                    )
                if next_reminder is not None and now >= next_reminder:
                    self._emit("review.reminder", SYSTEM_ACTOR, {"deadline": g.review_deadline.isoformat()})
                    self._notify(
                        NotificationKind.review_requested,
                        Audience.reviewers,
                        Severity.info,
                        f"Reminder: review break-glass use of {g.entitlement} by {g.requester.id}",
                        list(bg.reviewer_groups),
                    )
                    while next_reminder <= now:
                        next_reminder += every  # type: ignore[operator]
                await self._flush()

    async def _issue(self) -> bool:
        g = self._grant
        g.move(S.issuing)
        start = workflow.now()
        if workflow.patched(PROVIDER_EXPIRY_FROM_GRANT):
            # the grant's window is fixed first; every provider ends its own TTL at `expires_at`,
            # counted at the moment of its call (however late the issue runs), never later
            self._window = (start, start + g.duration)
        assert g.provider is not None and g.decision.entitlement is not None
        request = IssueRequest(grant=self._provider_request(), request=self._inp, approvals=self._approvals)
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
            if isinstance(e.cause, ApplicationError) and e.cause.type == c.ISSUE_REFUSED:
                # the issuer could not prove the grant from signed evidence: nothing was issued
                rule = str(e.cause.details[0]) if e.cause.details else "issue_refused"
                self._emit("credential.issue_refused", EXECUTOR, {"rule": rule, "message": e.cause.message})
                g.move(S.denied)
                return False
            self._emit("credential.issue_failed", EXECUTOR, {"provider": g.provider, "error": failure_message(e)})
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
                **self._residual_window(res.credential),
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
        await self._tell_parent()
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
            max_ttl_seconds=int(self._max_duration().total_seconds()),
            issued_at=self._window[0] if self._window else None,
            expires_at=self._window[1] if self._window else None,
        )

    def _residual_window(self, cred: IssuedCredential) -> dict[str, Any]:
        """How long the provider's own expiry lies past the grant's (e.g. STS's 900 s minimum):
        revocation ends the access at expiry, the credential itself lives on this long."""
        if self._window is None:  # histories from before PROVIDER_EXPIRY_FROM_GRANT: no such field
            return {}
        if cred.expires_at is None:
            return {"residual_window_seconds": None}
        return {"residual_window_seconds": max(0, math.ceil((cred.expires_at - self._window[1]).total_seconds()))}

    def _max_duration(self) -> timedelta:
        ent = self._grant.decision.entitlement
        assert ent is not None
        return ent.break_glass.max_duration if self._grant.break_glass and ent.break_glass else ent.max_duration

    async def _clean_up(self) -> None:
        """Whatever a failed issue left behind is removed and confirmed absent (retried until it is)."""
        g = self._grant
        res: RevocationResult = await workflow.execute_activity(
            c.CLEAN_UP_GRANT,
            self._provider_request(),
            result_type=RevocationResult,
            start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1), maximum_interval=self._options.revocation_backoff_cap
            ),
        )
        g.credential, g.handover = None, None
        self._emit(
            "credential.cleanup_confirmed", EXECUTOR, {"read_back": res.verification, "held_by": res.deferred_to}
        )

    async def _revoke(self, resumed: bool = False) -> None:
        """Revoke, read back, and never give up: capped backoff, an event per failed attempt."""
        g = self._grant
        assert g.credential is not None
        if not resumed:
            g.move(S.revoking)
        g.handover = None
        cap = self._options.revocation_backoff_cap
        while True:
            await self._continue_as_new_if_long("revoking")
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
                        {
                            "held_by": res.deferred_to,
                            "reference": g.credential.reference,
                            "read_back": res.verification,
                        },
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
                problem = failure_message(e)
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
        if self._notifying:  # bounded: each delivery gives up after notification_attempts
            await asyncio.gather(*self._notifying)
        await self._flush()
        await self._tell_parent()
        return g

    async def _tell_parent(self) -> None:
        """A child grant of a service onboarding reports its state (and non-secret reference) upward."""
        parent = workflow.info().parent
        if parent is None:
            return
        g = self._grant
        update = c.ChildUpdate(
            grant_id=g.grant_id,
            state=g.state.value,
            reference=g.credential.reference if g.credential else None,
            expires_at=g.expires_at,
        )
        signed = trust.sign(update, parent.workflow_id, c.CHILD_UPDATE_SIGNAL)
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(c.CHILD_UPDATE_SIGNAL, signed)

    @workflow.signal(name=c.PARENT_REVOKE_SIGNAL)
    def parent_revoke(self, cmd: c.ParentRevoke) -> None:
        """The onboarding ends this grant (offboarding, rotation, or an all-or-nothing failure);
        only its own parent's worker-signed signal counts."""
        g = self._grant
        parent = workflow.info().parent
        if parent is None or not self._gate.accept_signal(cmd, c.PARENT_REVOKE_SIGNAL):
            return
        if self._revoke_request is not None or g.state not in (S.approved, S.issuing, S.active):
            return
        actor = Actor(id=parent.workflow_id, kind=SYSTEM_ACTOR.kind, role=ActorRole.system)
        self._revoke_request = (actor, cmd.reason)
        self._emit(
            "grant.revoke_requested",
            actor,
            {"reason": cmd.reason, "authority": "onboarding", **self._gate.admit(cmd, c.PARENT_REVOKE_SIGNAL)},
        )

    # -- notifications ------------------------------------------------------------------
    def _notify(
        self, kind: NotificationKind, audience: Audience, severity: Severity, title: str, recipients: list[str]
    ) -> None:
        """Deliver in the background: a notifier that is down never blocks or fails the grant."""
        names = self._options.notifiers.get(audience.value, [])
        if not names:
            return
        g = self._grant
        summary = {
            "entitlement": g.entitlement,
            "requester": g.requester.id,
            "state": g.state.value,
            "reason": g.reason,
            "ticket": g.ticket,
            "incident": g.incident,
            "duration": f"{g.duration_seconds}s",
            "expires_at": g.expires_at.isoformat() if g.expires_at else None,
        }
        n = Notification(
            grant_id=g.grant_id,
            kind=kind,
            audience=audience,
            severity=severity,
            recipients=recipients,
            title=title,
            summary=summary,
            links=grant_links(g.grant_id, audience),
        )
        self._notifications += 1
        for name in names:
            delivery_id = f"{g.grant_id}:n{self._notifications}:{name}"
            self._notifying.append(asyncio.create_task(self._deliver(name, n, delivery_id)))

    def _notify_approvers(self, kind: NotificationKind, title: str, rnd: ApprovalRound) -> None:
        groups = [grp for st in rnd.open_stages() for grp in rnd.groups_for(st)]
        self._notify(kind, Audience.approvers, Severity.info, title, list(dict.fromkeys(groups)))

    async def _deliver(self, notifier: str, n: Notification, delivery_id: str) -> None:
        delay = timedelta(seconds=1)
        attempts = self._options.notification_attempts
        for attempt in range(1, attempts + 1):
            try:
                res: DeliveryResult = await workflow.execute_activity(
                    c.DELIVER_NOTIFICATION,
                    DeliveryRequest(notifier=notifier, notification=n, attempt=attempt, delivery_id=delivery_id),
                    result_type=DeliveryResult,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=1),  # this loop retries, with an event per attempt
                )
            except ActivityError as e:
                res = DeliveryResult(notifier=notifier, ok=False, error=failure_message(e), attempt=attempt)
            self._emit(res.event_type, SYSTEM_ACTOR, res.event_data(n))
            await self._flush()
            if res.ok:
                return
            if attempt < attempts:
                await workflow.sleep(delay)
                delay *= 2
        self._emit(
            "notification.abandoned", SYSTEM_ACTOR, {"notifier": notifier, "kind": n.kind.value, "attempts": attempts}
        )
        await self._flush()

    # -- evidence -------------------------------------------------------------------
    def _start_refusal(self, inp: GrantInput) -> Refusal | None:
        """A grant starts only from an input the API signed (an onboarding's child: its worker)."""
        if not workflow.patched(trust.SIGNED_COMMANDS):
            return None
        return self._gate.start_refusal(inp, "start:GrantWorkflow", trust.API_OR_WORKER, fresh=True)

    def _emit(self, type: str, actor: Actor, data: dict[str, Any]) -> None:
        ev = self._chain.emit(type, actor, data)
        self._grant.events, self._grant.last_hash = ev.seq, ev.hash

    async def _flush(self) -> None:
        """Store events not yet in the ledger (idempotent there, so replays and retries are harmless)."""
        self._upsert_search_attributes()
        await self._chain.flush(self._grant.summary())

    def _upsert_search_attributes(self) -> None:
        """Visibility follows the grant (Requester, Entitlement, GrantState, BreakGlass, Provider):
        the changed ones are upserted before every wait (patched: older histories never did)."""
        if self._searchable is None:  # started without them (older grants, feature off)
            return
        values = grant_search_values(self._grant)
        changed = {k: v for k, v in values.items() if self._searchable.get(k) != v}
        if not changed or not workflow.patched(SEARCH_ATTRIBUTES):
            return
        workflow.upsert_search_attributes(search_updates(changed))
        self._searchable = values

    # -- decisions (updates) and status (query) ---------------------------------------
    @workflow.query
    def status(self) -> Grant:
        return self._grant

    @workflow.update
    def approve(self, a: ActionInput) -> Grant:
        g = self._grant
        rnd = g.pending_round()
        assert rnd is not None
        vote = g.approve(a.actor, workflow.now(), a.comment, a.delegations)
        self._emit(
            "approval.granted",
            a.actor.as_actor(ActorRole.approver),
            {
                "purpose": rnd.purpose,
                "stage": vote.stage,
                "comment": a.comment,
                "on_behalf_of": vote.on_behalf_of,
                "delegation_id": vote.delegation_id,
                "votes": len(rnd.votes),
                "pending": rnd.pending(),
                **self._gate.admit(a, "approve"),
            },
        )
        if rnd.purpose == "grant":
            self._approvals.append(a)
        if rnd.complete and rnd.purpose == "grant":
            self._emit(
                "grant.approved",
                SYSTEM_ACTOR,
                {"rule": g.decision.rule, "approvers": [v.approver for v in rnd.votes], "auto_approved": False},
            )
        elif rnd.complete:
            self._emit("extension.approved", SYSTEM_ACTOR, {"approvers": [v.approver for v in rnd.votes]})
            self._wake = True
        elif rnd.open_stages():
            self._notify_approvers(
                NotificationKind.approval_requested, f"{g.requester.id} requests {g.entitlement}", rnd
            )
        return g

    @approve.validator
    def _validate_approve(self, a: ActionInput) -> None:
        refuse(
            lambda: self._gate.check(a, "approve"),
            lambda: self._grant.check_approve(a.actor, workflow.now(), a.delegations),
        )

    @workflow.update
    def deny(self, a: ActionInput) -> Grant:
        g = self._grant
        purpose = g.deny(a.actor, a.comment, workflow.now(), a.delegations)
        if purpose == "grant":
            self._emit(
                "approval.denied",
                a.actor.as_actor(ActorRole.approver),
                {"reason": a.comment, **self._gate.admit(a, "deny")},
            )
        else:
            self._emit(
                "extension.refused",
                a.actor.as_actor(ActorRole.approver),
                {"reason": a.comment, **self._gate.admit(a, "deny")},
            )
            self._notify(
                NotificationKind.extended,
                Audience.requester,
                Severity.info,
                f"Your extension of {g.entitlement} was refused: {a.comment}",
                [g.requester.id],
            )
            self._wake = True
        return g

    @deny.validator
    def _validate_deny(self, a: ActionInput) -> None:
        refuse(
            lambda: self._gate.check(a, "deny"), lambda: self._grant.check_deny(a.actor, workflow.now(), a.delegations)
        )

    @workflow.update
    def extend(self, inp: ExtendInput) -> Grant:
        g = self._grant
        ext = g.request_extension(inp, workflow.now())
        d = inp.decision
        self._emit(
            "extension.requested",
            inp.actor.as_actor(ActorRole.requester),
            {
                "extension_seconds": ext.extension_seconds,
                "total_seconds": ext.new_total_seconds,
                "reason": inp.reason,
                "policy_version": d.policy_version,
                "auto_rule": d.auto_rule,
                "stages": [st.name for st in d.stages],
                **self._gate.admit(inp, "extend"),
            },
        )
        if ext.status == "approved":
            self._emit("extension.approved", SYSTEM_ACTOR, {"auto_rule": d.auto_rule, "auto_approved": True})
        elif ext.round is not None:
            self._notify_approvers(
                NotificationKind.approval_requested,
                f"{g.requester.id} asks to extend {g.entitlement} by {ext.extension_seconds}s",
                ext.round,
            )
        self._wake = True
        return g

    @extend.validator
    def _validate_extend(self, inp: ExtendInput) -> None:
        refuse(lambda: self._gate.check(inp, "extend"), lambda: self._grant.check_extend(inp))

    @workflow.update
    def review(self, inp: ReviewInput) -> Grant:
        g = self._grant
        g.check_review(inp)
        g.review = Review(reviewer=inp.actor.id, outcome=inp.outcome, notes=inp.notes, at=workflow.now())
        g.move(S.reviewed)
        self._emit(
            "review.completed",
            inp.actor.as_actor(ActorRole.reviewer),
            {
                "outcome": inp.outcome,
                "notes": inp.notes,
                "overdue": g.review_escalated,
                "incident": g.incident,
                **self._gate.admit(inp, "review"),
            },
        )
        if inp.outcome == "not_justified":
            self._emit(
                "review.finding",
                SYSTEM_ACTOR,
                {
                    "finding": "break-glass use not justified",
                    "requester": g.requester.id,
                    "incident": g.incident,
                    "reviewer": inp.actor.id,
                    "notes": inp.notes,
                },
            )
        return g

    @review.validator
    def _validate_review(self, inp: ReviewInput) -> None:
        refuse(lambda: self._gate.check(inp, "review"), lambda: self._grant.check_review(inp))

    @workflow.update
    def revoke(self, a: ActionInput) -> Grant:
        g = self._grant
        g.check_revoke(a.actor)
        # the role set is fixed (requester / approver / ...): an admin acts in the approver role,
        # and `authority` says on which grounds, so an auditor can tell the two apart
        if a.actor.id == g.requester.id:
            actor, authority = a.actor.as_actor(ActorRole.requester), "requester"
        else:
            actor = a.actor.as_actor(ActorRole.approver)
            authority = "approver" if a.actor.in_any(g.decision.approver_groups) else "admin"
        if g.state is S.awaiting_approval:
            g.move(S.cancelled)
            g.end_reason = f"cancelled by {a.actor.id}: {a.comment}"
            self._emit(
                "grant.cancelled",
                actor,
                {"reason": a.comment, "before": "approval", "authority": authority, **self._gate.admit(a, "revoke")},
            )
        elif self._revoke_request is None:
            self._revoke_request = (actor, a.comment)
            self._emit(
                "grant.revoke_requested",
                actor,
                {"reason": a.comment, "authority": authority, **self._gate.admit(a, "revoke")},
            )
        return g

    @revoke.validator
    def _validate_revoke(self, a: ActionInput) -> None:
        refuse(lambda: self._gate.check(a, "revoke"), lambda: self._grant.check_revoke(a.actor))

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
            {
                "kind": "response-wrapped",
                "single_use": True,
                "wrap_expires_at": handover.expires_at.isoformat(),
                **self._gate.admit(a, "claim_credential"),
            },
        )
        await self._flush()
        return handover

    @claim_credential.validator
    def _validate_claim(self, a: ActionInput) -> None:
        refuse(
            lambda: self._gate.check(a, "claim_credential"), lambda: self._grant.check_claim(a.actor, workflow.now())
        )

    @workflow.signal(name=c.REPORT_DRIFT_SIGNAL)
    async def report_drift(self, report: DriftReport) -> None:
        """Reconciliation found this active grant's access gone at the target: record it on this
        grant's chain (once; later runs finding the same are ignored) and mark the grant.
        Ignored unless the grant is active (an issue or a revocation in progress changes the target),
        and unless a worker signed it for this grant."""
        g, finding = self._grant, report.finding
        if not self._gate.accept_signal(report, c.REPORT_DRIFT_SIGNAL):
            return
        if g.state is not S.active or g.drift is not None or finding.grant_id != g.grant_id:
            return
        g.drift = finding
        self._emit(
            "reconciliation.drift_detected",
            SYSTEM_ACTOR,
            {**finding.evidence(), **self._gate.admit(report, c.REPORT_DRIFT_SIGNAL)},
        )
        await self._flush()


__all__ = ["GrantWorkflow", "Principal"]
