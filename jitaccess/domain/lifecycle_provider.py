"""The lifecycle's provider steps: issue (verified by read-back, cleaned up when not), revocation
that never gives up (capped backoff, an event per failed attempt), and how a grant ends."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from jitaccess.domain import event_types as ev
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.credentials import IssuedCredential, ProviderGrant
from jitaccess.domain.grant import EXECUTOR, Grant
from jitaccess.domain.lifecycle_effects import (
    CleanedUp,
    CleanUp,
    ContinueAsNewIfLong,
    Effect,
    Emit,
    End,
    Flush,
    IssueCredential,
    Issued,
    IssueFailed,
    IssueRefused,
    Notify,
    RevokeAttempted,
    RevokeCredential,
    Sleep,
    TellParent,
    said,
)
from jitaccess.domain.lifecycle_schedule import Schedule
from jitaccess.domain.notification_rules import notifications_for
from jitaccess.domain.principals import SYSTEM_ACTOR
from jitaccess.domain.states import TERMINAL
from jitaccess.domain.states import GrantState as S


class ProviderSteps(Schedule):
    """`window`: the grant's (issued_at, expires_at), fixed before issuing so every provider ends
    its own TTL at the grant's expiry (None in histories from before that change); `finished`:
    the grant has ended (the workflow returns once it has carried out the End effect)."""

    def __init__(self, grant: Grant, options: GrantOptions) -> None:
        super().__init__(grant, options)
        self.window: tuple[datetime, datetime] | None = None
        self.issue_started: datetime | None = None
        self.finished = False

    def finish(self, state: S, reason: str, now: datetime) -> list[Effect]:
        """End the grant in `state`: a terminal one, or revoked when no review follows."""
        g = self.grant
        assert state in TERMINAL or (state is S.revoked and not g.break_glass), f"{state} is not where a grant ends"
        if g.state is not state:
            g.move(state)
        g.ended_at, g.end_reason = now, reason
        self.finished = True
        return [End(state)]

    def after_revocation(self, now: datetime) -> list[Effect]:
        raise NotImplementedError  # Lifecycle: the review (break-glass) or the end

    # -- issue ------------------------------------------------------------------------------
    def begin_issue(self, now: datetime) -> list[Effect]:
        self.grant.move(S.issuing)
        self.issue_started = now
        return [IssueCredential()]

    def fix_window(self) -> None:
        assert self.issue_started is not None
        self.window = (self.issue_started, self.issue_started + self.grant.duration)

    def provider_request(self) -> ProviderGrant:
        g = self.grant
        assert g.provider is not None and g.decision.entitlement is not None
        return ProviderGrant(
            grant_id=g.grant_id,
            provider=g.provider,
            params=g.decision.entitlement.provider.params,
            principal=g.requester.id,
            ttl_seconds=g.duration_seconds,
            max_ttl_seconds=int(self.max_duration().total_seconds()),
            issued_at=self.window[0] if self.window else None,
            expires_at=self.window[1] if self.window else None,
        )

    def max_duration(self) -> timedelta:
        ent = self.grant.decision.entitlement
        assert ent is not None
        return ent.break_glass.max_duration if self.grant.break_glass and ent.break_glass else ent.max_duration

    def residual_window(self, cred: IssuedCredential) -> dict[str, Any]:
        """How long the provider's own expiry lies past the grant's (e.g. STS's 900 s minimum):
        revocation ends the access at expiry, the credential itself lives on this long."""
        if self.window is None:  # histories from before the window was fixed: no such field
            return {}
        if cred.expires_at is None:
            return {"residual_window_seconds": None}
        return {"residual_window_seconds": max(0, math.ceil((cred.expires_at - self.window[1]).total_seconds()))}

    def issued(self, msg: Issued) -> list[Effect]:
        g, res = self.grant, msg.result
        assert self.issue_started is not None and g.provider is not None
        g.credential, g.handover = res.credential, res.handover
        g.issued_at, g.expires_at = self.issue_started, self.issue_started + g.duration
        handover = res.handover
        issued = ev.CredentialIssued(
            provider=g.provider,
            reference=res.credential.reference,
            details=res.credential.details,
            expires_at=g.expires_at.isoformat(),
            provider_expires_at=res.credential.expires_at.isoformat() if res.credential.expires_at else None,
            **self.residual_window(res.credential),
            handover=(
                {"kind": "response-wrapped", "single_use": True, "expires_at": handover.expires_at.isoformat()}
                if handover
                else None
            ),
        )
        at = res.observed_at  # the activity's time: a retried workflow task rebuilds these events as they were
        out: list[Effect] = [Emit(issued, EXECUTOR, at)]
        if not res.verified:
            return [*out, Emit(ev.FulfilmentVerificationFailed(read_back=res.verification), EXECUTOR, at), CleanUp()]
        verified = ev.FulfilmentVerified(read_back=res.verification)
        g.move(S.active)
        self.begin_active()
        # the requester hears once the ledger has it and the parent (if any) was told
        tell = [Notify(n) for n in notifications_for(verified, g)]
        return [*out, Emit(verified, EXECUTOR, at), Flush(), TellParent(), *tell]

    def issue_refused(self, msg: IssueRefused, now: datetime) -> list[Effect]:
        self.grant.move(S.denied)
        refused = Emit(ev.CredentialIssueRefused(rule=msg.rule, message=msg.message), EXECUTOR)
        return [refused, *self.finish(S.denied, "refused by the issuer: not provable from signed evidence", now)]

    def issue_failed(self, msg: IssueFailed) -> list[Effect]:
        return [Emit(ev.CredentialIssueFailed(provider=self.grant.provider, error=msg.error), EXECUTOR), CleanUp()]

    def cleaned_up(self, msg: CleanedUp, now: datetime) -> list[Effect]:
        g = self.grant
        g.credential, g.handover = None, None
        confirmed = ev.CredentialCleanupConfirmed(read_back=msg.result.verification, held_by=msg.result.deferred_to)
        reason = "issue failed; partial issues cleaned up and confirmed absent"
        return [Emit(confirmed, EXECUTOR), *self.finish(S.issue_failed, reason, now)]

    # -- revocation -------------------------------------------------------------------------------
    def begin_revocation(self, resumed: bool = False) -> list[Effect]:
        g = self.grant
        if not resumed:
            g.move(S.revoking)
        g.handover = None
        return [ContinueAsNewIfLong("revoking"), RevokeCredential()]

    def revoke_attempted(self, msg: RevokeAttempted, now: datetime) -> list[Effect]:
        g, res = self.grant, msg.result
        assert g.credential is not None
        g.revocation_attempts += 1
        attempt = g.revocation_attempts
        if res is not None and res.deferred_to:  # shared access: our hold is released, another grant still holds it
            deferred = ev.RevocationDeferred(
                held_by=res.deferred_to, reference=g.credential.reference, read_back=res.verification
            )
            g.move(S.revoked)
            return [*said(deferred, EXECUTOR, g, at=res.observed_at), *self.after_revocation(now)]
        if res is not None and res.confirmed:
            ends = g.credential.expires_at  # when the provider would have ended it anyway (residual window)
            confirmed = ev.RevocationConfirmed(
                attempts=attempt,
                reference=g.credential.reference,
                already_gone=res.already_gone,
                read_back=res.verification,
                credential_expires_at=ends.isoformat() if ends else None,
            )
            g.move(S.revoked)  # the requester hears (notification_rules); then the review or the end
            return [*said(confirmed, EXECUTOR, g, at=res.observed_at), *self.after_revocation(now)]
        problem = "read-back shows access still present: " + res.verification if res is not None else msg.error
        return self._retry_revocation(attempt, problem)

    def _retry_revocation(self, attempt: int, problem: str) -> list[Effect]:
        g = self.grant
        delay = min(timedelta(seconds=2 ** min(attempt - 1, 20)), self.options.revocation_backoff_cap)
        retrying = ev.RevocationRetrying(attempt=attempt, problem=problem, retry_in_seconds=delay.total_seconds())
        out: list[Effect] = [Emit(retrying, EXECUTOR)]
        if attempt >= self.options.revocation_failing_after and g.state is S.revoking:
            g.move(S.revocation_failing)
            alert = "revocation not confirmed; still retrying"
            out.append(Emit(ev.RevocationFailing(attempts=attempt, problem=problem, alert=alert), SYSTEM_ACTOR))
        return [*out, Flush(), Sleep(delay), *self.begin_revocation(resumed=True)]
