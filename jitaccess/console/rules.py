"""What the console shows a person on a grant, decided by the grant aggregate's own checks
(`Grant.check_approve`, `check_deny`, `check_review`, `check_revoke`: the rules the workflow's
validators run when the form is posted). The grant is read through the same use case as the API's
`GET /v1/grants/{id}` (`app.state.use_cases.reads`) and shown with the API's own view of it
(jitaccess.api.views), so the console renders exactly the summary the API returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from jitaccess.api.views import archived_grant_view, grant_view
from jitaccess.domain.approval import Delegation
from jitaccess.domain.grant import Grant, ReviewInput
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import Refusal
from jitaccess.service.errors import NotFound
from jitaccess.service.use_cases import UseCases


def use_cases(request: Request) -> UseCases:
    uc: UseCases = request.app.state.use_cases
    return uc


def view_of(g: Grant | dict[str, Any]) -> dict[str, Any]:
    """The API's answer for a grant: the live grant's view, or its ledger summary once archived."""
    return grant_view(g) if isinstance(g, Grant) else archived_grant_view(g)


async def live_grant(request: Request, me: Principal, grant_id: str) -> Grant | None:
    """The live grant if this person may read it (None: unknown, hidden, or only in the ledger)."""
    try:
        g = await use_cases(request).reads.grant(me, grant_id)
    except NotFound:
        return None
    return g if isinstance(g, Grant) else None


def allowed(check: Callable[[], None]) -> bool:
    try:
        check()
    except Refusal:
        return False
    return True


def vote_status(g: Grant, me: Principal, delegations: list[Delegation]) -> tuple[bool, str | None]:
    """(may decide now, the step-up message if approving needs a fresh sign-in) on the grant's
    open round: whoever may deny may decide; approving may still ask for a step-up sign-in."""
    now = datetime.now(UTC)
    if not allowed(lambda: g.check_deny(me, now, delegations)):
        return False, None
    try:
        g.check_approve(me, now, delegations)
    except Refusal as e:
        return (True, e.message) if e.rule == "step_up_required" else (False, None)
    return True, None


def may_review(g: Grant, me: Principal) -> bool:
    return allowed(lambda: g.check_review(ReviewInput(actor=me, outcome="justified")))


def may_revoke(g: Grant, me: Principal) -> bool:
    return allowed(lambda: g.check_revoke(me))


@dataclass(frozen=True)
class Shown:
    """Which of a grant page's forms this person may use (the API decides again when they do)."""

    may_decide: bool = False
    step_up: str | None = None
    may_review: bool = False
    may_revoke: bool = False

    @classmethod
    async def on(cls, request: Request, me: Principal, g: Grant) -> Shown:
        may_decide, step_up = False, None
        if g.pending_round() is not None and g.requester.id != me.id:
            delegations = await use_cases(request).authority.lent_to(me)
            may_decide, step_up = vote_status(g, me, delegations)
        return cls(may_decide, step_up, may_review(g, me), may_revoke(g, me))


def requestable(me: Principal, entitlements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The catalogue entries this person may request (marking break-glass eligibility on each)."""
    out = []
    for e in entitlements:
        bg = e.get("break_glass") or {}
        e["break_glass_eligible"] = bool(bg) and me.in_any(tuple(bg.get("groups", ())))
        if e.get("you_may_request") or e["break_glass_eligible"]:
            out.append(e)
    return out


def residual_window(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A credential that outlives its grant at the target (STS keys): the seconds and until when."""
    out: dict[str, Any] = {}
    for e in events:
        data = e.get("data") or {}
        if e.get("type") == "credential.issued" and data.get("residual_window_seconds"):
            out["seconds"] = data["residual_window_seconds"]
        if e.get("type") == "revocation.confirmed" and data.get("credential_expires_at"):
            out["until"] = data["credential_expires_at"]
    return out or None
