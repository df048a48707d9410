"""The grant aggregate's rules (approve / deny / revoke / claim) and the state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.credentials import WrappedHandover
from jitaccess.domain.grant import Grant, GrantInput, Refusal, RefusalKind
from jitaccess.domain.policy import AccessRequest, evaluate
from jitaccess.domain.principals import Principal
from jitaccess.domain.states import (
    HOLDS_ACCESS,
    TERMINAL,
    TRANSITIONS,
    GrantState,
    InvalidTransition,
    check_transition,
)
from tests.support import entitlement_spec

S = GrantState
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _ent(id: str, approval: dict) -> dict:
    return entitlement_spec(id, approval=approval)


CATALOGUE = Catalogue.model_validate(
    {
        "entitlements": [
            _ent("one-approver", {"approver_groups": ["security"], "min_approvals": 1}),
            # platform is also an approver group, so alice is "in" it: only the self-approval rule stops her
            _ent("two-approvers", {"approver_groups": ["security", "platform"], "min_approvals": 2}),
            _ent("auto", {"auto_approve": True}),
        ]
    }
)

ALICE = Principal(id="alice", groups=("platform",))  # the requester
BOB = Principal(id="bob", groups=("security",))
CAROL = Principal(id="carol", groups=("security",))
DAVE = Principal(id="dave", groups=("platform",))
ERIN = Principal(id="erin", groups=("jitaccess-admins",))
MALLORY = Principal(id="mallory", groups=("marketing",))


def new_grant(entitlement: str = "one-approver", requester: Principal = ALICE) -> Grant:
    request = AccessRequest(entitlement=entitlement, reason="fix INC-1", ticket="INC-1", request_id="r-1")
    decision = evaluate(CATALOGUE, requester, request)
    assert decision.allowed
    g = Grant.from_input(
        GrantInput(
            grant_id=f"g-{entitlement}",
            requester=requester,
            request=request,
            decision=decision,
            admin_groups=("jitaccess-admins",),
        )
    )
    g.move(S.policy_evaluated)
    g.move(S.approved if decision.auto_approved else S.awaiting_approval)
    if g.state is S.awaiting_approval:
        g.open_approval(NOW)
    return g


def activate(g: Grant, *, handover_ttl: timedelta = timedelta(minutes=5)) -> Grant:
    if g.state is S.awaiting_approval:
        while g.state is S.awaiting_approval:
            g.approve([BOB, CAROL, DAVE][len(g.approvals)], NOW, "ok")
            pass
    g.move(S.issuing)
    g.move(S.active)
    g.handover = WrappedHandover(wrapping_token="hvs.wrap", expires_at=NOW + handover_ttl)
    return g


def refused(fn, *args) -> Refusal:
    with pytest.raises(Refusal) as ei:
        fn(*args)
    return ei.value


# -- from_input ------------------------------------------------------------------------------


def test_from_input_copies_the_request_and_decision():
    g = new_grant()
    assert g.grant_id == "g-one-approver"
    assert g.entitlement == "one-approver"
    assert g.provider == "vault_token"
    assert g.requester == ALICE
    assert g.reason == "fix INC-1" and g.ticket == "INC-1" and g.request_id == "r-1"
    assert g.duration_seconds == 1800 and g.duration == timedelta(minutes=30)
    assert g.approvals_required == 1
    assert g.admin_groups == ("jitaccess-admins",)
    assert g.summary()["state"] == "awaiting_approval"
    assert g.summary()["requester"] == "alice"


def test_handover_never_serialised():
    g = activate(new_grant())
    assert "handover" not in g.model_dump()
    assert "hvs.wrap" not in g.model_dump_json()


# -- approval -------------------------------------------------------------------------------


def test_self_approval_forbidden():
    g = new_grant("two-approvers")
    r = refused(g.approve, ALICE, NOW, "me")
    assert r.kind is RefusalKind.forbidden and r.rule == "self_approval"
    assert "alice" in r.message and "separation of duties" in r.message
    assert g.approvals == [] and g.state is S.awaiting_approval


def test_non_approver_forbidden():
    g = new_grant()
    r = refused(g.check_approve, MALLORY, NOW)
    assert r.kind is RefusalKind.forbidden and r.rule == "not_an_approver"
    assert "mallory" in r.message and "security" in r.message
    # a requester-group peer is not an approver for one-approver
    assert refused(g.check_approve, DAVE, NOW).rule == "not_an_approver"


def test_single_approval_approves():
    g = new_grant()
    g.approve(BOB, NOW, "lgtm")
    assert g.state is S.approved
    assert g.state is S.approved
    assert g.decided_by == "bob"
    assert [v.approver for v in g.approvals] == ["bob"]
    assert g.approvals[0].comment == "lgtm"


def test_duplicate_vote_conflict():
    g = new_grant("two-approvers")
    g.approve(BOB, NOW, "")
    assert g.state is S.awaiting_approval
    r = refused(g.approve, BOB, NOW, "again")
    assert r.kind is RefusalKind.conflict and r.rule == "duplicate_vote"
    assert "bob" in r.message
    assert len(g.approvals) == 1 and g.state is S.awaiting_approval


def test_two_distinct_approvers_needed():
    g = new_grant("two-approvers")
    assert g.approvals_required == 2
    g.approve(BOB, NOW, "")
    assert g.state is S.awaiting_approval
    assert g.state is S.awaiting_approval
    g.approve(DAVE, NOW, "")
    assert g.state is S.approved  # a different approver group member
    assert g.state is S.approved
    assert g.decided_by == "bob,dave"


def test_approve_in_wrong_state_names_the_state():
    g = new_grant()
    g.approve(BOB, NOW, "")
    r = refused(g.approve, CAROL, NOW, "")
    assert r.kind is RefusalKind.conflict and r.rule == "wrong_state"
    assert "it is approved" in r.message and "awaiting_approval" in r.message

    auto = new_grant("auto")
    assert auto.state is S.approved
    r = refused(auto.check_approve, BOB, NOW)
    assert r.rule == "wrong_state" and "approved" in r.message


def test_state_checked_before_identity():
    g = activate(new_grant())
    assert refused(g.check_approve, ALICE, NOW).rule == "wrong_state"


# -- deny ----------------------------------------------------------------------------------------


def test_deny():
    g = new_grant()
    g.deny(CAROL, "not now", NOW)
    assert g.state is S.denied
    assert g.decided_by == "carol" and g.decision_comment == "not now" and g.end_reason == "denied by carol: not now"
    assert refused(g.deny, BOB, "again", NOW).rule == "wrong_state"


def test_deny_rules():
    g = new_grant()
    assert refused(g.deny, ALICE, "x", NOW).rule == "self_approval"
    assert refused(g.deny, MALLORY, "x", NOW).rule == "not_an_approver"
    assert g.state is S.awaiting_approval


# -- revoke --------------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [ALICE, BOB, ERIN], ids=["requester", "approver", "admin"])
def test_revoke_allowed(actor):
    for g in (new_grant(), activate(new_grant())):
        g.check_revoke(actor)  # no refusal


def test_revoke_outsider_forbidden():
    g = activate(new_grant())
    r = refused(g.check_revoke, MALLORY)
    assert r.kind is RefusalKind.forbidden and r.rule == "not_allowed_to_revoke"
    assert "security" in r.message and "jitaccess-admins" in r.message


def test_revoke_auto_approved_grant_names_no_approvers():
    g = activate(new_grant("auto"))
    r = refused(g.check_revoke, BOB)
    assert r.rule == "not_allowed_to_revoke" and "(none)" in r.message
    g.check_revoke(ERIN)


@pytest.mark.parametrize("end", ["revoked", "denied"])
def test_revoke_in_terminal_state_conflicts(end):
    g = new_grant()
    if end == "revoked":
        activate(g)
        g.move(S.revoking)
        g.move(S.revoked)
    else:
        g.deny(BOB, "no", NOW)
    r = refused(g.check_revoke, ALICE)
    assert r.kind is RefusalKind.conflict and r.rule == "wrong_state"
    assert f"it is {end}" in r.message


def test_revoke_while_revoking_conflicts():
    g = activate(new_grant())
    g.move(S.revoking)
    assert refused(g.check_revoke, ERIN).rule == "wrong_state"


# -- claim ------------------------------------------------------------------------------------------


def test_claim_only_by_requester():
    g = activate(new_grant())
    for who in (BOB, ERIN, MALLORY):
        r = refused(g.check_claim, who, NOW)
        assert r.kind is RefusalKind.forbidden and r.rule == "not_requester"
        assert "alice" in r.message
    g.check_claim(ALICE, NOW)


def test_claim_only_when_active():
    g = new_grant()
    r = refused(g.check_claim, ALICE, NOW)
    assert r.kind is RefusalKind.conflict and r.rule == "wrong_state" and "awaiting_approval" in r.message
    g.approve(BOB, NOW, "")
    g.move(S.issuing)
    assert refused(g.check_claim, ALICE, NOW).rule == "wrong_state"


def test_claim_only_once():
    g = activate(new_grant())
    g.check_claim(ALICE, NOW)
    g.credential_delivered = True
    r = refused(g.check_claim, ALICE, NOW)
    assert r.kind is RefusalKind.conflict and r.rule == "already_delivered"


def test_claim_without_handover():
    g = activate(new_grant())
    g.handover = None
    assert refused(g.check_claim, ALICE, NOW).rule == "no_handover"


def test_claim_expired_handover_is_gone():
    g = activate(new_grant(), handover_ttl=timedelta(minutes=5))
    g.check_claim(ALICE, NOW + timedelta(minutes=4, seconds=59))
    for t in (NOW + timedelta(minutes=5), NOW + timedelta(hours=1)):
        r = refused(g.check_claim, ALICE, t)
        assert r.kind is RefusalKind.gone and r.rule == "handover_expired"
        assert g.handover.expires_at.isoformat() in r.message


def test_holds_access():
    """The states reconciliation treats as live access at the target."""
    g = new_grant()
    assert g.state not in HOLDS_ACCESS
    activate(g)
    assert g.state in HOLDS_ACCESS
    g.move(S.revoking)
    assert g.state in HOLDS_ACCESS
    g.move(S.revoked)
    assert g.state not in HOLDS_ACCESS


# -- state machine ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "current,target",
    [
        (S.active, S.approved),
        (S.requested, S.active),
        (S.revoked, S.active),
        (S.denied, S.approved),
        (S.approved, S.active),  # must go through issuing
        (S.awaiting_approval, S.issuing),
        (S.active, S.revoked),  # must go through revoking
    ],
)
def test_illegal_transitions(current, target):
    with pytest.raises(InvalidTransition, match=f"from {current.value} to {target.value}"):
        check_transition(current, target)


@pytest.mark.parametrize("current,target", [(c, t) for c, ts in TRANSITIONS.items() for t in sorted(ts)])
def test_legal_transitions(current, target):
    assert check_transition(current, target) is target


def test_terminal_states_have_no_exits():
    # revoked is where a grant ends, except break-glass, whose post-hoc review follows it
    assert TRANSITIONS[GrantState.revoked] == {GrantState.pending_review}
    for s in TERMINAL - {GrantState.revoked}:
        assert not TRANSITIONS.get(s)
        for t in GrantState:
            with pytest.raises(InvalidTransition):
                check_transition(s, t)
    assert not (TERMINAL & HOLDS_ACCESS)


def test_move_refuses_illegal_transition_and_keeps_state():
    g = activate(new_grant())
    with pytest.raises(InvalidTransition):
        g.move(S.approved)
    assert g.state is S.active
