"""The approval round on its own: a grant's round from its decision, a vote cast with the authority
`authorise_vote` found (self or on behalf of a delegator), and the refusals naming the rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.domain.approval import ApprovalRound, Delegation, Vote, authorise_vote
from jitaccess.domain.catalogue import ApprovalStage
from jitaccess.domain.policy import AccessRequest, evaluate
from jitaccess.domain.principals import ActorKind, Principal
from jitaccess.domain.refusals import Refusal
from tests.unit.test_grant_rules import ALICE, BOB, CATALOGUE

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAVE = Principal(id="dave", groups=("platform",))


def round_for_alice() -> ApprovalRound:
    decision = evaluate(CATALOGUE, ALICE, AccessRequest(entitlement="one-approver", reason="INC-1"))
    return ApprovalRound.for_grant(decision, NOW)


def test_a_grants_round_follows_its_decision():
    rnd = round_for_alice()
    assert rnd.purpose == "grant" and rnd.deadline == NOW + timedelta(days=1)  # the default timeout
    assert [s.approver_groups for s in rnd.stages] == [("security",)] and not rnd.complete


def test_a_vote_on_behalf_names_the_delegator_and_the_delegation():
    rnd = round_for_alice()
    lent = Delegation(delegation_id="d-1", delegator=BOB, delegate="dave", starts_at=NOW, ends_at=NOW + timedelta(1))
    authority = authorise_vote(rnd, ALICE, "grant g-1", DAVE, NOW, [lent], "approve")
    vote = Vote.cast(authority, DAVE, NOW, "ok")
    assert (vote.approver, vote.actor, vote.on_behalf_of, vote.delegation_id) == ("bob", "dave", "bob", "d-1")
    assert (vote.stage, vote.at, vote.comment) == (rnd.stages[0].name, NOW.isoformat(), "ok")
    own = Vote.cast(authorise_vote(rnd, ALICE, "grant g-1", BOB, NOW, [], "approve"), BOB, NOW)
    assert (own.approver, own.on_behalf_of, own.delegation_id) == ("bob", None, None)


def test_a_lapsed_delegation_is_named_in_the_refusal():
    rnd = round_for_alice()
    later = Delegation(
        delegation_id="d-2", delegator=BOB, delegate="dave", starts_at=NOW + timedelta(1), ends_at=NOW + timedelta(2)
    )
    with pytest.raises(Refusal) as r:
        authorise_vote(rnd, ALICE, "grant g-1", DAVE, NOW, [later], "approve")
    assert r.value.rule == "not_an_approver" and "the delegation from bob is valid only" in r.value.message


def test_an_owner_counts_only_where_the_stage_allows_it():
    bot = Principal(id="bot", kind=ActorKind.service, groups=("automation",), owner="bob")
    strict = ApprovalStage(name="security", approver_groups=("security",))
    rnd = ApprovalRound(stages=(strict,), requested_at=NOW, deadline=NOW + timedelta(hours=1))
    with pytest.raises(Refusal) as r:
        authorise_vote(rnd, bot, "onboarding o-1", BOB, NOW, [], "approve")
    assert r.value.rule == "owner_not_independent"
    lenient = strict.model_copy(update={"owner_may_approve": True})
    rnd = rnd.model_copy(update={"stages": (lenient,)})
    assert authorise_vote(rnd, bot, "onboarding o-1", BOB, NOW, [], "approve")[1] is BOB
