"""Reads are scoped by role (jitaccess.domain.access): the one table, the facts of a grant,
an onboarding and a bare chain, and the viewer's delegated authority."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.domain.access import (
    READ_RULES,
    ReadFacts,
    ReadRole,
    chain_facts,
    grant_facts,
    may_read,
    may_verify_all,
    onboarding_facts,
    read_role,
    sees_everything,
    viewer_for,
)
from jitaccess.domain.approval import ApprovalRound, Delegation, Vote
from jitaccess.domain.catalogue import ApprovalStage, Catalogue
from jitaccess.domain.events import make_event
from jitaccess.domain.grant import Grant, GrantInput
from jitaccess.domain.onboarding import Onboarding, OnboardingState, WorkloadContext
from jitaccess.domain.policy import AccessRequest, evaluate
from jitaccess.domain.principals import ActorKind, ActorRole, Principal
from tests.support import entitlement_spec

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ADMINS, AUDITORS = ("jitaccess-admins",), ("auditors",)

ALICE = Principal(id="alice", groups=("platform", "oncall"))
DAVE = Principal(id="dave", groups=("platform",))
BOB = Principal(id="bob", groups=("security",))  # approver of `approved`
RITA = Principal(id="rita", groups=("reviewers",))  # break-glass reviewer only
LEAD = Principal(id="lea", groups=("sec-leads",))  # escalation group
ERIN = Principal(id="erin", groups=ADMINS)
IVAN = Principal(id="ivan", groups=AUDITORS)
BOT = Principal(id="deploy-bot", kind=ActorKind.service, groups=("platform",), owner="frank")
FRANK = Principal(id="frank", groups=("platform-leads",))

CATALOGUE = Catalogue.model_validate(
    {
        "entitlements": [
            entitlement_spec(
                "approved",
                approval={"approver_groups": ["security"], "escalation_groups": ["sec-leads"]},
                break_glass={"groups": ["oncall"], "max_duration": "PT1H", "reviewer_groups": ["reviewers"]},
            )
        ]
    }
)


def view(p: Principal, delegations: list[Delegation] | None = None):
    return viewer_for(p, admin_groups=ADMINS, auditor_groups=AUDITORS, delegations=delegations or [], now=NOW)


def grant(requester: Principal = ALICE, break_glass: bool = False) -> Grant:
    req = AccessRequest(
        entitlement="approved", reason="fix", break_glass=break_glass, incident="INC-1" if break_glass else None
    )
    g = Grant.from_input(
        GrantInput(grant_id="grant-1", requester=requester, request=req, decision=evaluate(CATALOGUE, requester, req))
    )
    if not break_glass:
        g.open_approval(NOW)
    return g


def test_the_table_has_one_rule_per_role_and_only_auditors_and_admins_verify_all():
    assert {r.role for r in READ_RULES} == set(ReadRole)
    assert len(READ_RULES) == len(ReadRole)
    assert {r.role for r in READ_RULES if r.verify_all} == {ReadRole.auditor, ReadRole.admin}
    assert [may_verify_all(view(p)) for p in (ALICE, BOB, RITA, BOT, ERIN, IVAN)] == [False] * 4 + [True] * 2
    assert [sees_everything(view(p)) for p in (ALICE, BOB, ERIN, IVAN)] == [False, False, True, True]


@pytest.mark.parametrize(
    "who, role",
    [
        (ALICE, ReadRole.requester),
        (DAVE, None),  # another requester of the same entitlement
        (BOB, ReadRole.approver),
        (LEAD, ReadRole.approver),  # escalation group: may decide once escalated
        (RITA, None),  # reviews break-glass grants only
        (IVAN, ReadRole.auditor),
        (ERIN, ReadRole.admin),
        (BOT, None),
        (FRANK, None),
    ],
)
def test_a_pending_grant(who, role):
    assert read_role(view(who), grant_facts(grant())) is role


def test_a_break_glass_grant_is_read_by_its_reviewers():
    facts = grant_facts(grant(break_glass=True))
    assert facts.break_glass and facts.reviewer_groups == ("reviewers",)
    assert read_role(view(RITA), facts) is ReadRole.reviewer
    assert read_role(view(ALICE), facts) is ReadRole.requester
    assert not may_read(view(DAVE), facts)
    # the reviewer role reaches break-glass grants only
    assert not may_read(view(RITA), grant_facts(grant()))


def test_who_decided_keeps_reading_after_leaving_the_group_and_a_delegate_reads_what_the_delegator_may_decide():
    g = grant()
    assert g.approval is not None
    g.approval.votes.append(Vote(approver="bob", actor="erin2", on_behalf_of="bob", at=NOW.isoformat()))
    facts = grant_facts(g)
    assert {"bob", "erin2"} <= set(facts.deciders)
    assert may_read(view(Principal(id="bob", groups=())), facts)  # left security, decided this one
    assert may_read(view(Principal(id="erin2")), facts)  # voted on bob's behalf

    mallory = Principal(id="mallory")
    active = Delegation(
        delegation_id="d1", delegator=BOB, delegate="mallory", starts_at=NOW, ends_at=NOW + timedelta(hours=1)
    )
    lapsed = active.model_copy(update={"starts_at": NOW - timedelta(days=2), "ends_at": NOW - timedelta(days=1)})
    other = active.model_copy(update={"delegate": "someone-else"})
    fresh = grant_facts(grant())
    assert read_role(view(mallory, [active]), fresh) is ReadRole.approver
    assert not may_read(view(mallory, [lapsed]), fresh)
    assert not may_read(view(mallory, [other]), fresh)
    assert not may_read(view(mallory), fresh)


def test_a_service_reads_what_it_requested_and_its_onboarding():
    child = grant(requester=BOT)  # an onboarding's child carries the onboarding's requester
    assert read_role(view(BOT), grant_facts(child)) is ReadRole.service
    assert read_role(view(ALICE), grant_facts(grant(requester=DAVE))) is None
    o = Onboarding(
        onboarding_id="onboarding-nightly-staging",
        state=OnboardingState.awaiting_approval,
        requester=BOT,
        workload=WorkloadContext(
            service="nightly", owning_team="platform-leads", environment="staging", repository="r"
        ),
        template="batch-job",
        approval=ApprovalRound(
            stages=(
                ApprovalStage(name="owning-team", approver_groups=("platform-leads",), owner_may_approve=True),
                ApprovalStage(name="security", approver_groups=("security",)),
            ),
            requested_at=NOW,
            deadline=NOW + timedelta(days=1),
        ),
    )
    facts = onboarding_facts(o)
    assert read_role(view(BOT), facts) is ReadRole.service
    assert read_role(view(FRANK), facts) is ReadRole.approver  # owning team
    assert read_role(view(BOB), facts) is ReadRole.approver  # security stage
    assert [may_read(view(p), facts) for p in (ALICE, DAVE, RITA)] == [False] * 3
    assert may_read(view(IVAN), facts) and may_read(view(ERIN), facts)


def test_chain_facts_of_a_delegation_and_a_reconciliation_run():
    ev = make_event(
        "delegation-1", None, "delegation.granted", NOW, BOB.as_actor(ActorRole.approver), {"delegate": "mallory"}
    )
    facts = chain_facts("delegation-1", [ev])
    assert facts.kind == "delegation" and facts.requester == "bob" and facts.deciders == ("mallory",)
    assert may_read(view(BOB), facts) and may_read(view(Principal(id="mallory")), facts)
    assert not may_read(view(ALICE), facts)

    run = make_event("reconciliation-1", None, "reconciliation.started", NOW, FRANK.as_actor(ActorRole.system), {})
    facts = chain_facts("reconciliation-1", [run], decider_groups=("security",))
    assert facts.kind == "reconciliation"
    assert may_read(view(BOB), facts) and may_read(view(IVAN), facts) and not may_read(view(DAVE), facts)


def test_a_row_without_facts_is_read_by_its_requester_and_everything_roles_only():
    facts = ReadFacts(object_id="grant-old", requester="alice")
    assert [may_read(view(p), facts) for p in (ALICE, DAVE, BOB, IVAN, ERIN)] == [True, False, False, True, True]


def test_the_grant_summary_carries_its_read_facts():
    g = grant(break_glass=True)
    assert ReadFacts.model_validate(g.summary()["scope"]) == grant_facts(g)
