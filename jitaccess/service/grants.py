"""Use case: request a grant. The API (and the console through it) parses, calls this, renders.

The rules that used to live in the route: the policy decision is made here with the catalogue's
current version; a client-chosen `request_id` maps to one grant per requester (a retry lands on
the same workflow, never a second one, and a reused ID with a different request is a conflict); a
well-formed request that policy denies still starts its grant, which ends `denied` with the
reason codes on its evidence chain; malformed input starts nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ulid import ULID

from jitaccess.domain.catalogue import Catalogue, Entitlement
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.grant import Grant, GrantInput
from jitaccess.domain.policy import AccessRequest, PolicyDecision, evaluate
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import RefusalKind
from jitaccess.domain.states import GrantState
from jitaccess.service.errors import RequestRefused
from jitaccess.service.ports import Clock, WorkflowGateway

REQUEST_ID_NAMESPACE = uuid.UUID("6f1c7a52-3f0e-4a8e-9a55-0d1f3c2b9e11")


@dataclass(frozen=True)
class Requested:
    grant_id: str
    grant: Grant  # as started (a new grant) or as it stands (a retried request_id)


def grant_id_for(requester: str, request_id: str | None) -> str:
    """With a request_id the grant ID is derived from it (per requester), so a retry lands on the same workflow."""
    if request_id:
        return f"grant-{uuid.uuid5(REQUEST_ID_NAMESPACE, f'{requester}:{request_id}')}"
    return f"grant-{str(ULID()).lower()}"


@dataclass(frozen=True)
class GrantRequests:
    catalogue: Catalogue
    workflows: WorkflowGateway
    clock: Clock
    admin_groups: tuple[str, ...]
    options: GrantOptions

    async def request(self, me: Principal, req: AccessRequest) -> Requested:
        decision = evaluate(self.catalogue, me, req, self.clock.now())
        if decision.is_input_error:  # malformed: nothing starts
            raise RequestRefused(
                RefusalKind.invalid,
                "invalid_request",
                "; ".join(decision.messages),
                reason_codes=[r.value for r in decision.reason_codes],
                messages=list(decision.messages),
                valid_entitlements=self.catalogue.ids,
            )
        inp = GrantInput(
            grant_id=grant_id_for(me.id, req.request_id),
            requester=me,
            request=req,
            decision=decision,
            admin_groups=self.admin_groups,
            options=self.options,
        )
        await self.workflows.start_grant(inp)  # a denied request starts too: its denial is evidence
        if req.request_id is None:
            _raise_if_denied(inp.grant_id, decision)
            return Requested(inp.grant_id, Grant.from_input(inp))
        g = await self.workflows.grant(inp.grant_id)
        if (g.entitlement, g.reason, g.duration_seconds) != (
            req.entitlement,
            req.reason,
            int(decision.duration.total_seconds()),
        ):
            raise RequestRefused(
                RefusalKind.conflict,
                "request_id_reused",
                f"request_id {req.request_id!r} was already used for a different request "
                f"(grant {inp.grant_id}); use a new request_id",
                grant_id=inp.grant_id,
            )
        if g.state is GrantState.denied and g.decided_by is None:
            _raise_if_denied(inp.grant_id, g.decision)
        return Requested(inp.grant_id, g)


def _raise_if_denied(grant_id: str, decision: PolicyDecision) -> None:
    if not decision.allowed:
        raise RequestRefused(
            RefusalKind.forbidden,
            "policy_denied",
            "; ".join(decision.messages),
            grant_id=grant_id,
            reason_codes=[r.value for r in decision.reason_codes],
            messages=list(decision.messages),
        )


def entitlements_for(catalogue: Catalogue, me: Principal) -> list[tuple[Entitlement, bool]]:
    """The catalogue as `me` sees it: each entitlement and whether they may request it."""
    return [(e, me.in_any(e.requester_groups)) for e in catalogue.entitlements]
