"""The delegation use cases over fakes: lending approval authority, and listing what was lent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitaccess.domain.principals import Principal
from jitaccess.domain.refusals import Refusal
from jitaccess.service.delegations import DelegationRequest
from tests.unit.service_fakes import ALICE, BOB, NOW, FakeLedger, build


async def test_a_delegation_is_stored_with_its_evidence():
    ledger = FakeLedger()
    d = await build(ledger=ledger).delegations.delegate(BOB, _req("erin", duration=timedelta(days=1)))
    assert (d.delegator.id, d.delegate, d.starts_at, d.ends_at) == ("bob", "erin", NOW, NOW + timedelta(days=1))
    [(saved, ev)] = ledger.saved
    assert saved == d and ev.type == "delegation.granted" and ev.grant_id == d.delegation_id
    assert ev.actor.id == "bob" and ev.actor.role == "approver"
    assert ev.data == {  # as the chains have always held it (DelegationGranted)
        "delegate": "erin",
        "starts_at": NOW.isoformat(),
        "ends_at": (NOW + timedelta(days=1)).isoformat(),
        "reason": "on leave",
        "delegator_groups": ["security"],
        "auth_context": None,
    }


async def test_only_an_approver_delegates():
    ledger = FakeLedger()
    with pytest.raises(Refusal) as e:
        await build(ledger=ledger).delegations.delegate(ALICE, _req("dave", duration=timedelta(hours=1)))
    assert e.value.rule == "delegator_not_an_approver" and ledger.saved == []


async def test_never_into_the_past():
    ledger = FakeLedger()
    with pytest.raises(Refusal) as e:
        await build(ledger=ledger).delegations.delegate(BOB, _req("erin", starts_at=NOW - timedelta(hours=1)))
    assert e.value.kind.value == "invalid" and ledger.saved == []


async def test_with_a_directory_an_unknown_delegate_is_refused():
    ledger = FakeLedger()
    uc = build(ledger=ledger, known_users=("bob", "erin"))
    with pytest.raises(Refusal):
        await uc.delegations.delegate(BOB, _req("nobody", duration=timedelta(hours=1)))
    assert ledger.saved == []


async def test_each_sees_what_was_lent_to_and_by_them():
    uc = build()
    await uc.delegations.delegate(BOB, _req("erin", duration=timedelta(days=1)))
    bob, erin = await uc.delegations.mine(BOB), await uc.delegations.mine(Principal(id="erin"))
    assert (len(bob.from_me), bob.to_me, erin.from_me, len(erin.to_me)) == (1, [], [], 1)


def _req(delegate: str, **window) -> DelegationRequest:
    return DelegationRequest(delegate, "on leave", **window)
