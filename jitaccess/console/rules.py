"""What the console shows a person, decided by the domain's own rules over the API's views: whether
they may vote on a grant's open round (jitaccess.domain.grant.authorise_vote, which the workflow's
validator runs again), review a break-glass use, or revoke. The API stays the authority: a button
shown here that the API then refuses only costs a flash message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from jitaccess.console.core import Console
from jitaccess.console.session import Session
from jitaccess.domain.approval import ApprovalRound, Delegation, authorise_vote
from jitaccess.domain.delegation import current_delegations
from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import Refusal

REVOCABLE = ("awaiting_approval", "approved", "issuing", "active")  # Grant.check_revoke's states


def pending_round(view: dict[str, Any]) -> dict[str, Any] | None:
    """The round open for votes, as `Grant.pending_round` defines it, from the API's view."""
    if view.get("state") == "awaiting_approval":
        return view.get("approval")
    ext = view.get("extension") or {}
    if view.get("state") == "active" and ext.get("status") == "pending":
        return ext.get("round")
    return None


async def delegations_to(c: Console, request: Request, sess: Session) -> list[Delegation]:
    """Delegations made to the signed-in person, each delegator with their current groups (as the
    API does before a vote)."""
    r = await c.api(request, sess, "GET", "/v1/delegations")
    made = [Delegation.model_validate(d) for d in (r.body.get("to_me", []) if r.ok else [])]
    if c.users:
        users = c.users
        made = current_delegations(made, lambda uid: users[uid].principal(uid) if uid in users else None)
    return made


def vote_status(
    view: dict[str, Any], me: Principal, delegations: list[Delegation]
) -> tuple[bool, str | None, str | None]:
    """(may decide now, step-up message if approving needs a fresh sign-in, why not) for the grant's
    pending round."""
    rnd_raw = pending_round(view)
    if rnd_raw is None:
        return False, None, "nothing to decide"
    rnd = ApprovalRound.model_validate(rnd_raw)
    requester = Principal.model_validate(view["requester"])
    subject = f"grant {view['grant_id']} ({view['entitlement']})"
    now = datetime.now(UTC)
    try:
        authorise_vote(rnd, requester, subject, me, now, delegations, "deny")
    except Refusal as e:
        return False, None, e.message
    try:
        authorise_vote(rnd, requester, subject, me, now, delegations, "approve")
    except Refusal as e:
        if e.rule == "step_up_required":
            return True, e.message, None
        return False, None, e.message
    return True, None, None


def reviewer_groups(view: dict[str, Any], entitlement: dict[str, Any]) -> tuple[str, ...]:
    """Who reviews a break-glass use (`Grant.reviewer_groups`): the entitlement's reviewers, and
    its escalation groups once the review is overdue."""
    bg = entitlement.get("break_glass") or {}
    escalation = tuple(bg.get("escalation_groups", ())) if view.get("review_escalated") else ()
    return tuple(bg.get("reviewer_groups", ())) + escalation


def requester_id(view: dict[str, Any]) -> str | None:
    return (view.get("requester") or {}).get("id")


def may_review(view: dict[str, Any], me: Principal, entitlement: dict[str, Any]) -> bool:
    """`Grant.check_review`'s authority: pending review, not the requester, a reviewer."""
    return (
        view.get("state") == "pending_review"
        and requester_id(view) != me.id
        and me.in_any(reviewer_groups(view, entitlement))
    )


def may_revoke(view: dict[str, Any], me: Principal, admin_groups: tuple[str, ...]) -> bool:
    """`Grant.check_revoke`'s authority: the requester, the grant's approver groups, admins."""
    decision = view.get("decision") or {}
    return view.get("state") in REVOCABLE and (
        requester_id(view) == me.id or me.in_any(tuple(decision.get("approver_groups", ()))) or me.in_any(admin_groups)
    )


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
