"""Use cases: decisions on a grant after its request — approve, deny, revoke, extend, review,
and claiming the credential. Each is one update to the grant's workflow, whose validator applies
the grant's rules and answers with the rule that refused it; what is decided here is only what
the workflow cannot know: the delegations lent to the caller now, and the extension policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from jitaccess.domain.credentials import WrappedHandover
from jitaccess.domain.grant import ActionInput, ExtendInput, Grant, ReviewInput
from jitaccess.domain.policy import evaluate_extension
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import RefusalKind
from jitaccess.service.authority import Authority
from jitaccess.service.errors import RequestRefused
from jitaccess.service.ports import Clock, WorkflowGateway


@dataclass(frozen=True)
class Decisions:
    workflows: WorkflowGateway
    authority: Authority
    clock: Clock

    async def approve(self, me: Principal, grant_id: str, comment: str = "") -> Grant:
        return await self.workflows.update_grant(grant_id, "approve", await self.authority.decision_by(me, comment))

    async def deny(self, me: Principal, grant_id: str, reason: str) -> Grant:
        return await self.workflows.update_grant(grant_id, "deny", await self.authority.decision_by(me, reason))

    async def revoke(self, me: Principal, grant_id: str, reason: str) -> Grant:
        return await self.workflows.update_grant(grant_id, "revoke", ActionInput(actor=me, comment=reason))

    async def review(
        self, me: Principal, grant_id: str, outcome: Literal["justified", "not_justified"], notes: str = ""
    ) -> Grant:
        arg = ReviewInput(actor=me, outcome=outcome, notes=notes)
        return await self.workflows.update_grant(grant_id, "review", arg)

    async def extend(self, me: Principal, grant_id: str, duration: timedelta | None, reason: str) -> Grant:
        """The extension policy is evaluated here, against the grant's own rules (its decision's
        snapshot of the entitlement), so the version recorded is the one whose rules applied."""
        g = await self.workflows.grant(grant_id)  # an unknown grant: NotFound before anything else
        if duration is None:
            raise RequestRefused(
                RefusalKind.invalid,
                "invalid_request",
                "duration: give how much longer, ISO 8601 like PT30M or seconds",
            )
        if g.decision.entitlement is None:
            raise RequestRefused(
                RefusalKind.conflict, "wrong_state", f"grant {grant_id} was never allowed; there is nothing to extend"
            )
        d = evaluate_extension(g.decision, me, g.duration, duration, self.clock.now(), g.decision.policy_version)
        return await self.workflows.update_grant(grant_id, "extend", ExtendInput(actor=me, reason=reason, decision=d))

    async def claim_credential(self, me: Principal, grant_id: str) -> WrappedHandover:
        """The requester's single-use wrapping token (the workflow hands it over once)."""
        return await self.workflows.claim_credential(grant_id, ActionInput(actor=me))
