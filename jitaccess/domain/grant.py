"""The grant aggregate: its state plus the rules for every decision on it.

The workflow holds one `Grant` and asks it whether an action is allowed
(`check_*`, used by the update validators so a refused action never enters
history) before applying it. Pure: no clock, no I/O — callers pass `now`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.credentials import IssuedCredential, WrappedHandover
from jitaccess.domain.policy import AccessRequest, PolicyDecision
from jitaccess.domain.principals import Actor, ActorKind, ActorRole, Principal
from jitaccess.domain.states import HOLDS_ACCESS, GrantState, check_transition

EXECUTOR = Actor(id="jitaccess-worker", kind=ActorKind.service, role=ActorRole.executor)


class RefusalKind(StrEnum):
    forbidden = "forbidden"  # the actor may not do this (HTTP 403)
    conflict = "conflict"  # not in this state / already done (HTTP 409)
    gone = "gone"  # the thing asked for no longer exists (HTTP 410)


class Refusal(Exception):
    """An action the rules refuse; `rule` is a stable code, `message` says why in words."""

    def __init__(self, kind: RefusalKind, rule: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.rule = rule
        self.message = message


class GrantInput(BaseModel):
    """The workflow's input: everything decided before the grant existed."""

    grant_id: str
    requester: Principal
    request: AccessRequest
    decision: PolicyDecision
    admin_groups: tuple[str, ...] = ()
    options: GrantOptions = GrantOptions()


class ActionInput(BaseModel):
    """An update from a person or service: approve / deny / revoke / claim."""

    actor: Principal
    comment: str = ""


class Vote(BaseModel):
    approver: str
    at: str
    comment: str = ""


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
    duration_seconds: int
    decision: PolicyDecision
    admin_groups: tuple[str, ...] = ()
    approvals: list[Vote] = Field(default_factory=list)
    decided_by: str | None = None
    decision_comment: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    credential: IssuedCredential | None = None
    handover: WrappedHandover | None = Field(default=None, exclude=True)  # never shown, never in status
    credential_delivered: bool = False
    revocation_attempts: int = 0
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
    def approvals_required(self) -> int:
        return self.decision.min_approvals

    def _require_state(self, action: str, *allowed: GrantState) -> None:
        if self.state not in allowed:
            raise Refusal(
                RefusalKind.conflict,
                "wrong_state",
                f"cannot {action} grant {self.grant_id}: it is {self.state.value}; "
                f"{action} is allowed only when {' or '.join(s.value for s in allowed)}",
            )

    def _require_approver(self, actor: Principal, action: str) -> None:
        if actor.id == self.requester.id:
            raise Refusal(
                RefusalKind.forbidden,
                "self_approval",
                f"{actor.id} requested grant {self.grant_id} and cannot {action} it (separation of duties)",
            )
        if not actor.in_any(self.decision.approver_groups):
            raise Refusal(
                RefusalKind.forbidden,
                "not_an_approver",
                f"{actor.id} is in none of the approver groups for {self.entitlement}: "
                f"{', '.join(self.decision.approver_groups)}",
            )

    # -- approval --------------------------------------------------------------
    def check_approve(self, actor: Principal) -> None:
        self._require_state("approve", GrantState.awaiting_approval)
        self._require_approver(actor, "approve")
        if any(v.approver == actor.id for v in self.approvals):
            raise Refusal(RefusalKind.conflict, "duplicate_vote", f"{actor.id} has already approved grant {self.grant_id}")

    def approve(self, actor: Principal, at: str, comment: str) -> bool:
        """Record one vote; True when enough distinct approvers have approved."""
        self.check_approve(actor)
        self.approvals.append(Vote(approver=actor.id, at=at, comment=comment))
        if len(self.approvals) >= self.approvals_required:
            self.move(GrantState.approved)
            self.decided_by = ",".join(v.approver for v in self.approvals)
            return True
        return False

    def check_deny(self, actor: Principal) -> None:
        self._require_state("deny", GrantState.awaiting_approval)
        self._require_approver(actor, "deny")

    def deny(self, actor: Principal, reason: str) -> None:
        self.check_deny(actor)
        self.move(GrantState.denied)
        self.decided_by = actor.id
        self.decision_comment = reason
        self.end_reason = "denied"

    # -- revocation -------------------------------------------------------------
    def check_revoke(self, actor: Principal) -> None:
        self._require_state(
            "revoke", GrantState.awaiting_approval, GrantState.approved, GrantState.issuing, GrantState.active
        )
        if actor.id == self.requester.id or actor.in_any(self.decision.approver_groups) or actor.in_any(self.admin_groups):
            return
        raise Refusal(
            RefusalKind.forbidden,
            "not_allowed_to_revoke",
            f"{actor.id} may not revoke grant {self.grant_id}: only the requester, its approvers "
            f"({', '.join(self.decision.approver_groups) or 'none'}) or admins "
            f"({', '.join(self.admin_groups) or 'none'}) may",
        )

    # -- credential hand-over ------------------------------------------------------
    def check_claim(self, actor: Principal, now: datetime) -> None:
        if actor.id != self.requester.id:
            raise Refusal(
                RefusalKind.forbidden, "not_requester", f"only the requester ({self.requester.id}) can fetch the credential"
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

    @property
    def holds_access(self) -> bool:
        return self.state in HOLDS_ACCESS

    def summary(self) -> dict[str, object]:
        """The row the ledger keeps per grant (a projection for listing)."""
        return {
            "grant_id": self.grant_id,
            "state": self.state.value,
            "entitlement": self.entitlement,
            "requester": self.requester.id,
            "provider": self.provider,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "seq": self.events,
        }
