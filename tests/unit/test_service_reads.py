"""The read use cases over fakes: what exists for whom (jitaccess.domain.access), the ledger as
the archive, evidence and verification."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitaccess.domain.grant import Grant
from jitaccess.domain.policy import AccessRequest
from jitaccess.domain.principals import Principal
from jitaccess.service.delegations import DelegationRequest
from jitaccess.service.errors import NotFound, RequestRefused
from jitaccess.service.ports import GrantQuery
from jitaccess.service.use_cases import UseCases
from tests.unit.service_fakes import ALICE, BOB, DAVE, IVAN, FakeLedger, world


async def _granted(uc: UseCases, ledger: FakeLedger, who: Principal = ALICE) -> Grant:
    out = await uc.requests.request(who, AccessRequest(entitlement="secrets-admin", reason="rotate"))
    ledger.rows[out.grant_id] = out.grant.summary()
    return out.grant


async def test_a_grant_exists_for_its_requester_and_deciders_only():
    uc, _, ledger = world()
    g = await _granted(uc, ledger)
    assert (await uc.reads.grant(ALICE, g.grant_id)) == g
    assert (await uc.reads.grant(BOB, g.grant_id)) == g  # an approver of secrets-admin
    with pytest.raises(NotFound) as e:
        await uc.reads.grant(DAVE, g.grant_id)
    assert e.value.message == f"no grant {g.grant_id}"  # exactly as for no such grant


async def test_once_temporal_forgets_a_grant_the_ledger_row_answers():
    uc, workflows, ledger = world()
    g = await _granted(uc, ledger)
    del workflows.grants[g.grant_id]
    row = await uc.reads.grant(ALICE, g.grant_id)
    assert isinstance(row, dict) and row["grant_id"] == g.grant_id and "scope" not in row
    with pytest.raises(NotFound):
        await uc.reads.grant(DAVE, g.grant_id)
    with pytest.raises(NotFound):
        await uc.reads.grant(ALICE, "grant-none")


async def test_a_list_shows_only_what_the_caller_may_read():
    uc, _, ledger = world()
    mine = await _granted(uc, ledger)
    await _granted(uc, ledger, DAVE)
    assert [r["grant_id"] for r in await uc.reads.grants(ALICE, GrantQuery())] == [mine.grant_id]
    assert len(await uc.reads.grants(IVAN, GrantQuery())) == 2  # auditors see everything
    assert all("scope" not in r for r in await uc.reads.grants(IVAN, GrantQuery()))


async def test_a_delegation_chain_is_read_by_its_delegator_and_delegate():
    uc, _, ledger = world()
    d = await uc.delegations.delegate(BOB, DelegationRequest("erin", "on leave", duration=timedelta(days=1)))
    assert [e.type for e in await uc.reads.events(BOB, d.delegation_id)] == ["delegation.granted"]
    with pytest.raises(NotFound):
        await uc.reads.events(ALICE, d.delegation_id)
    with pytest.raises(NotFound):
        await uc.reads.events(IVAN, "delegation-none")  # no chain at all


async def test_evidence_needs_recorded_events():
    uc, _, ledger = world()
    g = await _granted(uc, ledger)
    with pytest.raises(NotFound) as e:
        await uc.reads.grant_evidence(ALICE, g.grant_id)
    assert e.value.message == f"no evidence recorded for {g.grant_id}"


async def test_evidence_is_verified():
    uc, _, ledger = world()
    d = await uc.delegations.delegate(BOB, DelegationRequest("erin", "on leave", duration=timedelta(days=1)))
    ev = await uc.reads.grant_evidence(BOB, d.delegation_id)
    assert ev.verification.ok and len(ev.events) == 1 and ev.log is None


async def test_verifying_everything_is_for_auditors_and_admins():
    uc, _, ledger = world()
    await uc.delegations.delegate(BOB, DelegationRequest("erin", "on leave", duration=timedelta(days=1)))
    with pytest.raises(RequestRefused) as e:
        await uc.reads.verify_all(BOB)
    assert (e.value.kind.value, e.value.rule) == ("forbidden", "not_auditor")
    v = await uc.reads.verify_all(IVAN)
    assert v.ok and len(v.results) == 1 and v.broken == []
    ledger.log = {"ok": False}
    assert not (await uc.reads.verify_all(IVAN)).ok
