"""Pure rules of issue 4: multi-stage approval, separation of duties across stages and for
non-human requesters, delegation windows, conditional auto-approval, break-glass policy,
extensions and post-hoc review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.domain.approval import Delegation
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.grant import ExtendInput, Grant, GrantInput, Refusal, RefusalKind, ReviewInput
from jitaccess.domain.policy import AccessRequest, ReasonCode, evaluate, evaluate_extension
from jitaccess.domain.principals import ActorKind, Principal
from jitaccess.domain.states import GrantState as S

MON_10_BERLIN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 in Berlin, a Monday
SAT_10_BERLIN = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

ALICE = Principal(id="alice", groups=("platform", "oncall"))
DAVE = Principal(id="dave", groups=("platform",))
FRANK = Principal(id="frank", groups=("platform-leads",))
BOB = Principal(id="bob", groups=("security",))
CAROL = Principal(id="carol", groups=("security",))
BOTH = Principal(id="olga", groups=("platform-leads", "security"))
ERIN = Principal(id="erin", groups=("jitaccess-admins",))
GRACE = Principal(id="grace", groups=("security-leads",))
BOT = Principal(id="deploy-bot", kind=ActorKind.service, groups=("platform",), owner="olga")


def catalogue(order: str = "sequential") -> Catalogue:
    vault = {"type": "vault_token", "params": {"policies": ["p"]}}
    return Catalogue.model_validate(
        {
            "entitlements": [
                {
                    "id": "prod-write",
                    "description": "d",
                    "provider": vault,
                    "default_duration": "PT30M",
                    "max_duration": "PT1H",
                    "requester_groups": ["platform"],
                    "approval": {
                        "stages": [
                            {"name": "owning-team", "approver_groups": ["platform-leads"], "owner_may_approve": True},
                            {"name": "security", "approver_groups": ["security"]},
                        ],
                        "stage_order": order,
                        "timeout": "PT8H",
                        "escalate_after": "PT2H",
                        "escalation_groups": ["security-leads"],
                        "auto_rules": [
                            {
                                "name": "short-business-hours",
                                "requester_groups": ["platform"],
                                "max_duration": "PT15M",
                                "business_hours": {"timezone": "Europe/Berlin", "start": "09:00", "end": "17:00"},
                            }
                        ],
                    },
                    "break_glass": {
                        "groups": ["oncall"],
                        "max_duration": "PT1H",
                        "reviewer_groups": ["security"],
                        "escalation_groups": ["security-leads"],
                    },
                },
                {
                    "id": "no-bg",
                    "description": "d",
                    "provider": vault,
                    "default_duration": "PT30M",
                    "max_duration": "PT1H",
                    "requester_groups": ["platform"],
                    "approval": {"auto_approve": True},
                    "extendable": False,
                },
            ]
        }
    )


def grant(requester: Principal = ALICE, order: str = "sequential", duration="PT45M", **req) -> Grant:
    d = evaluate(
        catalogue(order),
        requester,
        AccessRequest(
            entitlement=req.pop("entitlement", "prod-write"),
            duration=timedelta(minutes=int(duration[2:-1])),
            reason="r",
            **req,
        ),
        MON_10_BERLIN,
    )
    assert d.allowed, d.messages
    g = Grant.from_input(
        GrantInput(grant_id="g-1", requester=requester, request=AccessRequest(entitlement="prod-write"), decision=d)
    )
    g.move(S.policy_evaluated)
    if not (d.auto_approved or d.break_glass):
        g.move(S.awaiting_approval)
        g.open_approval(MON_10_BERLIN)
    return g


def refused(fn, *a) -> Refusal:
    with pytest.raises(Refusal) as ei:
        fn(*a)
    return ei.value


# -- conditional auto-approval ---------------------------------------------------------------
def test_auto_rule_matches_only_in_business_hours_and_short_durations():
    cat = catalogue()
    short = AccessRequest(entitlement="prod-write", duration=timedelta(minutes=10), reason="r")
    d = evaluate(cat, ALICE, short, MON_10_BERLIN)
    assert d.auto_approved and d.auto_rule == "short-business-hours" and d.rule.endswith("/auto:short-business-hours")
    assert not evaluate(cat, ALICE, short, SAT_10_BERLIN).auto_approved  # weekend
    assert not evaluate(cat, ALICE, short, MON_10_BERLIN.replace(hour=17)).auto_approved  # 18:00 Berlin
    assert not evaluate(cat, ALICE, short, None).auto_approved  # no clock, no business-hours match
    longer = short.model_copy(update={"duration": timedelta(minutes=20)})
    d = evaluate(cat, ALICE, longer, MON_10_BERLIN)
    assert not d.auto_approved and [s.name for s in d.stages] == ["owning-team", "security"] and d.min_approvals == 2


# -- stages ---------------------------------------------------------------------------------
def test_sequential_stages_take_votes_in_order():
    g = grant()
    r = refused(g.check_approve, BOB, MON_10_BERLIN)
    assert r.rule == "not_an_approver" and "owning-team: platform-leads" in r.message
    g.approve(FRANK, MON_10_BERLIN, "team ok")
    assert g.state is S.awaiting_approval and g.approval.pending() == [
        {"stage": "security", "groups": ["security"], "have": 0, "need": 1}
    ]
    g.approve(BOB, MON_10_BERLIN, "sec ok")
    assert g.state is S.approved and [(v.approver, v.stage) for v in g.approvals] == [
        ("frank", "owning-team"),
        ("bob", "security"),
    ]


@pytest.mark.parametrize("first, second", [(FRANK, BOB), (BOB, FRANK)])
def test_parallel_stages_in_either_order(first, second):
    g = grant(order="parallel")
    g.approve(first, MON_10_BERLIN, "")
    assert g.state is S.awaiting_approval
    g.approve(second, MON_10_BERLIN, "")
    assert g.state is S.approved


def test_an_approver_counts_once_across_stages():
    g = grant(order="parallel")
    g.approve(BOTH, MON_10_BERLIN, "")
    r = refused(g.approve, BOTH, MON_10_BERLIN, "again")
    assert r.kind is RefusalKind.conflict and r.rule == "duplicate_vote"
    g.approve(BOB, MON_10_BERLIN, "")
    assert g.state is S.approved


def test_a_deny_at_any_stage_ends_the_request_with_the_reason():
    g = grant()
    g.approve(FRANK, MON_10_BERLIN, "")
    g.deny(CAROL, "not during the freeze", MON_10_BERLIN)
    assert g.state is S.denied and g.end_reason == "denied by carol: not during the freeze"


def test_owner_of_a_service_cannot_satisfy_the_security_stage():
    g = grant(requester=BOT, order="parallel")
    g.approve(BOTH, MON_10_BERLIN, "")  # counts for owning-team, where the owner may approve
    assert g.approvals[0].stage == "owning-team"
    g2 = grant(requester=BOT, order="parallel")
    g2.approve(FRANK, MON_10_BERLIN, "")  # owning-team done by someone else
    r = refused(g2.approve, BOTH, MON_10_BERLIN, "")
    assert r.rule == "owner_not_independent" and "security" in r.message


def test_escalation_lets_the_escalation_group_approve():
    g = grant()
    g.approve(FRANK, MON_10_BERLIN, "")
    assert refused(g.check_approve, GRACE, MON_10_BERLIN).rule == "not_an_approver"
    g.approval.escalated = True
    g.approve(GRACE, MON_10_BERLIN, "escalated")
    assert g.state is S.approved


# -- delegation -------------------------------------------------------------------------------
def delegation(start_h: int, end_h: int) -> Delegation:
    return Delegation(
        delegation_id="delegation-1",
        delegator=BOB,
        delegate="erin",
        starts_at=MON_10_BERLIN + timedelta(hours=start_h),
        ends_at=MON_10_BERLIN + timedelta(hours=end_h),
    )


def test_delegate_approves_on_behalf_inside_the_window():
    g = grant()
    g.approve(FRANK, MON_10_BERLIN, "")
    vote = g.approve(ERIN, MON_10_BERLIN + timedelta(minutes=5), "for bob", [delegation(0, 1)])
    assert (vote.approver, vote.actor, vote.on_behalf_of, vote.delegation_id) == ("bob", "erin", "bob", "delegation-1")
    assert g.state is S.approved


def test_delegate_is_refused_outside_the_window_and_the_message_says_so():
    g = grant()
    g.approve(FRANK, MON_10_BERLIN, "")
    r = refused(g.approve, ERIN, MON_10_BERLIN + timedelta(hours=2), "", [delegation(0, 1)])
    assert r.rule == "not_an_approver" and "delegation from bob is valid only" in r.message


def test_delegate_cannot_make_the_delegator_count_twice():
    g = grant(order="parallel")
    g.approve(BOB, MON_10_BERLIN, "")
    r = refused(g.approve, ERIN, MON_10_BERLIN, "", [delegation(0, 1)])
    assert r.rule == "duplicate_vote"


# -- break-glass ----------------------------------------------------------------------------
def test_break_glass_policy():
    cat = catalogue()
    bg = AccessRequest(entitlement="prod-write", reason="outage", break_glass=True, incident="INC-7")
    d = evaluate(cat, ALICE, bg, MON_10_BERLIN)
    assert d.allowed and d.break_glass and d.rule.endswith("/break_glass") and d.min_approvals == 0
    assert evaluate(cat, DAVE, bg).reason_codes == (ReasonCode.not_break_glass_eligible,)
    d = evaluate(cat, ALICE, bg.model_copy(update={"incident": None, "duration": timedelta(hours=2)}))
    assert set(d.reason_codes) == {ReasonCode.incident_required, ReasonCode.duration_exceeds_max}
    assert d.is_input_error and any("break-glass maximum" in m for m in d.messages)
    d = evaluate(cat, ALICE, bg.model_copy(update={"entitlement": "no-bg"}))
    assert d.reason_codes == (ReasonCode.break_glass_not_allowed,)


def test_review_rules():
    g = grant(break_glass=True, incident="INC-7")
    for s in (S.approved, S.issuing, S.active, S.revoking, S.revoked):
        g.move(s)
    assert refused(g.check_review, ReviewInput(actor=BOB, outcome="justified")).rule == "wrong_state"
    g.move(S.pending_review)
    assert refused(g.check_review, ReviewInput(actor=ALICE, outcome="justified")).rule == "self_review"
    assert refused(g.check_review, ReviewInput(actor=GRACE, outcome="justified")).rule == "not_a_reviewer"
    assert refused(g.check_review, ReviewInput(actor=BOB, outcome="not_justified")).rule == "notes_required"
    g.review_escalated = True
    g.check_review(ReviewInput(actor=GRACE, outcome="justified"))  # escalation group may review once overdue


# -- extensions -------------------------------------------------------------------------------
def test_extension_checks_the_cumulative_duration():
    g = grant(duration="PT45M")
    d = evaluate_extension(g.decision, ALICE, g.duration, timedelta(minutes=30), MON_10_BERLIN)
    assert not d.allowed and d.reason_codes == (ReasonCode.duration_exceeds_max,)
    assert "at most 900s" in d.messages[0]
    d = evaluate_extension(g.decision, ALICE, g.duration, timedelta(minutes=10), MON_10_BERLIN)
    assert d.allowed and d.auto_rule is None and [s.name for s in d.stages] == ["owning-team", "security"]


def test_extension_requests_follow_the_approval_rule():
    g = grant(duration="PT45M")
    g.approve(FRANK, MON_10_BERLIN, "")
    g.approve(BOB, MON_10_BERLIN, "")
    for s in (S.issuing, S.active):
        g.move(s)
    d = evaluate_extension(g.decision, ALICE, g.duration, timedelta(minutes=10), MON_10_BERLIN)
    assert refused(g.check_extend, ExtendInput(actor=DAVE, reason="x", decision=d)).rule == "not_requester"
    too_long = evaluate_extension(g.decision, ALICE, g.duration, timedelta(hours=1), MON_10_BERLIN)
    r = refused(g.check_extend, ExtendInput(actor=ALICE, reason="x", decision=too_long))
    assert r.kind is RefusalKind.invalid and r.rule == "duration_exceeds_max"
    ext = g.request_extension(ExtendInput(actor=ALICE, reason="more", decision=d), MON_10_BERLIN)
    assert ext.status == "pending" and g.pending_round() is ext.round
    assert refused(g.check_extend, ExtendInput(actor=ALICE, reason="x", decision=d)).rule == "extension_pending"
    g.approve(FRANK, MON_10_BERLIN, "")
    g.deny(BOB, "no", MON_10_BERLIN)
    assert ext.status == "refused" and g.state is S.active  # a refusal leaves the grant as it was


def test_not_extendable_entitlement():
    g = grant(entitlement="no-bg")
    d = evaluate_extension(g.decision, ALICE, g.duration, timedelta(minutes=1))
    assert d.reason_codes == (ReasonCode.not_extendable,)
