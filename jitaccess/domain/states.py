"""Grant states and the transitions between them (DESIGN.md, 'The grant lifecycle')."""

from __future__ import annotations

from enum import StrEnum


class GrantState(StrEnum):
    requested = "requested"
    policy_evaluated = "policy_evaluated"
    denied = "denied"
    awaiting_approval = "awaiting_approval"
    approved = "approved"
    approval_expired = "approval_expired"
    cancelled = "cancelled"
    issuing = "issuing"
    issue_failed = "issue_failed"
    active = "active"
    revoking = "revoking"
    revocation_failing = "revocation_failing"
    revoked = "revoked"
    pending_review = "pending_review"
    reviewed = "reviewed"


class ExtensionStatus(StrEnum):
    """An extension's sub-state while the grant is active: pending -> approved -> applied | failed,
    or pending -> refused | expired (the grant keeps its old expiry)."""

    pending = "pending"
    approved = "approved"
    refused = "refused"
    expired = "expired"
    applied = "applied"
    failed = "failed"


OPEN_EXTENSION = frozenset({ExtensionStatus.pending, ExtensionStatus.approved})  # only one at a time


class ReviewStatus(StrEnum):
    """A break-glass grant's post-hoc review: none (not break-glass, or not revoked yet) ->
    pending -> overdue (past its deadline, escalated) -> done."""

    none = "none"
    pending = "pending"
    overdue = "overdue"
    done = "done"


S = GrantState
TRANSITIONS: dict[GrantState, frozenset[GrantState]] = {
    S.requested: frozenset({S.policy_evaluated}),
    S.policy_evaluated: frozenset({S.denied, S.awaiting_approval, S.approved}),
    S.awaiting_approval: frozenset({S.approved, S.denied, S.approval_expired, S.cancelled}),
    S.approved: frozenset({S.issuing, S.cancelled}),
    S.issuing: frozenset({S.active, S.issue_failed, S.denied}),  # denied: the issuer's last check refused
    S.active: frozenset({S.revoking}),
    S.revoking: frozenset({S.revoked, S.revocation_failing}),
    S.revocation_failing: frozenset({S.revoked}),
    S.revoked: frozenset({S.pending_review}),  # break-glass: the review follows revocation
    S.pending_review: frozenset({S.reviewed}),
}
# Where a grant ends: no way out. `revoked` is not among them (a break-glass grant's review follows it).
TERMINAL = frozenset(s for s in GrantState if not TRANSITIONS.get(s))
# States in which the grant's access is over for good (ended, or revoked and only the review left).
ACCESS_ENDED = TERMINAL | {S.revoked, S.pending_review}
# States in which access may exist at the target (reconciliation treats these as live).
HOLDS_ACCESS = frozenset({S.issuing, S.active, S.revoking, S.revocation_failing})


class InvalidTransition(Exception):
    pass


def check_transition(current: GrantState, target: GrantState) -> GrantState:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"a grant cannot go from {current} to {target}")
    return target
