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
TERMINAL = frozenset({S.denied, S.approval_expired, S.cancelled, S.issue_failed, S.revoked, S.reviewed})
# States in which access may exist at the target (reconciliation treats these as live).
HOLDS_ACCESS = frozenset({S.issuing, S.active, S.revoking, S.revocation_failing})


class InvalidTransition(Exception):
    pass


def check_transition(current: GrantState, target: GrantState) -> GrantState:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"a grant cannot go from {current} to {target}")
    return target
